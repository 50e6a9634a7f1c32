/**
 * Cluster mode (issue 8): relays federated over a real nats-server with JetStream. Three
 * relays, a producer on A and consumers on A, B and C get the same bytes in order; a second
 * producer anywhere is refused; relay A killed with SIGKILL → the producer moves to B and the
 * stream continues on B and C; nats-server restarted mid-stream → relays carry on, consumers
 * see an explicit gap, never a silent one.
 */

import assert from "node:assert/strict";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { nativeCrypto } from "../../src/crypto/native.ts";
import { RelayError } from "../../src/errors.ts";
import { Session } from "../../src/protocol/session.ts";
import type { RelayOptions } from "../../src/server/options.ts";
import { RelayServer } from "../../src/server/relay.ts";
import { formatMetrics } from "../../src/server/metrics.ts";
import { defaultTransport } from "../../src/transport/default.ts";
import { sleep, waitFor, within } from "../_helpers.ts";
import { natsMissing, NatsServer } from "../_nats.ts";
import { selfRt, serveCli } from "../cli/_run.ts";

const skip = natsMissing();
const t = defaultTransport();
const rt = selfRt();

/** Message i: its index, then `size` bytes derived from it. */
function msg(i: number, size = 64): Uint8Array {
  const m = new Uint8Array(Math.max(8, size));
  const v = new DataView(m.buffer);
  v.setUint32(0, i);
  v.setUint32(4, size);
  for (let k = 8; k < m.length; k++) m[k] = (i * 31 + k) & 0xff;
  return m;
}
const idx = (m: Uint8Array) => new DataView(m.buffer, m.byteOffset, 4).getUint32(0);
const sameAs = (m: Uint8Array) => {
  const want = msg(idx(m), new DataView(m.buffer, m.byteOffset, 8).getUint32(4));
  return m.length === want.length && m.every((b, k) => b === want[k]);
};

/** What a consumer saw: message indices in arrival order and the gaps it was told of. */
interface Seen {
  readonly got: number[];
  readonly gaps: { from: bigint; to: bigint }[];
  readonly left: boolean[];
  done: Promise<void>;
}

/** Reads until `stop(i)` holds for a message, checking each one byte for byte. */
function watch(c: Consumer, stop: (i: number) => boolean, pauseEvery = 0): Seen {
  const seen: Seen = { got: [], gaps: [], left: [], done: Promise.resolve() };
  c.on("lagged", (e) => seen.gaps.push(e));
  c.on("producer-left", (e) => seen.left.push(e.resumable));
  seen.done = (async () => {
    for (;;) {
      let m: Uint8Array | null;
      try {
        m = await c.recv();
      } catch (e) {
        if ((e as RelayError).code === "producer-left") continue; // a stream that moves on
        throw e;
      }
      if (m === null) return;
      assert.ok(sameAs(m), `message ${idx(m)} altered`);
      seen.got.push(idx(m));
      if (stop(idx(m))) return;
      if (pauseEvery > 0 && seen.got.length % pauseEvery === 0) await sleep(2);
    }
  })();
  seen.done.catch(() => {});
  return seen;
}

/**
 * Waits for readers to finish. A reader that never does (a message lost on the way, e.g. at a
 * failover) fails the test by name after `ms`, with what each reader received: how many, the
 * last, the first hole, the gaps and PRODUCER-LEFT events it saw — and `state()`, what the test
 * knows of its producer and relays then.
 */
async function finished(seen: Seen[], ms = 120_000, state?: () => unknown): Promise<void> {
  const all = Promise.all(seen.map((s) => s.done));
  if (await within(all, ms) !== "timeout") return;
  const show = (s: Seen, k: number) => {
    const hole = s.got.findIndex((v, i) => v !== (s.got[0] ?? 0) + i);
    return `reader ${k}: ${s.got.length} messages, last ${s.got.at(-1)}, first hole ${
      hole < 0 ? "none" : `after ${s.got[hole - 1]}`
    }, gaps ${JSON.stringify(s.gaps, (_, v) => typeof v === "bigint" ? Number(v) : v)}, left ${
      JSON.stringify(s.left)
    }`;
  };
  const more = state === undefined
    ? ""
    : `; state ${JSON.stringify(state(), (_, v) => typeof v === "bigint" ? Number(v) : v)}`;
  assert.fail(`readers still waiting after ${ms} ms: ${seen.map(show).join("; ")}${more}`);
}

