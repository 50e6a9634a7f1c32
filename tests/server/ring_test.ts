import assert from "node:assert/strict";
import { test } from "node:test";
import { ControlKind } from "../../src/protocol/control.ts";
import { KEEP_CHUNK, type MemoryAccount, Ring } from "../../src/server/ring.ts";

const event = (stream: number) =>
  ({
    stream,
    message: { kind: ControlKind.ProducerLeft, tag: new Uint8Array(16), reason: 1 },
  }) as const;

test("Ring keeps frames of large chunks in place, with seq, stream and byte accounting", () => {
  const account: MemoryAccount = { used: 0, budget: 1000 };
  const ring = new Ring(account);
  const chunk = new Uint8Array(KEEP_CHUNK);
  chunk.set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(ring.pushData(chunk.subarray(2, 5), 7n, 1), 0);
  assert.equal(ring.pushEvent(event(1)), 1);
  assert.equal(ring.pushData(chunk.subarray(5, 9), 8n, 1), 2);
  assert.deepEqual([ring.base, ring.end, ring.size, ring.bytes, account.used], [0, 3, 3, 7, 7]);
  assert.equal(ring.buffer(0), chunk.buffer);
  assert.deepEqual([ring.offset(2), ring.length(2)], [5, 4]);
  assert.deepEqual([...ring.frame(2)], [5, 6, 7, 8]);
  assert.equal(ring.event(0), undefined);
  assert.equal(ring.event(1)?.stream, 1);
  assert.deepEqual([ring.seq(0), ring.seq(2), ring.stream(2)], [7n, 8n, 1]);
  assert.ok(ring.seqBelow(0, 8n) && !ring.seqBelow(2, 8n));
  ring.shift();
  ring.shift();
  assert.deepEqual([ring.base, ring.size, ring.bytes, account.used], [2, 1, 4, 4]);
  assert.ok(!ring.has(1) && ring.has(2) && !ring.has(3));
  ring.clear();
  assert.deepEqual([ring.base, ring.end, ring.bytes, account.used], [3, 3, 0, 0]);
  assert.ok(ring.overBudget(1001) && !ring.overBudget(1000));
});

test("Ring seqs round-trip across the whole u64 range, and compare exactly", () => {
  const ring = new Ring();
  const seqs = [0n, 1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n];
  seqs.push(2n ** 64n - 2n, 2n ** 64n - 1n);
  const f = new Uint8Array(1);
  for (const s of seqs) ring.pushData(f, s, 3);
  // The number form (readU64's, up to 2^53 - 1) stores the same seqs.
  for (const s of seqs) if (s < 2n ** 53n) ring.pushData(f, Number(s), 3);
  const all = [...seqs, ...seqs.filter((s) => s < 2n ** 53n)];
  all.forEach((s, i) => {
    assert.equal(ring.seq(i), s);
    assert.equal(ring.seqBelow(i, s), false);
    assert.equal(ring.seqBelow(i, s + 1n), true);
  });
});

test("Ring takes a frame by offset and length within a buffer, in place or copied", () => {
  const ring = new Ring();
  const big = new Uint8Array(KEEP_CHUNK).map((_, i) => i & 0xff);
  const small = Uint8Array.of(9, 8, 7, 6, 5);
  ring.pushData(big, 0, 1, 10, 4);
  ring.pushData(small.subarray(1), 1, 1, 1, 3); // a view at an offset, and an offset in it
  assert.equal(ring.buffer(0), big.buffer);
  assert.deepEqual([ring.offset(0), ring.length(0)], [10, 4]);
  assert.deepEqual([...ring.frame(0)], [10, 11, 12, 13]);
  assert.notEqual(ring.buffer(1), small.buffer);
  assert.deepEqual([...ring.frame(1)], [7, 6, 5]);
  assert.equal(ring.bytes, 7);
});

test("Ring grows past its initial capacity with a wrapped head, keeping order", () => {
  const ring = new Ring();
  const chunk = new Uint8Array(KEEP_CHUNK);
  let next = 0;
  // Wrap the head first, then grow twice while wrapped.
  for (; next < 10; next++) ring.pushData(chunk.subarray(next, next + 1), BigInt(next), 1);
  for (let i = 0; i < 8; i++) ring.shift();
  for (; next < 60; next++) {
    if (next % 7 === 0) ring.pushEvent(event(next));
    else ring.pushData(chunk.subarray(next, next + 1), BigInt(next), 1);
  }
  assert.equal(ring.base, 8);
  for (let i = ring.base; i < ring.end; i++) {
    const e = ring.event(i);
    if (e !== undefined) {
      assert.equal(e.stream % 7, 0);
    } else {
      const seq = Number(ring.seq(i));
      assert.equal(ring.offset(i), seq);
      assert.equal(ring.length(i), 1);
    }
  }
  const seen = [];
  for (let i = ring.base; i < ring.end; i++) {
    seen.push(ring.event(i)?.stream ?? Number(ring.seq(i)));
  }
  assert.deepEqual(seen, Array.from({ length: 52 }, (_, i) => i + 8));
});

