/**
 * @module
 * Byte helpers that stand in for `@std/bytes` (JSR is unreachable here): concatenation,
 * equality (plain and constant-time), big-endian integers, hex, and the argument asserts
 * every public function uses. Runtime-agnostic: no runtime API is touched.
 */

/**
 * Throws a `TypeError` unless `value` is a `Uint8Array`, optionally of an exact length.
 *
 * @param value The value to check.
 * @param length The exact length required, if any.
 * @param name The argument name used in the message.
 * @returns `value`, typed as `Uint8Array`.
 * @throws {TypeError} `"key" expected 32 bytes, got 16` and the like.
 * @example
 * ```ts
 * import { abytes } from "./bytes.ts";
 * abytes(new Uint8Array(32), 32, "key");
 * ```
 */
export function abytes(value: unknown, length?: number, name = "value"): Uint8Array {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`"${name}" expected Uint8Array, got ${typeof value}`);
  }
  if (length !== undefined && value.length !== length) {
    throw new TypeError(`"${name}" expected ${length} bytes, got ${value.length}`);
  }
  return value;
}

/**
 * Throws a `RangeError` unless `value` is an integer in `[min, max]`.
 *
 * @param value The number to check.
 * @param min Smallest allowed value.
 * @param max Largest allowed value.
 * @param name The argument name used in the message.
 * @returns `value`.
 * @throws {RangeError} when out of range or not an integer.
 * @example
 * ```ts
 * import { aint } from "./bytes.ts";
 * aint(5, 0, 10, "count");
 * ```
 */
export function aint(value: number, min: number, max: number, name = "value"): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`"${name}" expected an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

/**
 * Concatenates byte arrays into one new array.
 *
 * @param parts The arrays to join, in order.
 * @returns A fresh array holding all bytes.
 * @example
 * ```ts
 * import { concat } from "./bytes.ts";
 * concat([new Uint8Array([1]), new Uint8Array([2, 3])]); // Uint8Array [1, 2, 3]
 * ```
 */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Byte-wise equality. Not constant-time: use {@link timingSafeEqual} for secrets.
 *
 * @param a First array.
 * @param b Second array.
 * @returns `true` when both hold the same bytes.
 * @example
 * ```ts
 * import { equals } from "./bytes.ts";
 * equals(new Uint8Array([1]), new Uint8Array([1])); // true
 * ```
 */
export function equals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether `buf` holds the bytes of `a` at offset `at` (no view made: for per-frame checks).
 *
 * @param a The expected bytes.
 * @param buf Where to look.
 * @param at Offset in `buf`.
 * @returns `true` when `buf[at .. at + a.length)` equals `a`.
 * @example
 * ```ts
 * import { equalsAt } from "./bytes.ts";
 * equalsAt(new Uint8Array([2, 3]), new Uint8Array([1, 2, 3]), 1); // true
 * ```
 */
export function equalsAt(a: Uint8Array, buf: Uint8Array, at: number): boolean {
  if (at < 0 || at + a.length > buf.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== buf[at + i]) return false;
  return true;
}

/**
 * Constant-time equality: the time taken depends only on the lengths, never on where the
 * arrays differ, so comparing a secret (a MAC, a pinned key) leaks nothing.
 *
 * @param a First array.
 * @param b Second array.
 * @returns `true` when both hold the same bytes.
 * @example
 * ```ts
 * import { timingSafeEqual } from "./bytes.ts";
 * timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])); // true
 * ```
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * Reads an unsigned 32-bit big-endian integer.
 *
 * @param buf Source bytes.
 * @param offset Where the integer starts.
 * @returns The integer.
 * @throws {RangeError} when fewer than 4 bytes remain.
 * @example
 * ```ts
 * import { readU32BE } from "./bytes.ts";
 * readU32BE(new Uint8Array([0, 0, 1, 0]), 0); // 256
 * ```
 */
export function readU32BE(buf: Uint8Array, offset: number): number {
  if (offset < 0 || offset + 4 > buf.length) throw new RangeError("readU32BE out of bounds");
  return ((buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) |
    buf[offset + 3]!) >>> 0;
}

/**
 * Writes an unsigned 32-bit big-endian integer.
 *
 * @param buf Target bytes.
 * @param offset Where to write.
 * @param value An integer in `[0, 2^32 - 1]`.
 * @throws {RangeError} when out of bounds or out of range.
 * @example
 * ```ts
 * import { writeU32BE } from "./bytes.ts";
 * writeU32BE(new Uint8Array(4), 0, 256);
 * ```
 */
export function writeU32BE(buf: Uint8Array, offset: number, value: number): void {
  aint(value, 0, 0xffffffff, "value");
  if (offset < 0 || offset + 4 > buf.length) throw new RangeError("writeU32BE out of bounds");
  buf[offset] = value >>> 24;
  buf[offset + 1] = (value >>> 16) & 0xff;
  buf[offset + 2] = (value >>> 8) & 0xff;
  buf[offset + 3] = value & 0xff;
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * Reads an unsigned 64-bit big-endian integer.
 *
 * @param buf Source bytes.
 * @param offset Where the integer starts.
 * @returns The integer as a `bigint`.
 * @throws {RangeError} when fewer than 8 bytes remain.
 * @example
 * ```ts
 * import { readU64BE } from "./bytes.ts";
 * readU64BE(new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0]), 0); // 4294967296n
 * ```
 */
export function readU64BE(buf: Uint8Array, offset: number): bigint {
  return BigInt(readU64(buf, offset));
}

/**
 * Reads an unsigned 64-bit big-endian integer as an exact `number` when it is at most
 * `Number.MAX_SAFE_INTEGER` (2^53 - 1), as a `bigint` above. Every seq is a number in
 * practice (2^53 frames at a million a second take 285 years), so hot paths compare and
 * count with doubles and make no BigInt per frame; the two forms never overlap, so `===`
 * between two results is value equality.
 *
 * @param buf Source bytes.
 * @param offset Where the integer starts.
 * @returns The integer.
 * @throws {RangeError} when fewer than 8 bytes remain.
 * @example
 * ```ts
 * import { readU64 } from "./bytes.ts";
 * readU64(new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0]), 0); // 4294967296
 * readU64(new Uint8Array(8).fill(0xff), 0); // 18446744073709551615n
 * ```
 */
export function readU64(buf: Uint8Array, offset: number): number | bigint {
  if (offset < 0 || offset + 8 > buf.length) throw new RangeError("readU64 out of bounds");
  const hi = readU32BE(buf, offset);
  const lo = readU32BE(buf, offset + 4);
  return hi < 0x20_0000 ? hi * 0x1_0000_0000 + lo : (BigInt(hi) << 32n) | BigInt(lo);
}

/**
 * Writes an unsigned 64-bit big-endian integer.
 *
 * @param buf Target bytes.
 * @param offset Where to write.
 * @param value A `bigint` in `[0, 2^64 - 1]`, or a safe non-negative integer.
 * @throws {RangeError} when out of bounds or out of range.
 * @example
 * ```ts
 * import { writeU64BE } from "./bytes.ts";
 * writeU64BE(new Uint8Array(8), 0, 1n << 40n);
 * ```
 */
export function writeU64BE(buf: Uint8Array, offset: number, value: bigint | number): void {
  if (typeof value === "number") aint(value, 0, Number.MAX_SAFE_INTEGER, "value");
  const v = BigInt(value);
  if (v < 0n || v > U64_MAX) throw new RangeError(`"value" expected a u64, got ${v}`);
  if (offset < 0 || offset + 8 > buf.length) throw new RangeError("writeU64BE out of bounds");
  writeU32BE(buf, offset, Number(v >> 32n));
  writeU32BE(buf, offset + 4, Number(v & 0xffffffffn));
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * Encodes bytes as lower-case hex.
 *
 * @param bytes The bytes.
 * @returns The hex string.
 * @example
 * ```ts
 * import { toHex } from "./bytes.ts";
 * toHex(new Uint8Array([255, 1])); // "ff01"
 * ```
 */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += HEX[b];
  return s;
}

/**
 * Decodes hex (either case) into bytes.
 *
 * @param hex An even-length hex string.
 * @returns The bytes.
 * @throws {TypeError} on odd length or a non-hex character.
 * @example
 * ```ts
 * import { fromHex } from "./bytes.ts";
 * fromHex("ff01"); // Uint8Array [255, 1]
 * ```
 */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0) throw new TypeError(`hex expected even length, got ${hex.length}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const byte = hex.slice(i * 2, i * 2 + 2);
    if (!/^[0-9a-fA-F]{2}$/.test(byte)) {
      throw new TypeError(`hex has a non-hex character at ${i * 2}`);
    }
    out[i] = parseInt(byte, 16);
  }
  return out;
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64URL_INDEX = new Map([...B64URL].map((c, i) => [c, i]));

