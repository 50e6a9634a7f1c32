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

/**
 * Validates an AEAD `headroom` argument.
 *
 * @param headroom The requested headroom (undefined: none).
 * @returns It, as a non-negative integer.
 * @throws {RangeError} for a negative or fractional value.
 */
export function headroomOf(headroom: number | undefined): number {
  return headroom === undefined ? 0 : aint(headroom, 0, 0xffff, "headroom");
}

/**
 * Puts a sealed message behind `headroom` free bytes (for adapters whose cipher returns a
 * fresh buffer of its own: one copy, the one the caller would otherwise make).
 *
 * @param sealed `ciphertext ‖ tag`.
 * @param headroom Free bytes wanted in front.
 * @returns `sealed` itself when `headroom` is 0, else a new buffer.
 */
export function behindHeadroom(sealed: Uint8Array, headroom: number): Uint8Array {
  if (headroom === 0) return sealed;
  const out = new Uint8Array(headroom + sealed.length);
  out.set(sealed, headroom);
  return out;
}
