/**
 * @module
 * The crypto providers under test in the running runtime: noble, and native with each AEAD
 * implementation the runtime has.
 */

import { createNativeCrypto } from "../../src/crypto/native.ts";
import { nobleCrypto } from "../../src/crypto/noble.ts";
import type { CryptoProvider } from "../../src/crypto/types.ts";

/** Every provider the running runtime offers, including each native AEAD choice and the browser profile. */
export function providers(): CryptoProvider[] {
  return [
    nobleCrypto,
    createNativeCrypto({ aead: "webcrypto" }),
    createNativeCrypto({ aead: "node" }),
    createNativeCrypto({ aead: "auto" }),
    // What a browser gets: no node:crypto at all.
    createNativeCrypto({ aead: "webcrypto", curves: "webcrypto", hashes: "noble" }),
  ];
}