test("Ring copies frames of small chunks side by side into a slab, never into the chunk", () => {
  const ring = new Ring();
  const a = new Uint8Array([1, 2, 3, 4]);
  const b = new Uint8Array([9, 5, 6, 9]);
  ring.pushData(a.subarray(1, 3), 0n, 1);
  ring.pushData(b.subarray(1, 3), 1n, 1);
  a.fill(0);
  b.fill(0); // the caller may reuse a small chunk
  assert.notEqual(ring.buffer(0), a.buffer);
  assert.equal(ring.buffer(0), ring.buffer(1));
  assert.equal(ring.offset(1), ring.offset(0) + 2);
  assert.deepEqual([...ring.frame(0), ...ring.frame(1)], [2, 3, 5, 6]);
  assert.equal(ring.buffer(0).byteLength, 512); // a quiet session's slab is small
  // A frame too big for the slab's remaining room starts a slab that fits it.
  const big = new Uint8Array(KEEP_CHUNK - 1).fill(7);
  ring.pushData(big.subarray(1), 2n, 1);
  assert.notEqual(ring.buffer(2), ring.buffer(0));
  assert.ok(ring.frame(2).every((x) => x === 7) && ring.length(2) === KEEP_CHUNK - 2);
  assert.deepEqual([...ring.frame(0)], [2, 3]); // the earlier slab is left as it was
});

/** Pushes `count` frames of `size` bytes (each filled with its seq's low byte), keeping `keep`. */
function stream(ring: Ring, from: number, count: number, size: number, keep: number): void {
  for (let i = from; i < from + count; i++) {
    ring.pushData(new Uint8Array(size).fill(i & 0xff), BigInt(i), 1);
    while (ring.size > keep) ring.shift();
  }
}

function assertIntact(ring: Ring): void {
  for (let i = ring.base; i < ring.end; i++) {
    const want = Number(ring.seq(i)) & 0xff;
    assert.ok(ring.frame(i).every((x) => x === want), `frame ${ring.seq(i)} overwritten`);
  }
}

test("Ring slabs grow with the bytes held, so a busy ring holds few buffers", () => {
  const ring = new Ring();
  stream(ring, 0, 20_000, 100, 10_000);
  const buffers = new Set<ArrayBufferLike>();
  for (let i = ring.base; i < ring.end; i++) buffers.add(ring.buffer(i));
  assertIntact(ring);
  // 1 MB held: the slabs reach 128-256 KiB, so about ten buffers, not 10,000.
  assert.ok(buffers.size <= 12, `${buffers.size} buffers`);
  let pinned = 0;
  for (const b of buffers) pinned += b.byteLength;
  assert.ok(pinned < ring.bytes * 1.5, `${pinned} bytes pinned for ${ring.bytes}`);
});

test("Ring reuses emptied slabs while nothing is lent, so a steady stream allocates nothing", () => {
  const ring = new Ring(undefined, () => true);
  stream(ring, 0, 5_000, 200, 1_000); // 200 KB held: 32 KiB slabs
  const seen = new Set<ArrayBufferLike>();
  const collect = () => {
    for (let i = ring.base; i < ring.end; i++) seen.add(ring.buffer(i));
  };
  collect();
  const before = new Set(seen);
  for (let n = 0; n < 20; n++) {
    stream(ring, 5_000 + n * 1_000, 1_000, 200, 1_000);
    collect();
    assertIntact(ring);
  }
  // 4 MB more streamed through, all of it in the slabs that were there (or spares of them).
  const fresh = [...seen].filter((b) => !before.has(b));
  assert.ok(fresh.length <= 2, `${fresh.length} new slabs for 4 MB`);
  assert.ok(ring.slabCount <= 9 + 2, `${ring.slabCount} slabs held`);
});

