import assert from "node:assert/strict";
import { test } from "node:test";
import {
  abytes,
  concat,
  equals,
  equalsAt,
  fromHex,
  readU32BE,
  readU64,
  readU64BE,
  timingSafeEqual,
  toHex,
  writeU32BE,
  writeU64BE,
} from "../src/bytes.ts";

const u8 = (...b: number[]) => new Uint8Array(b);

test("concat joins arrays in order into a fresh array", () => {
  const a = u8(1, 2);
  const out = concat([a, u8(), u8(3)]);
  assert.deepEqual(out, u8(1, 2, 3));
  out[0] = 9;
  assert.equal(a[0], 1);
  assert.deepEqual(concat([]), u8());
});

test("equals and timingSafeEqual compare length and content", () => {
  for (const eq of [equals, timingSafeEqual]) {
    assert.equal(eq(u8(1, 2), u8(1, 2)), true);
    assert.equal(eq(u8(1, 2), u8(1, 3)), false);
    assert.equal(eq(u8(1, 2), u8(1, 2, 0)), false);
    assert.equal(eq(u8(), u8()), true);
  }
});

test("readU32BE/writeU32BE round-trip the full range and check bounds", () => {
  const buf = new Uint8Array(6);
  for (const v of [0, 1, 255, 256, 0x7fffffff, 0x80000000, 0xffffffff]) {
    writeU32BE(buf, 2, v);
    assert.equal(readU32BE(buf, 2), v);
  }
  writeU32BE(buf, 0, 0x01020304);
  assert.deepEqual(buf.subarray(0, 4), u8(1, 2, 3, 4));
  assert.throws(() => writeU32BE(buf, 3, 1), RangeError);
  assert.throws(() => writeU32BE(buf, 0, 2 ** 32), RangeError);
  assert.throws(() => writeU32BE(buf, 0, -1), RangeError);
  assert.throws(() => readU32BE(buf, 3), RangeError);
});

test("readU64BE/writeU64BE round-trip bigint and safe numbers and check bounds", () => {
  const buf = new Uint8Array(8);
  for (const v of [0n, 1n, 0xffffffffn, 0x100000000n, (1n << 64n) - 1n]) {
    writeU64BE(buf, 0, v);
    assert.equal(readU64BE(buf, 0), v);
  }
  writeU64BE(buf, 0, Number.MAX_SAFE_INTEGER);
  assert.equal(readU64BE(buf, 0), BigInt(Number.MAX_SAFE_INTEGER));
  writeU64BE(buf, 0, 0x0102030405060708n);
  assert.deepEqual(buf, u8(1, 2, 3, 4, 5, 6, 7, 8));
  assert.throws(() => writeU64BE(buf, 0, 1n << 64n), RangeError);
  assert.throws(() => writeU64BE(buf, 0, -1n), RangeError);
  assert.throws(() => writeU64BE(buf, 0, 1.5), RangeError);
  assert.throws(() => writeU64BE(buf, 1, 0n), RangeError);
  assert.throws(() => readU64BE(buf, 1), RangeError);
});

test("readU64 is an exact number up to 2^53 - 1 and a bigint above, never both", () => {
  const buf = new Uint8Array(10);
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  for (const v of [0n, 1n, 0xffffffffn, 0x100000000n, max - 1n, max]) {
    writeU64BE(buf, 2, v);
    assert.equal(readU64(buf, 2), Number(v));
  }
  for (const v of [max + 1n, max + 2n, 1n << 60n, (1n << 64n) - 1n]) {
    writeU64BE(buf, 2, v);
    assert.equal(readU64(buf, 2), v);
    assert.equal(readU64BE(buf, 2), v);
  }
  assert.throws(() => readU64(buf, 3), RangeError);
  assert.throws(() => readU64(buf, -1), RangeError);
});

test("toHex/fromHex round-trip and reject malformed hex", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(fromHex(toHex(all)), all);
  assert.equal(toHex(u8(0, 15, 255)), "000fff");
  assert.deepEqual(fromHex("ABcd"), u8(0xab, 0xcd));
  assert.throws(() => fromHex("abc"), TypeError);
  assert.throws(() => fromHex("zz"), TypeError);
});

test("abytes names the argument and the expected length", () => {
  assert.throws(() => abytes(new Uint8Array(16), 32, "key"), {
    name: "TypeError",
    message: '"key" expected 32 bytes, got 16',
  });
  assert.throws(() => abytes("x", undefined, "data"), {
    name: "TypeError",
    message: '"data" expected Uint8Array, got string',
  });
  const ok = new Uint8Array(2);
  assert.equal(abytes(ok, 2), ok);
});

test("toBase64Url/fromBase64Url round-trip every length and reject malformed text", async () => {
  const { toBase64Url, fromBase64Url } = await import("../src/bytes.ts");
  for (let len = 0; len < 70; len++) {
    const bytes = Uint8Array.from({ length: len }, (_, i) => (i * 89 + len) & 0xff);
    const text = toBase64Url(bytes);
    assert.match(text, /^[A-Za-z0-9_-]*$/);
    assert.deepEqual(fromBase64Url(text), bytes);
  }
  assert.equal(toBase64Url(new TextEncoder().encode("hydra")), "aHlkcmE");
  assert.throws(() => fromBase64Url("aHlkcmE="), TypeError);
  assert.throws(() => fromBase64Url("a+b/"), TypeError);
  assert.throws(() => fromBase64Url("abcde"), TypeError);
  assert.throws(() => fromBase64Url("aHlkcmF"), TypeError); // non-zero trailing bits
});

test("crc32 matches the standard check value", async () => {
  const { crc32 } = await import("../src/bytes.ts");
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});

test("equalsAt compares in place and is false out of bounds", () => {
  const buf = new Uint8Array([1, 2, 3, 4]);
  assert.ok(equalsAt(new Uint8Array([2, 3]), buf, 1));
  assert.ok(!equalsAt(new Uint8Array([2, 4]), buf, 1));
  assert.ok(!equalsAt(new Uint8Array([3, 4, 5]), buf, 2), "past the end");
  assert.ok(!equalsAt(new Uint8Array([1]), buf, -1), "before the start");
  assert.ok(equalsAt(new Uint8Array(0), buf, 4));
});
