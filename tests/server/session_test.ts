/**
 * RelaySession, the sans-IO heart of the relay, driven directly: what a consumer is handed
 * (`take`) for a given sequence of producer events.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { ControlKind, type StreamStart } from "../../src/protocol/control.ts";
import { Logger } from "../../src/server/log.ts";
import { DEFAULT_LIMITS } from "../../src/server/options.ts";
import { type Outgoing, RelaySession, type SubscriberConn } from "../../src/server/session.ts";

function newSession(ringFrames = DEFAULT_LIMITS.ringFrames): RelaySession {
  return new RelaySession(new Uint8Array(32), new Uint8Array(8), {
    limits: { ...DEFAULT_LIMITS, ringFrames },
    log: new Logger("off", () => {}),
    counters: { lagged: 0, slowDisconnects: 0 },
    onIdle: () => {},
  });
}

const conn = (id: number): SubscriberConn => ({ id, wake: () => {}, holding: false });

const start = (epoch: Uint8Array, firstSeq: bigint): StreamStart => ({
  tag: new Uint8Array(8),
  epoch,
  startedAt: 0n,
  generation: 0,
  firstSeq,
  signature: new Uint8Array(64),
});

/** Each data frame here is one byte: its seq. The seqs of the frames in `out`. */
function seqs(out: Outgoing[]): number[] {
  return out.flatMap((o) => o.kind === "bytes" ? [...o.bytes] : []);
}

/** The producer's frames `from`…`to - 1`, each in a buffer of its own. */
function send(s: RelaySession, from: number, to: number): void {
  for (let seq = from; seq < to; seq++) s.appendData(Uint8Array.of(seq), BigInt(seq), 0);
}

test("a consumer resuming on a restarted relay skips what it has, even when the stream start and those frames are taken at once", () => {
  const s = newSession();
  const epoch = new Uint8Array(16).fill(7);
  // The relay restarted: the consumer comes back first, at seq 5 of a stream unknown here.
  const { sub, first } = s.addConsumer(conn(1), undefined, { epoch, nextSeq: 5n });
  assert.deepEqual(first, []);
  // Its producer resumes the stream, resending from seq 0, before the consumer's turn.
  s.setProducer(conn(2));
  s.startStream(start(epoch, 0n));
  send(s, 0, 10);
  const out = s.take(sub, 1 << 20);
  const control = out.find((o) => o.kind === "control");
  assert.ok(control?.kind === "control" && control.message.kind === ControlKind.StreamStart);
  assert.equal(control.message.firstSeq, 5n, "announced from where the consumer left off");
  assert.deepEqual(seqs(out), [5, 6, 7, 8, 9]);
  send(s, 10, 12);
  assert.deepEqual(seqs(s.take(sub, 1 << 20)), [10, 11]);
});

test("a consumer resuming on a restarted relay in separate turns gets the same", () => {
  const s = newSession();
  const epoch = new Uint8Array(16).fill(9);
  const { sub } = s.addConsumer(conn(1), undefined, { epoch, nextSeq: 3n });
  s.setProducer(conn(2));
  s.startStream(start(epoch, 0n));
  const head = s.take(sub, 1 << 20);
  assert.equal(seqs(head).length, 0);
  send(s, 0, 6);
  assert.deepEqual(seqs(s.take(sub, 1 << 20)), [3, 4, 5]);
});

test("a consumer of another stream's epoch gets the whole new stream", () => {
  const s = newSession();
  const { sub } = s.addConsumer(conn(1), undefined, {
    epoch: new Uint8Array(16).fill(1),
    nextSeq: 5n,
  });
  s.setProducer(conn(2));
  s.startStream(start(new Uint8Array(16).fill(2), 0n));
  send(s, 0, 4);
  const out = s.take(sub, 1 << 20);
  const control = out.find((o) => o.kind === "control");
  assert.ok(control?.kind === "control" && control.message.kind === ControlKind.StreamStart);
  assert.equal(control.message.firstSeq, 0n);
  assert.deepEqual(seqs(out), [0, 1, 2, 3]);
});

test("after a resumed stream ends, the next stream is delivered from its first frame", () => {
  const s = newSession();
  const epoch = new Uint8Array(16).fill(3);
  const { sub } = s.addConsumer(conn(1), undefined, { epoch, nextSeq: 5n });
  const producer = conn(2);
  s.setProducer(producer);
  s.startStream(start(epoch, 0n));
  send(s, 0, 7);
  s.appendData(Uint8Array.of(7), 7n, 1); // END
  assert.deepEqual(seqs(s.take(sub, 1 << 20)), [5, 6, 7]);
  s.releaseProducer(true);
  s.setProducer(conn(3));
  s.startStream(start(new Uint8Array(16).fill(4), 0n));
  send(s, 0, 3);
  assert.deepEqual(seqs(s.take(sub, 1 << 20)), [0, 1, 2]);
});

