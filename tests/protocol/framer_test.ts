import assert from "node:assert/strict";
import { test } from "node:test";
import { concat } from "../../src/bytes.ts";
import { RelayError } from "../../src/errors.ts";
import { encodeFrame, FRAME_HEADER, FrameDecoder, frameRuns } from "../../src/protocol/framer.ts";

/** Small deterministic PRNG so failures are reproducible from the printed seed. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

function randomFrames(
  rand: (n: number) => number,
  count: number,
): { type: number; body: Uint8Array }[] {
  return Array.from({ length: count }, () => {
    const size = rand(10) === 0 ? rand(5000) : rand(64);
    const body = new Uint8Array(size);
    for (let i = 0; i < size; i++) body[i] = rand(256);
    return { type: rand(256), body };
  });
}

function randomSplit(rand: (n: number) => number, stream: Uint8Array): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let off = 0; off < stream.length;) {
    const mode = rand(4);
    const size = mode === 0 ? 1 : mode === 1 ? 1 + rand(8) : 1 + rand(4096);
    chunks.push(stream.slice(off, off + size)); // separate buffers, as a socket delivers
    off += size;
  }
  return chunks;
}

const isTooLarge = (e: unknown) => e instanceof RelayError && e.code === "frame-too-large";

test("FrameDecoder parses random chunk splits of valid streams identically (200 seeds)", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rand = rng(seed);
    const frames = randomFrames(rand, 1 + rand(40));
    const stream = concat(frames.map((f) => encodeFrame(f.type, f.body)));
    const decoder = new FrameDecoder(8192);
    const got = randomSplit(rand, stream).flatMap((c) => decoder.push(c));
    assert.equal(got.length, frames.length, `seed ${seed}`);
    for (let i = 0; i < frames.length; i++) {
      assert.equal(got[i]!.type, frames[i]!.type, `seed ${seed} frame ${i}`);
      assert.deepEqual(got[i]!.body, frames[i]!.body, `seed ${seed} frame ${i}`);
    }
    assert.equal(decoder.buffered, 0, `seed ${seed}`);
    // The frame-aligned runs cover exactly the stream, byte for byte.
    assert.deepEqual(concat(frameRuns(got)), stream, `seed ${seed}`);
  }
});

test("FrameDecoder hands out frames inside one chunk as views and merges them into one run", () => {
  const chunk = concat([
    encodeFrame(3, new Uint8Array([1, 2])),
    encodeFrame(3, new Uint8Array(0)),
    encodeFrame(2, new Uint8Array([9])),
  ]);
  const frames = new FrameDecoder(16).push(chunk);
  assert.deepEqual(frames.map((f) => f.type), [3, 3, 2]);
  for (const f of frames) assert.equal(f.body.buffer, chunk.buffer);
  const runs = frameRuns(frames);
  assert.equal(runs.length, 1);
  assert.equal(runs[0]!.buffer, chunk.buffer);
  assert.equal(runs[0]!.byteLength, chunk.byteLength);
  // Filtering out the middle frame breaks adjacency: two runs.
  assert.equal(frameRuns([frames[0]!, frames[2]!]).length, 2);
});

test("FrameDecoder rejects an oversize length as soon as the header is complete", () => {
  const header = new Uint8Array([0x7f, 0xff, 0xff, 0xff, 0x03]); // claims a 2 GiB body
  const d1 = new FrameDecoder(1024 * 1024);
  assert.throws(() => d1.push(header), isTooLarge);
  // Split header: the check fires on the byte that completes it, with no body sent at all.
  const d2 = new FrameDecoder(1024);
  assert.deepEqual(d2.push(header.subarray(0, 2)), []);
  assert.throws(() => d2.push(header.subarray(2)), isTooLarge);
  assert.ok(d2.buffered <= FRAME_HEADER, "nothing allocated beyond the header bytes");
  // A decoder that failed stays failed.
  assert.throws(() => d2.push(encodeFrame(1, new Uint8Array(1))), isTooLarge);
  // Exactly at the limit is fine; one over is not.
  assert.equal(new FrameDecoder(4).push(encodeFrame(1, new Uint8Array(4))).length, 1);
  assert.throws(() => new FrameDecoder(4).push(encodeFrame(1, new Uint8Array(5))), isTooLarge);
});

test("FrameDecoder checks a length that arrives after a complete frame in the same chunk", () => {
  const d = new FrameDecoder(8);
  const ok = encodeFrame(1, new Uint8Array(8));
  const bad = new Uint8Array([0, 0, 0, 9, 1]);
  assert.throws(() => d.push(concat([ok, bad])), isTooLarge);
});

test("encodeFrame writes the header and rejects bad types", () => {
  assert.deepEqual(encodeFrame(2, new Uint8Array([7])), new Uint8Array([0, 0, 0, 1, 2, 7]));
  assert.equal(encodeFrame(1, new Uint8Array(300)).length, FRAME_HEADER + 300);
  assert.throws(() => encodeFrame(256, new Uint8Array(0)), RangeError);
  assert.throws(() => new FrameDecoder(-1), RangeError);
});

test("FrameDecoder's cursor finds frames one at a time where they lie, and lets go of the chunk", () => {
  const chunk = concat([
    encodeFrame(2, new Uint8Array([7])),
    encodeFrame(3, new Uint8Array(20).fill(4)),
    encodeFrame(3, new Uint8Array([1, 2, 3])).subarray(0, 6), // incomplete: kept for later
  ]);
  const d = new FrameDecoder(8);
  d.feed(chunk);
  assert.ok(d.next());
  assert.deepEqual([d.frameBuffer, d.frameOffset, d.frameLength, d.frameType], [chunk, 0, 6, 2]);
  assert.deepEqual([...d.frame().body], [7]);
  // The limit was 8: raised now (a producer joined), it applies to the next frame already.
  assert.throws(() => {
    const strict = new FrameDecoder(8);
    strict.feed(chunk);
    while (strict.next());
  }, isTooLarge);
  d.maxBody = 64;
  assert.ok(d.next());
  assert.deepEqual([d.frameBuffer, d.frameOffset, d.frameLength, d.frameType], [chunk, 6, 25, 3]);
  assert.equal(d.next(), false);
  assert.equal(d.frameBuffer.length, 0, "no reference to a used-up chunk");
  assert.equal(d.buffered, 6);
  // The rest arrives: the frame is assembled in a buffer of its own.
  d.feed(new Uint8Array([2, 3]));
  assert.ok(d.next());
  assert.notEqual(d.frameBuffer.buffer, chunk.buffer);
  assert.deepEqual([...d.frame().body], [1, 2, 3]);
  assert.equal(d.next(), false);
  assert.equal(d.buffered, 0);
});