/**
 * Encodes bytes as unpadded base64url (RFC 4648 §5).
 *
 * @param bytes The bytes.
 * @returns The text.
 * @example
 * ```ts
 * import { toBase64Url } from "./bytes.ts";
 * toBase64Url(new Uint8Array([251, 255])); // "-_8"
 * ```
 */
export function toBase64Url(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = i + 2 < bytes.length ? 4 : i + 1 < bytes.length ? 3 : 2;
    for (let c = 0; c < chars; c++) out += B64URL[(n >>> (18 - 6 * c)) & 63];
  }
  return out;
}

/**
 * Decodes unpadded base64url (RFC 4648 §5), strictly: no padding, no other alphabet, no
 * non-zero trailing bits.
 *
 * @param text The text.
 * @returns The bytes.
 * @throws {TypeError} on any character outside the alphabet or an impossible length.
 * @example
 * ```ts
 * import { fromBase64Url } from "./bytes.ts";
 * fromBase64Url("-_8"); // Uint8Array [251, 255]
 * ```
 */
export function fromBase64Url(text: string): Uint8Array {
  if (text.length % 4 === 1) throw new TypeError(`base64url length ${text.length} is impossible`);
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const v = B64URL_INDEX.get(text[i]!);
    if (v === undefined) throw new TypeError(`base64url has an invalid character at ${i}`);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >>> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) throw new TypeError("base64url has non-zero trailing bits");
  return out;
}

let crcTable: Uint32Array | undefined;

/**
 * CRC-32 (IEEE 802.3): an error-detecting checksum for typed-in text such as session tokens.
 * Not a security measure.
 *
 * @param bytes The data.
 * @returns The checksum as an unsigned 32-bit integer.
 * @example
 * ```ts
 * import { crc32 } from "./bytes.ts";
 * crc32(new TextEncoder().encode("123456789")); // 0xcbf43926
 * ```
 */
export function crc32(bytes: Uint8Array): number {
  crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let crc = 0xffffffff;
  for (const b of bytes) crc = crcTable[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
