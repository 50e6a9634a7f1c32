/**
 * @module
 * Checks and helpers shared by the crypto adapters, so both behave identically at the edges.
 */

import { aint } from "../bytes.ts";
import { authFailed } from "../errors.ts";

/**
 * Rejects an all-zero X25519 output (the peer sent a low-order point, RFC 7748 §6.1).
 * The comparison runs over all 32 bytes regardless of content.
 *
 * @param shared The DH output.
 * @returns `shared`.
 * @throws {RelayError} `auth-failed` when all bytes are zero.
 */
export function checkShared(shared: Uint8Array): Uint8Array {
  let acc = 0;
  for (const b of shared) acc |= b;
  if (acc === 0) throw authFailed();
  return shared;
}

/**
 * Random bytes from the runtime's CSPRNG (`crypto.getRandomValues`, which every supported
 * runtime and browser has), in the 64 KiB pieces the Web Crypto API allows.
 *
 * @param length How many bytes.
 * @returns Fresh random bytes.
 */
export function secureRandom(length: number): Uint8Array {
  aint(length, 0, 2 ** 30, "length");
  const out = new Uint8Array(length);
  for (let off = 0; off < length; off += 65536) {
    globalThis.crypto.getRandomValues(out.subarray(off, Math.min(off + 65536, length)));
  }
  return out;
}