test("seqs are taken as numbers below 2^53 and bigints above: in order across the boundary, duplicates dropped on resume, a wrong one refused", () => {
  const s = newSession();
  const { sub } = s.addConsumer(conn(1), undefined);
  s.setProducer(conn(2));
  const epoch = new Uint8Array(16).fill(5);
  const top = 2n ** 53n; // the first seq kept as a bigint
  s.startStream(start(epoch, top - 2n));
  const frame = (b: number) => Uint8Array.of(b);
  assert.equal(s.appendData(frame(1), Number(top - 2n), 0), true);
  assert.equal(s.appendData(frame(2), top - 1n, 0), true, "a safe seq in bigint form");
  assert.equal(s.appendData(frame(3), top, 0), true);
  assert.equal(s.appendData(frame(4), top + 1n, 0), true);
  assert.equal(s.nextSeq, top + 2n);
  // Ahead, or behind but not below where this stream started: refused in either form.
  for (const wrong of [top + 3n, top, Number.MAX_SAFE_INTEGER]) {
    assert.throws(() => s.appendData(frame(0), wrong, 0), { code: "protocol-error" });
  }
  assert.equal(s.appendData(frame(0), 5, 0), false, "below the floor: a resent duplicate");
  // The producer reconnects and resends from 2^53 - 1: what the relay has is dropped.
  s.releaseProducer(false);
  s.setProducer(conn(3));
  s.startStream(start(epoch, top - 1n));
  assert.equal(s.appendData(frame(0), Number(top - 1n), 0), false);
  assert.equal(s.appendData(frame(0), top, 0), false);
  assert.equal(s.appendData(frame(0), top + 1n, 0), false);
  assert.equal(s.appendData(frame(5), top + 2n, 0), true);
  assert.deepEqual(seqs(s.take(sub, 1 << 20)), [1, 2, 3, 4, 5]);
  // Below 2^53 the number form is the whole path: a gap is refused, the next seq taken.
  const t = newSession();
  t.setProducer(conn(4));
  t.startStream(start(epoch, 0n));
  assert.equal(t.appendData(frame(0), 0, 0), true);
  assert.throws(() => t.appendData(frame(0), 2, 0), { code: "protocol-error" });
  assert.equal(t.appendData(frame(0), 1, 0), true);
  assert.equal(t.nextSeq, 2n);
  // The number form's last value hands over to the bigint form.
  t.startStream(start(new Uint8Array(16).fill(6), top - 1n));
  assert.equal(t.appendData(frame(0), Number.MAX_SAFE_INTEGER, 0), true);
  assert.equal(t.nextSeq, top);
  assert.throws(() => t.appendData(frame(0), Number.MAX_SAFE_INTEGER, 0), {
    code: "protocol-error",
  });
  assert.equal(t.appendData(frame(0), top, 0), true);
  assert.equal(t.nextSeq, top + 1n);
});

test("ring memory a backed-up consumer still holds is never reused; once it drains, it is", () => {
  const s = newSession(256);
  const slowConn = { id: 1, wake: () => {}, holding: false };
  const slow = s.addConsumer(slowConn, undefined).sub;
  const fast = s.addConsumer(conn(2), undefined).sub;
  s.setProducer(conn(3));
  s.startStream(start(new Uint8Array(16).fill(1), 0n));
  let seq = 0;
  /** Frames of 200 bytes, each filled with its seq's low byte, in a buffer of its own. */
  const produce = (count: number) => {
    for (const end = seq + count; seq < end; seq++) {
      assert.ok(s.hasRoom(200));
      s.appendData(new Uint8Array(200).fill(seq & 0xff), BigInt(seq), 0);
    }
  };
  /** What `sub` is handed now: its runs' buffers, after checking every frame's bytes. */
  const takeAll = (sub: typeof fast) => {
    const buffers: ArrayBufferLike[] = [];
    for (const o of s.take(sub, 1 << 30)) {
      if (o.kind !== "bytes") continue;
      buffers.push(o.bytes.buffer);
      for (let at = 0; at < o.bytes.length; at += 200) {
        const frame = o.bytes.subarray(at, at + 200);
        assert.ok(frame.every((x) => x === frame[0]), "a frame handed out is torn");
      }
    }
    return buffers;
  };
  produce(200);
  takeAll(fast);
  // The slow consumer takes everything there is and its socket keeps it queued.
  const lent = s.take(slow, 1 << 30).flatMap((o) => o.kind === "bytes" ? [o.bytes] : []);
  const copies = lent.map((v) => v.slice());
  slowConn.holding = true;
  assert.ok(lent.length > 0);
  const seenWhileHeld = new Set<ArrayBufferLike>();
  for (let round = 0; round < 50; round++) {
    produce(100);
    for (const b of takeAll(fast)) seenWhileHeld.add(b);
  }
  // 5,000 frames went through a 256-frame ring: the lent memory is untouched.
  lent.forEach((v, i) => assert.deepEqual(v, copies[i], `lent run ${i} was overwritten`));
  const heldSlabs = seenWhileHeld.size;
  // Drained: from now on the ring takes its spare slabs again instead of new ones.
  slowConn.holding = false;
  const seenAfter = new Set<ArrayBufferLike>();
  for (let round = 0; round < 50; round++) {
    produce(100);
    for (const b of takeAll(fast)) seenAfter.add(b);
  }
  // 1 MB through 8 KiB slabs: ~120 fresh ones while held; after, the ~8 in use plus spares.
  assert.ok(heldSlabs >= 100, `${heldSlabs} buffers while held: each new (nothing reused)`);
  assert.ok(seenAfter.size <= 20, `${seenAfter.size} buffers after release: reused`);
});

