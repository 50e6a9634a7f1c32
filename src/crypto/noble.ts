/**
 * @module
 * Pure-JavaScript crypto adapter on the audited `@noble/*` libraries: runs anywhere, the
 * reference the native adapter is cross-tested against. AES-GCM here is ~20 MB/s (see
 * docs/BENCHMARKS.md): fine for handshakes and control frames, slow for bulk data.
 */

import { gcm } from "@noble/ciphers/aes.js";
import { ed25519 as ed, x25519 as x } from "@noble/curves/ed25519.js";
import { hkdf as nobleHkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { abytes, aint } from "../bytes.ts";
import { authFailed } from "../errors.ts";
import {
  type Aead,
  type CryptoProvider,
  type KeyPair,
  NONCE_LENGTH,
  type Signer,
} from "./types.ts";
import { behindHeadroom, checkShared, headroomOf, secureRandom } from "./_checks.ts";

const EMPTY = new Uint8Array(0);

function nobleAead(key: Uint8Array): Aead {
  return {
    async seal(nonce, plaintext, aad, headroom) {
      abytes(nonce, NONCE_LENGTH, "nonce");
      abytes(plaintext, undefined, "plaintext");
      const room = headroomOf(headroom);
      return behindHeadroom(gcm(key, nonce, aad ?? EMPTY).encrypt(plaintext), room);
    },
    async open(nonce, sealed, aad) {
      abytes(nonce, NONCE_LENGTH, "nonce");
      abytes(sealed, undefined, "sealed");
      try {
        return gcm(key, nonce, aad ?? EMPTY).decrypt(sealed);
      } catch {
        throw authFailed();
      }
    },
  };
}

/**
 * The pure-JS crypto provider.
 *
 * @example
 * ```ts
 * import { nobleCrypto } from "./noble.ts";
 * const digest = nobleCrypto.sha256(new TextEncoder().encode("abc"));
 * ```
 */
export const nobleCrypto: CryptoProvider = {
  name: "noble",
  randomBytes: secureRandom,
  sha256(data) {
    return nobleSha256(abytes(data, undefined, "data"));
  },
  hmacSha256(key, data) {
    return hmac(nobleSha256, abytes(key, undefined, "key"), abytes(data, undefined, "data"));
  },
  hkdf(ikm, salt, info, length) {
    aint(length, 0, 255 * 32, "length");
    return nobleHkdf(
      nobleSha256,
      abytes(ikm, undefined, "ikm"),
      abytes(salt, undefined, "salt"),
      abytes(info, undefined, "info"),
      length,
    );
  },
  async x25519KeyPair(privateKey?: Uint8Array): Promise<KeyPair> {
    const sk = privateKey === undefined ? secureRandom(32) : abytes(privateKey, 32, "privateKey");
    return { privateKey: sk, publicKey: x.getPublicKey(sk) };
  },
  async x25519(privateKey, publicKey) {
    abytes(privateKey, 32, "privateKey");
    abytes(publicKey, 32, "publicKey");
    let shared: Uint8Array;
    try {
      shared = x.getSharedSecret(privateKey, publicKey);
    } catch {
      throw authFailed();
    }
    return checkShared(shared);
  },
  async aesGcm(key) {
    return nobleAead(abytes(key, 32, "key").slice());
  },
  async ed25519(seed): Promise<Signer> {
    const sk = abytes(seed, 32, "seed").slice();
    return {
      publicKey: ed.getPublicKey(sk),
      sign: async (message: Uint8Array) => ed.sign(abytes(message, undefined, "message"), sk),
    };
  },
  async ed25519Verify(publicKey, message, signature) {
    abytes(message, undefined, "message");
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
    if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
    try {
      // Strict RFC 8032 verification (no ZIP-215 leniency), as OpenSSL does: both adapters
      // must accept exactly the same signatures.
      return ed.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
};
