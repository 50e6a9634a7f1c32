/**
 * @module
 * The live-relay fuzzer (issue 5, part 4): a relay in its own process (the `hydra-relay
 * serve` CLI on Deno, Bun or Node) takes random and mutated handshakes and frames from many
 * concurrent connections over real TCP, while a legitimate producer streams to a consumer
 * through it. Afterwards: the relay process is alive and exits cleanly on SIGTERM (no crash,
 * no unhandled rejection — either would kill it), its RSS stayed bounded, and the legitimate
 * consumer received every message exactly once, in order.
 *
 * Used by `tests/e2e/fuzz_test.ts` (a short pass) and `scripts/fuzz.ts` (the long one).
 */

import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { nativeCrypto } from "../../src/crypto/native.ts";
import {
  ControlKind,
  type ControlMessage,
  encodeControl,
  encodeJoinOptions,
} from "../../src/protocol/control.ts";
import { DataFlag } from "../../src/protocol/data_frame.ts";
import { encodeFrame, FrameType } from "../../src/protocol/framer.ts";
import { Role } from "../../src/protocol/join.ts";
import { NoiseHandshake } from "../../src/protocol/noise.ts";
import { PROLOGUE, PROTOCOL_VERSION } from "../../src/protocol/control.ts";
import { Session } from "../../src/protocol/session.ts";
import { defaultTransport } from "../../src/transport/default.ts";
import { parseAddr } from "../../src/transport/addr.ts";
import type { Addr, Transport } from "../../src/transport/types.ts";
import { cleanStop, rssKiB, type Rt, serveCli } from "../cli/_run.ts";
import { mutate, Rand } from "../_fuzz.ts";
import { RawClient } from "./_raw_client.ts";
import { sameBytes } from "./_fixtures.ts";

const crypto = nativeCrypto();

/** What one fuzz run did and saw. */
export interface FuzzReport {
  readonly relay: Rt;
  readonly seed: number;
  /** Frames and handshake messages written to the relay, by kind. */
  readonly frames: number;
  readonly byKind: Record<string, number>;
  readonly connections: number;
  readonly seconds: number;
  /** Relay RSS (KiB): after warm-up, the highest seen, and at the end. */
  readonly rss: { readonly start?: number; readonly peak?: number; readonly end?: number };
  /** Messages the legitimate producer sent and its consumer received in order. */
  readonly legitSent: number;
  readonly legitReceived: number;
  /** The relay exited 0 on SIGTERM (it did not crash meanwhile). */
  readonly cleanExit: boolean;
  /** Relay stderr lines mentioning an uncaught error, if any. */
  readonly uncaught: string[];
}

/** Options of a run. */
export interface FuzzOptions {
  readonly relay: Rt;
  readonly frames: number;
  readonly seed: number;
  readonly concurrency?: number;
  /** Progress lines (long runs). */
  readonly progress?: (line: string) => void;
}

/** Runs the fuzzer against a fresh relay process. */
export async function fuzzLiveRelay(o: FuzzOptions): Promise<FuzzReport> {
  const served = await serveCli(o.relay, ["--log-level", "error"]);
  const addr = parseAddr(served.addr);
  const t = defaultTransport();
  const pid = served.child.pid;
  const started = Date.now();
  const byKind: Record<string, number> = {};
  let frames = 0;
  let connections = 0;
  const count = (kind: string, n = 1) => {
    byKind[kind] = (byKind[kind] ?? 0) + n;
    frames += n;
  };
  let crashed = false;
  served.done.then(() => (crashed = true));

  // The legitimate session.
  const session = Session.generate();
  const consumer = await Consumer.connect(served.addr, session, { transport: t });
  const producer = await Producer.connect(served.addr, session, { transport: t });
  let sent = 0;
  let received = 0;
  let legitError: unknown;
  let fuzzing = true;
  const legitProducing = (async () => {
    while (fuzzing && !crashed) {
      await producer.broadcast(legitMessage(sent++));
      await new Promise((r) => setTimeout(r, 1));
    }
    await producer.close();
  })();
  const legitReading = (async () => {
    for await (const m of consumer) {
      if (!sameBytes(m, legitMessage(received))) throw new Error(`legit message ${received} wrong`);
      received++;
    }
  })().catch((e) => (legitError = e));

  const rss: { start?: number; peak?: number; end?: number } = {};
  const sampler = setInterval(() => {
    const now = rssKiB(pid);
    if (now === undefined) return;
    if (Date.now() - started > 1000) {
      rss.start ??= now;
      rss.peak = Math.max(rss.peak ?? 0, now);
    }
  }, 250);

  await hammer({
    t,
    addr,
    frames: o.frames,
    seed: o.seed,
    concurrency: o.concurrency ?? 8,
    count,
    done: () => frames >= o.frames || crashed,
    onConnection: (connections) => {
      if (o.progress !== undefined && connections % 2000 === 0) {
        o.progress(
          `${frames} frames, ${connections} connections, relay RSS ${rssKiB(pid)} KiB, ` +
            `legit ${received}/${sent}`,
        );
      }
    },
  }).then((n) => (connections = n));
  fuzzing = false;
  clearInterval(sampler);
  await legitProducing;
  await legitReading;
  await consumer.close();
  if (legitError !== undefined) throw legitError;
  const end = rssKiB(pid);
  if (end !== undefined) rss.end = end;
  const alive = !crashed;
  const result = await served.stop();
  const stderr = result.stderr.split("\n");
  return {
    relay: o.relay,
    seed: o.seed,
    frames,
    byKind,
    connections,
    seconds: (Date.now() - started) / 1000,
    rss,
    legitSent: sent,
    legitReceived: received,
    cleanExit: alive && cleanStop(result),
    uncaught: stderr.filter((l) => /uncaught|unhandled|panic/i.test(l)),
  };
}