/** In order, no duplicates, and anything missing was announced as a gap. */
function assertOrdered(seen: Seen, last: number, what: string): void {
  for (let k = 1; k < seen.got.length; k++) {
    assert.ok(seen.got[k]! > seen.got[k - 1]!, `${what}: ${seen.got[k]} after ${seen.got[k - 1]}`);
  }
  assert.equal(seen.got[seen.got.length - 1], last, `${what}: last message`);
  const missing = last + 1 - seen.got.length - (seen.got[0] ?? 0);
  if (missing > 0) assert.ok(seen.gaps.length > 0, `${what}: ${missing} missing without a gap`);
}

const FAST = { beatMs: 100, slotTtlMs: 1000 } as const;

describe(`cluster over NATS (${rt})`, { skip }, () => {
  let nats: NatsServer;
  let n = 0;
  before(async () => {
    nats = await NatsServer.start();
  });
  after(async () => {
    await nats?.dispose();
  });

  /** A relay of the cluster, each test with its own prefix (its own subjects and bucket). */
  const relay = (prefix: string, o: RelayOptions = {}) =>
    RelayServer.listen({
      transport: t,
      port: 0,
      logLevel: "off",
      producerGraceMs: 10_000,
      cluster: { servers: nats.url, prefix, ...FAST },
      ...o,
    });

  test("three relays: a producer on A reaches consumers on A, B and C byte-exact, in order", async () => {
    const prefix = `t${++n}`;
    const [a, b, c] = await Promise.all([relay(prefix), relay(prefix), relay(prefix)]);
    try {
      const session = Session.generate();
      const consumers = await Promise.all(
        [a, b, c, b].map((r) => Consumer.connect(r.addr, session, { transport: t })),
      );
      const total = 400;
      const seen = consumers.map((k) => watch(k, (i) => i === total - 1));
      const producer = await Producer.connect(a.addr, session, { transport: t });
      for (let i = 0; i < total; i++) {
        await producer.broadcast(msg(i, i % 50 === 0 ? 100_000 : (i * 37) % 3000));
        if (i === 200) await sleep(50);
      }
      await finished(seen);
      for (const [k, s] of seen.entries()) {
        assert.deepEqual(s.got, [...Array(total).keys()], `consumer ${k}`);
        assert.deepEqual(s.gaps, []);
      }
      await producer.close();
      assert.ok(a.stats().cluster!.published > 0);
      assert.ok(b.stats().cluster!.received > 0 && c.stats().cluster!.received > 0);
      assert.equal(a.stats().producers, 0);
      assert.equal(b.stats().producers, 0);
      for (const k of consumers) await k.close();
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  test("a consumer joining a mirrored stream mid-way starts at the live head", async () => {
    const prefix = `t${++n}`;
    const [a, b] = await Promise.all([relay(prefix), relay(prefix)]);
    try {
      const session = Session.generate();
      const producer = await Producer.connect(a.addr, session, { transport: t });
      for (let i = 0; i < 50; i++) await producer.broadcast(msg(i));
      const late = await Consumer.connect(b.addr, session, { transport: t });
      const seen = watch(late, (i) => i === 199);
      // The beat tells B about the stream within one interval; keep producing meanwhile.
      for (let i = 50; i < 200; i++) {
        await producer.broadcast(msg(i));
        await sleep(2);
      }
      await finished([seen]);
      assertOrdered(seen, 199, "late consumer");
      assert.ok(seen.got.length > 50, `only ${seen.got.length} messages`);
      await producer.close();
      await late.close();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test("a second producer on any relay is refused with producer-exists; after END the slot is free", async () => {
    const prefix = `t${++n}`;
    const [a, c] = await Promise.all([relay(prefix), relay(prefix)]);
    try {
      const session = Session.generate();
      const first = await Producer.connect(a.addr, session, { transport: t });
      await first.broadcast(msg(0));
      for (const r of [c, a]) {
        await assert.rejects(
          Producer.connect(r.addr, session, { transport: t, reconnect: false }),
          (e: unknown) => e instanceof RelayError && e.code === "producer-exists",
        );
      }
      assert.equal(c.stats().cluster!.slotConflicts, 1);
      await first.close();
      const consumer = await Consumer.connect(a.addr, session, { transport: t });
      const second = await Producer.connect(c.addr, session, { transport: t });
      await second.broadcast(msg(7));
      assert.equal(idx((await consumer.recv())!), 7);
      await second.close();
      await consumer.close();
    } finally {
      await Promise.all([a.close(), c.close()]);
    }
  });

  test("rotation on A: a granted reader on B goes on without a gap, an old one on B is revoked", async () => {
    const prefix = `t${++n}`;
    const [a, b] = await Promise.all([relay(prefix), relay(prefix)]);
    try {
      const session = Session.generate();
      const crypto = nativeCrypto();
      const g0 = await session.readOnly(crypto, 0);
      const g1 = await session.readOnly(crypto, 1);
      const keeper = await Consumer.connect(b.addr, g0, { transport: t });
      const old = await Consumer.connect(b.addr, g0, { transport: t, reconnect: false });
      await keeper.grant(g1);
      const producer = await Producer.connect(a.addr, session, { transport: t });
      // B learns of the stream with the next beat: it mirrors from its first STREAM-START.
      await waitFor(() => b.stats().sessions > 0 && b.stats().cluster!.received > 0, 5000).catch(
        () => {},
      );
      const seen = watch(keeper, (i) => i === 99);
      const rotated: number[] = [];
      keeper.on("rotated", (e) => rotated.push(e.generation));
      const oldSeen = watch(old, () => false);
      for (let i = 0; i < 50; i++) {
        await producer.broadcast(msg(i));
        await sleep(2);
      }
      await producer.rotate();
      for (let i = 50; i < 100; i++) {
        await producer.broadcast(msg(i));
        await sleep(2);
      }
      await finished([seen]);
      assertOrdered(seen, 99, "granted reader on B");
      assert.ok(seen.got.includes(50), "the first message of the new generation went missing");
      assert.deepEqual(rotated, [1]);
      await assert.rejects(oldSeen.done, (e: unknown) => (e as RelayError).code === "revoked");
      assert.ok(oldSeen.got.every((i) => i < 50), "an old reader read the new generation");
      await assert.rejects(
        Consumer.connect(b.addr, g0, { transport: t, reconnect: false }),
        (e: unknown) => e instanceof RelayError && e.code === "revoked",
      );
      await producer.close();
      await keeper.close();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test("relay A killed (SIGKILL): the producer moves to B and the stream goes on at B and C", async () => {
    const prefix = `t${++n}`;
    const served = await serveCli(rt, [
      "--log-level",
      "warn",
      "--cluster",
      nats.url,
      "--cluster-prefix",
      prefix,
      "--slot-ttl",
      "1000",
    ]);
    const [b, c] = await Promise.all([relay(prefix), relay(prefix)]);
    try {
      const session = Session.generate();
      const onB = await Consumer.connect(b.addr, session, { transport: t });
      const onC = await Consumer.connect(c.addr, session, { transport: t });
      const total = 600;
      const seen = [watch(onB, (i) => i === total - 1), watch(onC, (i) => i === total - 1)];
      const producer = await Producer.connect([served.addr, b.addr], session, {
        transport: t,
        replayFrames: 256,
        reconnect: { maxDelayMs: 250, timeoutMs: 20_000 },
      });
      let reconnected = false;
      const retries: string[] = []; // each reconnect attempt, for the deadline's dump
      producer.on("reconnected", () => (reconnected = true));
      producer.on("reconnecting", (r) => retries.push(`${r.attempt}:${r.error.code}`));
      for (let i = 0; i < 300; i++) await producer.broadcast(msg(i, 200));
      await waitFor(() => seen.every((s) => s.got.length >= 250), 10_000);
      process.kill(served.child.pid!, "SIGKILL");
      await served.done;
      for (let i = 300; i < total; i++) await producer.broadcast(msg(i, 200));
      await finished(seen, 120_000, () => ({
        producer: { seq: producer.seq, acked: producer.acked, reconnected, retries },
        b: b.stats(),
        c: c.stats(),
      }));
      assert.ok(reconnected, "the producer reconnected");
      assertOrdered(seen[0]!, total - 1, "consumer on B");
      assertOrdered(seen[1]!, total - 1, "consumer on C");
      // The producer's replay window covers what A acknowledged but never forwarded.
      assert.deepEqual(seen[0]!.got, [...Array(total).keys()]);
      assert.deepEqual(seen[1]!.got, [...Array(total).keys()]);
      assert.equal(b.stats().producers, 1);
      await producer.close();
      await onB.close();
      await onC.close();
    } finally {
      try {
        process.kill(served.child.pid!, "SIGKILL");
      } catch {
        // Already gone.
      }
      await Promise.all([b.close(), c.close()]);
    }
  });

  test("nats-server restarted mid-stream: relays stay up, the mirror reports the gap and goes on", async () => {
    const prefix = `t${++n}`;
    const [a, b] = await Promise.all([relay(prefix), relay(prefix)]);
    try {
      const session = Session.generate();
      const onA = await Consumer.connect(a.addr, session, { transport: t });
      const onB = await Consumer.connect(b.addr, session, { transport: t });
      const total = 300;
      const seenA = watch(onA, (i) => i === total - 1);
      const seenB = watch(onB, (i) => i === total - 1);
      const producer = await Producer.connect(a.addr, session, { transport: t });
      for (let i = 0; i < 100; i++) await producer.broadcast(msg(i));
      await waitFor(() => seenB.got.length === 100, 10_000);
      await nats.stop();
      await waitFor(() => !a.stats().cluster!.connected && !b.stats().cluster!.connected, 10_000);
      for (let i = 100; i < 200; i++) await producer.broadcast(msg(i)); // local-only now
      await waitFor(() => seenA.got.length === 200, 10_000);
      await sleep(500); // B notices the silence: producer-left, grace period
      await nats.restart();
      await waitFor(() => a.stats().cluster!.connected && b.stats().cluster!.connected, 15_000);
      await sleep(300); // a beat tells B where the stream is now
      for (let i = 200; i < total; i++) {
        await producer.broadcast(msg(i));
        await sleep(1);
      }
      await finished([seenA, seenB]);
      assert.deepEqual(seenA.got, [...Array(total).keys()], "local consumer lost nothing");
      assertOrdered(seenB, total - 1, "mirrored consumer");
      assert.ok(seenB.got.length < total, "the outage was not silently filled");
      assert.ok(seenB.gaps.length > 0, "the gap was announced");
      assert.equal(seenB.left[0], true, "the silence was reported as a resumable producer loss");
      const text = formatMetrics(b.stats());
      assert.match(text, /^hydra_cluster_connected 1$/m);
      const gaps = Number(/^hydra_cluster_gaps_total (\d+)$/m.exec(text)?.[1]);
      assert.ok(gaps >= 1, `gaps metric ${gaps}`);
      assert.ok(a.stats().cluster!.unpublished > 0, "the origin counted what it could not publish");
      await producer.close();
      await onA.close();
      await onB.close();
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test("policy block holds across the cluster: a slow consumer on B loses nothing, the producer on A waits", async () => {
    const prefix = `t${++n}`;
    const small = { ringFrames: 16 };
    const [a, b] = await Promise.all([relay(prefix, small), relay(prefix, small)]);
    try {
      const session = Session.generate();
      const slow = await Consumer.connect(b.addr, session, { transport: t, policy: "block" });
      const total = 300;
      const seen = watch(slow, (i) => i === total - 1, 2);
      const producer = await Producer.connect(a.addr, session, { transport: t });
      let held = 0;
      const watchHolds = setInterval(() => (held = Math.max(held, a.stats().cluster!.holding)), 5);
      for (let i = 0; i < total; i++) {
        // 64 KiB messages are not batched: 300 frames (19 MB, more than the sockets buffer)
        // through rings of 16.
        await producer.broadcast(msg(i, 64 * 1024));
      }
      await finished([seen]);
      clearInterval(watchHolds);
      assert.deepEqual(seen.got, [...Array(total).keys()], "the slow consumer on B lost nothing");
      assert.deepEqual(seen.gaps, []);
      assert.equal(b.stats().cluster!.gaps, 0);
      assert.equal(held, 1, "B held A's producer back");
      await producer.close();
      await slow.close();
      await waitFor(() => a.stats().cluster!.holding === 0, 5000);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  test("a holding relay that goes silent stops holding after 3 beats; malformed holds are rejected", async () => {
    const prefix = `t${++n}`;
    const small = { ringFrames: 16 };
    const [a, b] = await Promise.all([relay(prefix, small), relay(prefix, small)]);
    const nats_ = await import("@nats-io/transport-node");
    const spy = await nats_.connect({ servers: nats.url });
    try {
      const holds: Uint8Array[] = [];
      let subject = "";
      spy.subscribe(`${prefix}.h.>`, {
        callback: (_e, m) => {
          holds.push(m.data.slice());
          subject = m.subject;
        },
      });
      const session = Session.generate();
      const onA = await Consumer.connect(a.addr, session, { transport: t, policy: "block" });
      const onB = await Consumer.connect(b.addr, session, { transport: t, policy: "block" });
      const seenB = watch(onB, (i) => i === 9);
      const producer = await Producer.connect(a.addr, session, { transport: t });
      for (let i = 0; i < 10; i++) await producer.broadcast(msg(i, 16 * 1024));
      await finished([seenB]);
      await waitFor(() => holds.some((h) => h[8] === 1), 5000);
      const zombie = holds.find((h) => h[8] === 1)!;
      await b.close(); // lets go of its hold
      await waitFor(() => a.stats().cluster!.holding === 0, 5000);
      // B's last hold again, as if B had died holding: A waits, then gives up on B.
      spy.publish(subject, zombie);
      spy.publish(subject, new Uint8Array(5));
      await waitFor(() => a.stats().cluster!.holding === 1, 5000);
      const seenA = watch(onA, (i) => i === 59);
      for (let i = 10; i < 60; i++) await producer.broadcast(msg(i, 16 * 1024));
      await finished([seenA]);
      assert.deepEqual(seenA.got, [...Array(60).keys()]);
      assert.equal(a.stats().cluster!.holdsExpired, 1);
      assert.equal(a.stats().cluster!.holding, 0);
      assert.equal(a.stats().cluster!.rejected, 1);
      assert.match(formatMetrics(a.stats()), /^hydra_cluster_holds_expired_total 1$/m);
      await producer.close();
      await onA.close();
      await onB.close();
    } finally {
      await spy.close();
      await Promise.all([a.close(), b.close()]);
    }
  });

  test("bad cluster settings fail with one clear error", async () => {
    await assert.rejects(
      RelayServer.listen({ transport: t, port: 0, cluster: { servers: "nats://127.0.0.1:1" } }),
      (e: unknown) => e instanceof RelayError && /cannot reach NATS/.test(e.message),
    );
    await assert.rejects(
      RelayServer.listen({ transport: t, port: 0, cluster: { servers: nats.url, slotTtlMs: 5 } }),
      RangeError,
    );
    await assert.rejects(
      RelayServer.listen({ transport: t, port: 0, cluster: { servers: [] } }),
      RangeError,
    );
  });
});