test("take hands out whole runs, and cuts one at the frame that reaches the budget", () => {
  const s = newSession(512);
  const { sub } = s.addConsumer(conn(1), "block");
  s.setProducer(conn(2));
  s.startStream(start(new Uint8Array(16).fill(2), 0n));
  // Frames of 1-300 bytes, each filled with its seq's low byte, back to back in 64 KiB reads.
  let state = 7;
  const next = (n: number) => (state = (state * 1103515245 + 12345) & 0x7fffffff) % n;
  const sizes: number[] = [];
  let chunk = new Uint8Array(64 * 1024);
  let at = 0;
  const produce = (count: number) => {
    for (let k = 0; k < count && s.hasRoom(300); k++) {
      const seq = sizes.length;
      const size = 1 + next(300);
      if (at + size > chunk.length) [chunk, at] = [new Uint8Array(64 * 1024), 0];
      chunk.fill(seq & 0xff, at, at + size);
      s.appendData(chunk.subarray(at, at + size), BigInt(seq), 0);
      sizes.push(size);
      at += size;
    }
  };
  let frame = 0; // the next frame the consumer should get
  let calls = 0;
  while (frame < 20_000) {
    produce(1 + next(400));
    const budget = 1 + next(4_000);
    const out = s.take(sub, budget);
    calls++;
    let bytes = 0;
    let lastSize = 0;
    for (const o of out) {
      if (o.kind === "control") continue; // the stream start
      assert.equal(o.kind, "bytes");
      if (o.kind !== "bytes") continue;
      let offset = 0;
      for (let f = 0; f < o.frames; f++, frame++) {
        const view = o.bytes.subarray(offset, offset + sizes[frame]!);
        assert.ok(view.every((x) => x === (frame & 0xff)), `frame ${frame} torn or misplaced`);
        offset += sizes[frame]!;
        lastSize = sizes[frame]!;
      }
      assert.equal(offset, o.bytes.length, "a run holds whole frames only");
      bytes += o.bytes.length;
    }
    const caughtUp = frame === sizes.length;
    assert.ok(caughtUp || bytes >= budget, `take ${calls}: ${bytes} bytes for ${budget}`);
    assert.ok(bytes === 0 || bytes - lastSize < budget, `take ${calls} went a frame too far`);
    assert.equal(sub.nextSeq, BigInt(frame));
  }
});

test("a blocking consumer resuming behind the others holds the ring for itself", () => {
  const s = newSession(8);
  const epoch = new Uint8Array(16).fill(5);
  const a = s.addConsumer(conn(1), "block").sub;
  s.setProducer(conn(2));
  s.startStream(start(epoch, 0n));
  let seq = 0;
  const produce = () => {
    while (seq < 100 && s.hasRoom(1)) send(s, seq, ++seq);
  };
  produce();
  assert.deepEqual(seqs(s.take(a, 1 << 20)), [0, 1, 2, 3, 4, 5, 6]);
  produce(); // a took everything: the ring moves on
  assert.ok(seq > 8);
  // A consumer comes back at seq 10 with policy block: behind a, still in the ring.
  const b = s.addConsumer(conn(3), "block", { epoch, nextSeq: BigInt(seq - 5) });
  assert.deepEqual(b.first, []);
  const from = seq - 5;
  seqs(s.take(a, 1 << 20));
  produce(); // must stop where b's next frame would be evicted
  const got = s.take(b.sub, 1 << 20);
  assert.equal(
    got.find((o) => o.kind === "control"),
    undefined,
    "no LAGGED: nothing it needed was evicted",
  );
  assert.deepEqual(seqs(got), Array.from({ length: seq - from }, (_, k) => from + k));
});
