import assert from "node:assert/strict";
import { test } from "node:test";
import { ControlKind } from "../../src/protocol/control.ts";
import { type MemoryAccount, Ring } from "../../src/server/ring.ts";

const event = (stream: number) =>
  ({
    stream,
    message: { kind: ControlKind.ProducerLeft, tag: new Uint8Array(16), reason: 1 },
  }) as const;

test("Ring keeps frames as views of their chunk, with seq, stream and byte accounting", () => {
  const account: MemoryAccount = { used: 0, budget: 1000 };
  const ring = new Ring(account);
  const chunk = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
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
  seqs.forEach((s, i) => {
    assert.equal(ring.seq(i), s);
    assert.equal(ring.seqBelow(i, s), false);
    assert.equal(ring.seqBelow(i, s + 1n), true);
  });
});

test("Ring grows past its initial capacity with a wrapped head, keeping order", () => {
  const ring = new Ring();
  const chunk = new Uint8Array(1000);
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
