/**
 * Relay semantics (design.md §3) over every transport and address kind: single producer,
 * authentication, key pinning, slow-consumer policies, clean and abrupt producer exits,
 * protocol violations, the connection cap and many sessions on one connection.
 */

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { RelayConnection } from "../../src/client/connection.ts";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { nativeCrypto } from "../../src/crypto/native.ts";
import { RelayError } from "../../src/errors.ts";
import { DataFlag, sealData } from "../../src/protocol/data_frame.ts";
import { Role } from "../../src/protocol/join.ts";
import { Session } from "../../src/protocol/session.ts";
import { cleanupTemp, sleep, waitFor } from "../_helpers.ts";
import { memoryAndNativeTcp, relayOn, type Setup, setups } from "./_fixtures.ts";
import type { RelayServer } from "../../src/server/relay.ts";
import type { Transport } from "../../src/transport/types.ts";

after(cleanupTemp);

const crypto = nativeCrypto();

async function rejects(p: Promise<unknown>, code: string): Promise<RelayError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof RelayError, `expected RelayError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return e;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

/** Message i as 4 bytes + filler, so order and identity are checkable. */
function msg(i: number, size = 16): Uint8Array {
  const m = new Uint8Array(Math.max(4, size));
  new DataView(m.buffer).setUint32(0, i);
  return m;
}
function idx(m: Uint8Array): number {
  return new DataView(m.buffer, m.byteOffset, 4).getUint32(0);
}

/** Lets a consumer's relay-side queue fill: the client reads at most this much ahead. */
const TINY_BUFFER = { maxBuffered: 16 * 1024 };

for (const setup of setups()) {
  const t = setup.transport;
  describe(`Relay over ${setup.name}`, () => {
    test("a second producer gets producer-exists at connect, the first keeps going", async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const consumer = await Consumer.connect(relay.addr, session, { transport: t });
        const first = await Producer.connect(relay.addr, session, { transport: t });
        const err = await rejects(
          Producer.connect(relay.addr, session, { transport: t }),
          "producer-exists",
        );
        assert.match(err.message, /already has a producer/);
        await first.broadcast(msg(7));
        await first.close();
        const got = [];
        for await (const m of consumer) got.push(idx(m));
        assert.deepEqual(got, [7]);
        assert.equal(relay.stats().joinFailures, 1);
      } finally {
        await relay.close();
      }
    });

    test("a proof by the wrong key is refused with auth-failed; the connection stays usable", async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const real = await session.keys(crypto);
        const wrong = await Session.generate().keys(crypto);
        const conn = await RelayConnection.connect(relay.addr, { transport: t });
        const noop = { onControl() {}, onClose() {} };
        for (const role of [Role.Producer, Role.Consumer]) {
          await rejects(
            conn.join({ ...real, signer: wrong.signer }, role, {}, noop),
            "auth-failed",
          );
        }
        // The same connection can still join with a real proof.
        const consumer = await conn.consumer(session);
        const producer = await Producer.connect(relay.addr, session, { transport: t });
        await producer.broadcast(msg(1));
        assert.equal(idx((await consumer.recv())!), 1);
        await producer.close();
        await conn.close();
        assert.equal(relay.stats().joinFailures, 2);
      } finally {
        await relay.close();
      }
    });

    test("a pinned relay key that does not match is refused before any join", async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const pin = new Uint8Array(relay.publicKey);
        pin[0]! ^= 1;
        await rejects(
          Consumer.connect(relay.addr, session, { transport: t, relayKey: pin }),
          "relay-key-mismatch",
        );
        await sleep(20);
        const s = relay.stats();
        assert.equal(s.sessions, 0);
        assert.equal(s.consumers, 0);
        // The right pin (hex form) works.
        const ok = await Consumer.connect(relay.addr, session, {
          transport: t,
          relayKey: relay.publicKeyHex,
        });
        await ok.close();
      } finally {
        await relay.close();
      }
    });

    test("policy disconnect drops only the stalled consumer", async () => {
      const relay = await relayOn(setup, { policy: "disconnect", ringFrames: 64 });
      try {
        const { stalled, n } = await floodPastAStalledConsumer(relay, t);
        let delivered = 0;
        const err = await rejects(
          (async () => {
            while (await stalled.recv() !== null) delivered++;
          })(),
          "slow-consumer",
        );
        assert.match(err.message, /full ring behind/);
        assert.ok(delivered < n);
        assert.ok(relay.stats().slowDisconnects >= 1);
      } finally {
        await relay.close();
      }
    });

    test("policy drop tells the lagging consumer lagged {from, to} and resumes it at the head", async () => {
      const relay = await relayOn(setup, { policy: "drop", ringFrames: 64 });
      try {
        const gaps: { from: bigint; to: bigint }[] = [];
        const { stalled: slow, n } = await floodPastAStalledConsumer(relay, t, (c) => {
          c.on("lagged", (g) => gaps.push(g));
        });
        const seen: number[] = [];
        for await (const m of slow) seen.push(idx(m));
        assert.ok(gaps.length >= 1, "no lagged event");
        let expected = 0;
        let gap = 0;
        for (const i of seen) {
          if (i !== expected) {
            const g = gaps[gap++]!;
            assert.equal(BigInt(expected), g.from);
            assert.equal(BigInt(i), g.to);
          }
          expected = i + 1;
        }
        if (expected < n) {
          // The skip reached the end of the stream: resumed at the END frame (seq n).
          const g = gaps[gap++]!;
          assert.equal(BigInt(expected), g.from);
          assert.equal(BigInt(n), g.to);
        }
        assert.equal(gap, gaps.length, "every gap was announced, no silent holes");
        assert.ok(relay.stats().lagged >= 1);
      } finally {
        await relay.close();
      }
    });

    test("policy block loses nothing for a slow consumer while the others keep pace", async () => {
      const relay = await relayOn(setup, { policy: "block", ringFrames: 32 });
      try {
        const session = Session.generate();
        const fast = await Consumer.connect(relay.addr, session, { transport: t });
        const slow = await Consumer.connect(relay.addr, session, { transport: t, ...TINY_BUFFER });
        const producer = await Producer.connect(relay.addr, session, { transport: t });
        const n = 600;
        const read = async (c: Consumer, delayEvery: number) => {
          let i = 0;
          for await (const m of c) {
            assert.equal(idx(m), i++);
            if (delayEvery > 0 && i % delayEvery === 0) await sleep(2);
          }
          return i;
        };
        const counts = Promise.all([read(fast, 0), read(slow, 20)]);
        for (let i = 0; i < n; i++) await producer.broadcast(msg(i, 16 * 1024));
        await producer.close();
        assert.deepEqual(await counts, [n, n]);
        assert.equal(relay.stats().lagged, 0);
        assert.equal(relay.stats().slowDisconnects, 0);
      } finally {
        await relay.close();
      }
    });

    test("END ends every consumer cleanly; abrupt loss gives producer-left, then after the grace period an error", async () => {
      const relay = await relayOn(setup, { producerGraceMs: 150 });
      try {
        // Clean end.
        const s1 = Session.generate();
        const c1 = await Consumer.connect(relay.addr, s1, { transport: t });
        let ended = false;
        c1.on("end", () => (ended = true));
        const p1 = await Producer.connect(relay.addr, s1, { transport: t });
        await p1.broadcast(msg(1));
        await p1.close();
        assert.equal(idx((await c1.recv())!), 1);
        assert.equal(await c1.recv(), null);
        assert.ok(ended);

        // Abrupt loss.
        const s2 = Session.generate();
        const c2 = await Consumer.connect(relay.addr, s2, { transport: t });
        const left: boolean[] = [];
        c2.on("producer-left", (e) => left.push(e.resumable));
        // A crash: the connection drops and the producer does not come back.
        const p2 = await Producer.connect(relay.addr, s2, { transport: t, reconnect: false });
        await p2.broadcast(msg(2));
        await p2.flush();
        assert.equal(idx((await c2.recv())!), 2);
        p2.connection.abort();
        await rejects(c2.recv(), "producer-left");
        assert.deepEqual(left, [true, false]);
        await c2.close();
      } finally {
        await relay.close();
      }
    });

    test("an oversize length prefix and a bad seq close that producer only; other sessions continue", async () => {
      const relay = await relayOn(setup, { maxFrameBytes: 64 * 1024 });
      try {
        const healthy = Session.generate();
        const hc = await Consumer.connect(relay.addr, healthy, { transport: t });
        const hp = await Producer.connect(relay.addr, healthy, { transport: t });
        await hp.broadcast(msg(0));

        // A length prefix far beyond the limit: refused on its 5 header bytes.
        const bad1 = await Producer.connect(relay.addr, Session.generate(), { transport: t });
        await bad1.connection.write(new Uint8Array([0xff, 0xff, 0xff, 0xf0, 3]));
        const e1 = await bad1.connection.closed;
        assert.equal(e1?.code, "frame-too-large");

        // A frame whose seq skips ahead.
        const s = Session.generate();
        const bad2 = await Producer.connect(relay.addr, s, { transport: t });
        const keys = await s.keys(crypto);
        const aead = await crypto.aesGcm(s.dataKey(crypto, bad2.epoch));
        await bad2.connection.write(
          await sealData(aead, {
            streamTag: keys.streamTag,
            seq: 5n,
            flags: DataFlag.End,
            plaintext: new Uint8Array(0),
          }),
        );
        const e2 = await bad2.connection.closed;
        assert.equal(e2?.code, "protocol-error");
        assert.match(e2!.message, /seq 5, expected 0/);

        await hp.broadcast(msg(1));
        await hp.close();
        const got = [];
        for await (const m of hc) got.push(idx(m));
        assert.deepEqual(got, [0, 1]);
        assert.equal(relay.stats().protocolErrors, 2);
      } finally {
        await relay.close();
      }
    });

    test("the connection cap refuses with a clear limit-exceeded error and frees up", async () => {
      const relay = await relayOn(setup, { maxConnections: 2 });
      try {
        const a = await RelayConnection.connect(relay.addr, { transport: t });
        const b = await RelayConnection.connect(relay.addr, { transport: t });
        const err = await rejects(
          RelayConnection.connect(relay.addr, { transport: t }),
          "limit-exceeded",
        );
        assert.match(err.message, /connection limit \(2\)/);
        await a.close();
        await waitFor(() => relay.stats().connections < 2);
        const c = await RelayConnection.connect(relay.addr, { transport: t });
        await Promise.all([b.close(), c.close()]);
        assert.equal(relay.stats().refused, 1);
      } finally {
        await relay.close();
      }
    });

    test("one connection subscribed to 50 sessions receives each producer's messages, only those, in order", async () => {
      await manySessions(setup, 50);
    });
  });
}

/**
 * A consumer that keeps pace (policy block) and one that reads nothing (its client buffers at most 16 KiB)
 * while 3,000 frames of 16 KiB pass a 64-frame ring; returns once the paced one got all.
 */
async function floodPastAStalledConsumer(
  relay: RelayServer,
  t: Transport,
  watch: (stalled: Consumer) => void = () => {},
): Promise<{ stalled: Consumer; n: number }> {
  const session = Session.generate();
  // The good consumer asks for block (stricter than the relay's policy) so a loaded machine
  // cannot make it the one that falls behind; the producer waits for it, not for `stalled`.
  const good = await Consumer.connect(relay.addr, session, { transport: t, policy: "block" });
  const stalled = await Consumer.connect(relay.addr, session, { transport: t, ...TINY_BUFFER });
  watch(stalled);
  // Every frame signed (a segment of its own): no closing frames, so seq = message index.
  const producer = await Producer.connect(relay.addr, session, { transport: t, segmentFrames: 1 });
  const n = 3000;
  const reading = (async () => {
    let i = 0;
    for await (const m of good) assert.equal(idx(m), i++);
    return i;
  })();
  for (let i = 0; i < n; i++) {
    await producer.broadcast(msg(i, 16 * 1024)); // one frame each: seq = i
    if (i % 8 === 7) await sleep(1); // a pace the good consumer keeps up with
  }
  await producer.close();
  assert.equal(await reading, n);
  return { stalled, n };
}

async function manySessions(setup: Setup, count: number): Promise<void> {
  const t = setup.transport;
  const relay = await relayOn(setup);
  try {
    const sessions = Array.from({ length: count }, () => Session.generate());
    const conn = await RelayConnection.connect(relay.addr, { transport: t });
    const consumers = await Promise.all(sessions.map((s) => conn.consumer(s)));
    // Producers share one connection too: both directions multiplex.
    const pconn = await RelayConnection.connect(relay.addr, { transport: t });
    const producers = await Promise.all(sessions.map((s) => pconn.producer(s)));
    const per = 40;
    const reading = consumers.map(async (c, j) => {
      const got: string[] = [];
      for await (const m of c) got.push(new TextDecoder().decode(m));
      assert.deepEqual(got, Array.from({ length: per }, (_, i) => `s${j}-m${i}`));
    });
    for (let i = 0; i < per; i++) {
      await Promise.all(
        producers.map((p, j) => p.broadcast(new TextEncoder().encode(`s${j}-m${i}`))),
      );
    }
    await Promise.all(producers.map((p) => p.close()));
    await Promise.all(reading);
    assert.equal(conn.subscriptions, 0, "consumers left after END");
    await Promise.all([conn.close(), pconn.close()]);
  } finally {
    await relay.close();
  }
}

describe("Consumer reading", () => {
  const [setup] = memoryAndNativeTcp();
  const t = setup.transport;

  test("concurrent recv() calls get the messages in call order; none is left waiting", async () => {
    const relay = await relayOn(setup);
    try {
      const session = Session.generate();
      const consumer = await Consumer.connect(relay.addr, session, { transport: t });
      const producer = await Producer.connect(relay.addr, session, { transport: t });
      // Single frames (awaited one by one) and then BATCH frames (sent without waiting).
      const first = [consumer.recv(), consumer.recv(), consumer.recv()];
      for (let i = 0; i < 3; i++) await producer.broadcast(msg(i));
      assert.deepEqual((await Promise.all(first)).map((m) => idx(m!)), [0, 1, 2]);
      const second = Array.from({ length: 40 }, () => consumer.recv());
      await Promise.all(Array.from({ length: 40 }, (_, i) => producer.broadcast(msg(3 + i))));
      const got = (await Promise.all(second)).map((m) => idx(m!));
      assert.deepEqual(got, Array.from({ length: 40 }, (_, i) => 3 + i));
      await producer.close();
      assert.equal(await consumer.recv(), null, "END after them");
    } finally {
      await relay.close();
    }
  });

  test("the async iterator is finished after a break and after END", async () => {
    const relay = await relayOn(setup);
    try {
      const session = Session.generate();
      const consumer = await Consumer.connect(relay.addr, session, { transport: t });
      const producer = await Producer.connect(relay.addr, session, { transport: t });
      for (let i = 0; i < 4; i++) await producer.broadcast(msg(i));
      await producer.close();
      const it = consumer[Symbol.asyncIterator]();
      const first = await it.next();
      assert.equal(first.done, false);
      assert.equal(idx(first.value as Uint8Array), 0);
      for await (const m of { [Symbol.asyncIterator]: () => it }) {
        assert.equal(idx(m), 1);
        break; // calls return()
      }
      assert.deepEqual(await it.next(), { done: true, value: undefined });
      // A fresh iterator goes on where recv() is: the two remaining messages, then END.
      const rest = [];
      for await (const m of consumer) rest.push(idx(m));
      assert.deepEqual(rest, [2, 3]);
      const after = consumer[Symbol.asyncIterator]();
      assert.deepEqual(await after.next(), { done: true, value: undefined });
    } finally {
      await relay.close();
    }
  });
});