function legitMessage(i: number): Uint8Array {
  const m = new Uint8Array(24 + (i % 200));
  new DataView(m.buffer).setUint32(0, i);
  m.fill(i & 0xff, 4);
  return m;
}

type Count = (kind: string, n?: number) => void;

/** Where and how hard to hammer. */
export interface HammerOptions {
  readonly t: Transport;
  readonly addr: Addr;
  readonly frames: number;
  readonly seed: number;
  readonly concurrency: number;
  readonly count: Count;
  /** Stop condition, checked between connections. */
  readonly done: () => boolean;
  readonly onConnection?: (connections: number) => void;
}

/**
 * Concurrent workers, each a seeded sequence of fuzz connections, until `done()`.
 * @returns How many connections were made.
 */
export async function hammer(o: HammerOptions): Promise<number> {
  const base = new Rand(o.seed);
  let connections = 0;
  await Promise.all(Array.from({ length: o.concurrency }, async (_, w) => {
    const wr = base.fork();
    for (let n = 0; !o.done(); n++) {
      const r = wr.fork();
      o.onConnection?.(++connections);
      try {
        await oneConnection(r, o.t, o.addr, o.count);
      } catch (e) {
        if (o.done()) break;
        // A refused or reset connection is the relay doing its job; anything else is ours.
        if (!(e instanceof Error) || !/closed|reset|refused|EPIPE|lost|broken/i.test(e.message)) {
          throw new Error(`worker ${w} connection ${n} (seed ${r.seed}): ${String(e)}`);
        }
      }
    }
  }));
  return connections;
}

/** One connection's worth of fuzz, chosen by `r`. */
async function oneConnection(r: Rand, t: Transport, addr: Addr, count: Count): Promise<void> {
  switch (r.int(10)) {
    case 0:
      return await garbage(r, t, addr, count);
    case 1:
      return await mutatedHandshake(r, t, addr, count);
    case 2:
    case 3:
    case 4:
      return await controlFuzz(r, t, addr, count);
    case 5:
    case 6:
      return await producerFuzz(r, t, addr, count);
    default:
      return await consumerFuzz(r, t, addr, count);
  }
}

/** Random bytes or random frames before any handshake. */
async function garbage(r: Rand, t: Transport, addr: Addr, count: Count): Promise<void> {
  const conn = await t.connect(addr);
  try {
    const n = 1 + r.int(4);
    for (let i = 0; i < n; i++) {
      const bytes = r.chance(0.5)
        ? r.bytes(1 + r.size(256))
        : encodeFrame(r.int(256), r.bytes(r.size(2048)));
      await conn.write(bytes);
      count("pre-handshake garbage");
    }
  } finally {
    conn.close();
  }
}

/** A valid first handshake message, mutated. */
async function mutatedHandshake(r: Rand, t: Transport, addr: Addr, count: Count): Promise<void> {
  const noise = new NoiseHandshake(crypto, { pattern: "NX", initiator: true, prologue: PROLOGUE });
  const m1 = await noise.writeMessage(
    new Uint8Array([r.chance(0.8) ? PROTOCOL_VERSION : r.int(256)]),
  );
  const frame = encodeFrame(FrameType.Handshake, m1);
  const conn = await t.connect(addr);
  try {
    await conn.write(
      r.chance(0.2) ? mutate(r, frame) : encodeFrame(FrameType.Handshake, mutate(r, m1)),
    );
    count("mutated handshake");
    await conn.read(); // the refusal or the relay's reply, or EOF
  } finally {
    conn.close();
  }
}