test("Ring never reuses a slab while a connection may hold a view of it", () => {
  let released = false;
  let asked = 0;
  const ring = new Ring(undefined, () => {
    asked++;
    return released;
  });
  stream(ring, 0, 2_000, 200, 500);
  // A consumer took views of everything held, and its socket still has them queued.
  const lent = [];
  for (let i = ring.base; i < ring.end; i++) lent.push({ seq: ring.seq(i), view: ring.frame(i) });
  stream(ring, 2_000, 3_000, 200, 500); // every lent frame is evicted, its slab emptied
  assert.ok(asked > 0, "the ring asked before taking a spare");
  for (const { seq, view } of lent) {
    assert.ok(view.every((x) => x === (Number(seq) & 0xff)), `lent frame ${seq} overwritten`);
  }
  assertIntact(ring);
  // Once released, the spares are taken again and the stream stays intact.
  released = true;
  const slabs = ring.slabCount;
  stream(ring, 5_000, 3_000, 200, 500);
  assertIntact(ring);
  assert.ok(ring.slabCount <= slabs, `${ring.slabCount} slabs after release, ${slabs} before`);
});

test("Ring frames of large chunks are kept in place and never count as slabs", () => {
  const ring = new Ring(undefined, () => true);
  const chunk = new Uint8Array(KEEP_CHUNK * 2).fill(3);
  ring.pushData(chunk.subarray(0, 100), 0n, 1);
  ring.pushData(chunk.subarray(100, 300), 1n, 1);
  assert.equal(ring.buffer(0), chunk.buffer);
  assert.equal(ring.buffer(1), chunk.buffer);
  assert.equal(ring.slabCount, 0);
  ring.clear();
  assert.equal(ring.slabCount, 0);
});

/** A small seeded generator (mulberry32), so a failing case can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Where the run holding `i` ends, found by walking the entries one by one. */
function walkRunEnd(ring: Ring, i: number): number {
  if (ring.event(i) !== undefined) return i + 1;
  let j = i + 1;
  while (
    j < ring.end && ring.event(j) === undefined && ring.stream(j) === ring.stream(i) &&
    ring.buffer(j) === ring.buffer(j - 1) &&
    ring.offset(j) === ring.offset(j - 1) + ring.length(j - 1)
  ) j++;
  return j;
}

for (const seed of [1, 2, 3, 4, 5]) {
  test(`Ring runs match a frame-by-frame walk through pushes, events, evictions and growth (seed ${seed})`, () => {
    const next = random(seed);
    const ring = new Ring(undefined, () => next() < 0.5);
    let chunk = new Uint8Array(KEEP_CHUNK * 4);
    let at = 0;
    let stream = 1;
    let seq = 0n;
    let keep = 40;
    for (let op = 0; op < 6_000; op++) {
      const r = next();
      if (r < 0.45) {
        // The next frame of the current large chunk: usually right after the last one.
        const size = 1 + Math.floor(next() * 300);
        if (next() < 0.05) at += 1; // a gap: the next frame does not continue the run
        if (at + size > chunk.length) {
          chunk = new Uint8Array(KEEP_CHUNK * 4);
          at = 0;
        }
        ring.pushData(chunk.subarray(at, at + size), seq++, stream);
        at += size;
      } else if (r < 0.75) {
        ring.pushData(new Uint8Array(1 + Math.floor(next() * 100)), seq++, stream); // a slab copy
      } else if (r < 0.8) {
        ring.pushEvent(event(stream));
      } else if (r < 0.83) {
        stream++;
      } else if (r < 0.84) {
        keep = 10 + Math.floor(next() * 400); // shrink or grow the ring (and wrap its head)
      } else if (r < 0.845) {
        ring.clear();
      }
      while (ring.size > keep) ring.shift();
      if (op % 7 === 0) {
        for (let i = ring.base; i < ring.end; i++) {
          assert.equal(ring.runEnd(i), walkRunEnd(ring, i), `op ${op}, entry ${i}`);
        }
      }
    }
  });
}

test("Ring runCut stops at the first frame that starts at or beyond a byte offset", () => {
  const ring = new Ring();
  const chunk = new Uint8Array(KEEP_CHUNK);
  const sizes = [10, 1, 30, 7, 7, 100, 2];
  let at = 0;
  sizes.forEach((n, i) => {
    ring.pushData(chunk.subarray(at, at + n), BigInt(i), 1);
    at += n;
  });
  assert.equal(ring.runEnd(0), sizes.length);
  for (let limit = 0; limit <= at + 1; limit++) {
    let want = 1;
    while (want < sizes.length && ring.offset(want) < limit) want++;
    assert.equal(ring.runCut(0, sizes.length, limit), want, `limit ${limit}`);
  }
  assert.equal(ring.runCut(2, 5, 1_000), 5);
  assert.equal(ring.runCut(2, 5, 0), 3, "always at least the first frame");
});
