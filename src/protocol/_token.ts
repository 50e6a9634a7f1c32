/**
 * @module
 * The printable token form both capabilities share (docs/PROTOCOL.md §1, §8):
 * `prefix ‖ base64url(body ‖ CRC-32(body))`. The checksum catches typos; it is not a security
 * measure. Errors say what is wrong and never echo the token.
 */

import { concat, crc32, fromBase64Url, toBase64Url, writeU32BE } from "../bytes.ts";

function crcOf(body: Uint8Array): Uint8Array {
  const check = new Uint8Array(4);
  writeU32BE(check, 0, crc32(body));
  return check;
}

/**
 * The token of `body`.
 * @param prefix E.g. `"hydra1_"`.
 * @param body The bytes.
 * @returns `prefix ‖ base64url(body ‖ CRC-32)`.
 */
export function encodeToken(prefix: string, body: Uint8Array): string {
  return prefix + toBase64Url(concat([body, crcOf(body)]));
}

/**
 * The body of a token.
 * @param token The printable form (surrounding white space ignored).
 * @param prefix The prefix it must have.
 * @param bodyLength The body's exact length.
 * @param what What it is, for errors (e.g. `"session token"`).
 * @returns The body.
 * @throws {TypeError} for a wrong type, prefix, alphabet, length or checksum.
 */
export function decodeToken(
  token: string,
  prefix: string,
  bodyLength: number,
  what: string,
): Uint8Array {
  if (typeof token !== "string") {
    throw new TypeError(`"token" expected string, got ${typeof token}`);
  }
  const text = token.trim();
  if (!text.startsWith(prefix)) throw new TypeError(`${what} must start with "${prefix}"`);
  let bytes: Uint8Array;
  try {
    bytes = fromBase64Url(text.slice(prefix.length));
  } catch {
    throw new TypeError(`${what} is not valid base64url`);
  }
  const total = bodyLength + 4;
  if (bytes.length !== total) {
    throw new TypeError(`${what} holds ${bytes.length} bytes, expected ${total}`);
  }
  const body = bytes.subarray(0, bodyLength);
  const check = crcOf(body);
  if (check.some((b, i) => b !== bytes[bodyLength + i])) {
    throw new TypeError(`${what} checksum mismatch (mistyped or truncated?)`);
  }
  return body;
}