/** Reads and discards until EOF (keeps the relay's writes flowing). */
function drain(c: RawClient): Promise<void> {
  return (async () => {
    try {
      while (await c.conn.read() !== null) {
        // discarded
      }
    } catch {
      // reset: fine
    }
  })();
}

/** A run of well-formed control traffic, then one hostile frame. */
async function controlFuzz(r: Rand, t: Transport, addr: Addr, count: Count): Promise<void> {
  const c = await RawClient.connect(t, addr);
  count("handshake");
  const draining = drain(c);
  try {
    const session = Session.generate(crypto);
    let failedJoins = 0;
    const n = r.int(200);
    for (let i = 0; i < n; i++) {
      const k = r.int(10);
      if (k < 5) {
        await c.control({ kind: ControlKind.Ping, nonce: BigInt(r.u32()) });
        count("ping");
      } else if (k < 7) {
        await c.control({
          kind: ControlKind.Leave,
          tag: r.bytes(8),
          role: r.pick([1, 2] as const),
        });
        count("leave (unknown session)");
      } else if (failedJoins < 7) {
        const join = await c.joinMessage(session, r.pick([1, 2] as const));
        const proof = join.proof.slice();
        proof[r.int(64)]! ^= 1 << r.int(8);
        await c.control({ ...join, proof });
        count("join with a mutated proof");
        failedJoins++;
      }
    }
    await hostile(r, c, count);
  } finally {
    c.close();
    await draining;
  }
}

/** The last frame of a connection: something the relay must refuse. */
async function hostile(r: Rand, c: RawClient, count: Count): Promise<void> {
  const valid: ControlMessage = r.chance(0.5)
    ? await c.joinMessage(Session.generate(crypto), Role.Consumer, encodeJoinOptions({}))
    : { kind: ControlKind.Lagged, tag: r.bytes(8), from: 1n, to: 2n };
  switch (r.int(4)) {
    case 0:
      await c.sealed(mutate(r, encodeControl(valid)));
      count("sealed mutated control message");
      return;
    case 1:
      await c.sealed(r.bytes(r.size(300)));
      count("sealed random control message");
      return;
    case 2:
      await c.raw(encodeFrame(r.int(256), r.bytes(r.size(5000))));
      count("random frame");
      return;
    default:
      await c.raw(mutate(r, encodeFrame(FrameType.Control, r.bytes(48))));
      count("mutated unsealed frame");
  }
}

/** A producer: a valid stream start and data, then mutated data frames. */
async function producerFuzz(r: Rand, t: Transport, addr: Addr, count: Count): Promise<void> {
  const c = await RawClient.connect(t, addr);
  count("handshake");
  const draining = drain(c);
  try {
    const { frame } = await c.produce(Session.generate(crypto));
    count("join");
    count("stream start");
    const n = r.int(300);
    let seq = 0n;
    for (let i = 0; i < n; i++) {
      const plaintext = r.bytes(r.size(4096));
      await c.raw(await frame(seq++, 0, plaintext));
      count("valid data frame");
    }
    const next = await frame(seq, r.pick([0, DataFlag.End, DataFlag.Batch]), r.bytes(r.size(512)));
    const bad = mutate(r, next);
    // Mutations that leave the length prefix longer than the bytes sent would stall, not
    // fail; the relay's idle timeout handles those, but this harness closes at once.
    await c.raw(bad);
    count("mutated data frame");
  } finally {
    c.close();
    await draining;
  }
}

/** A consumer of a random session: joins, pings, then a hostile frame. */
async function consumerFuzz(r: Rand, t: Transport, addr: Addr, count: Count): Promise<void> {
  const c = await RawClient.connect(t, addr);
  count("handshake");
  const draining = drain(c);
  try {
    const opts = r.chance(0.3)
      ? encodeJoinOptions({ resume: { epoch: r.bytes(16), nextSeq: BigInt(r.u32()) } })
      : encodeJoinOptions({ policy: r.pick(["disconnect", "drop", "block"] as const) });
    await c.control(await c.joinMessage(Session.generate(crypto), Role.Consumer, opts));
    count("join");
    const n = r.int(100);
    for (let i = 0; i < n; i++) {
      await c.control({ kind: ControlKind.Ping, nonce: BigInt(i) });
      count("ping");
    }
    await hostile(r, c, count);
  } finally {
    c.close();
    await draining;
  }
}
