/**
 * The load side of scripts/bench/relay.ts: one producer process and one process holding all
 * N consumers, the same code against every relay (run under Bun, the fastest runtime here, so
 * the load generator is the same for every contestant).
 *
 *   relay_load consumers <kind> <port> <n> <size> <count> [token]
 *       connects and joins N consumers, prints `ready`, counts data frames (or MSGs) until every
 *       consumer has <count>, prints {"ms", "frames", "bytes"} (ms from the first data frame
 *       to the last consumer's last frame)
 *   relay_load producer <kind> <port> <size> <count> [token] [per] [rate]
 *       connects, sends <count> frames of <size>-byte messages (hydra: BATCH frames of <per>
 *       messages when <per> > 1) as fast as the relay takes them, in 256 KiB writes; prints
 *       `sent`, stays connected until stdin closes; with [rate], <rate> frames per second
 *   relay_load hop <kind> <port> <n> <rate> <seconds> [token] [phases]
 *       the relay's own latency: a raw producer and N raw consumers in this process (no
 *       client library, no AES-GCM), <rate> 64 B messages/s carrying their send time; prints
 *       {"p50", "p99", "p999", "samples"} in microseconds; with [phases] > 1 the same joined
 *       session measures again after each `paused` line once stdin says `go`
 *   relay_load scale <port> <n> <token> <count>
 *       joins N consumers, prints `ready`, waits until each has <count> data frames; prints
 *       {"consumers", "complete", "ms"}
 *   relay_load idle <port> <n> <token>
 *       joins N consumers that only keep their connections alive; prints `ready`
 *   relay_load clients <port> <n> <token>
 *       holds N idle library `Consumer`s; prints {"clients", "perClientKiB"} (RSS growth per
 *       client, after a full GC)
 *   relay_load joins <port> <n> <token>
 *       N complete consumer joins (handshake + proof + JOINED), 64 in flight; prints
 *       {"ms", "joins"}
 *   relay_load flood <port> <rate> <seconds> <token>
 *       a handshake flood: starts <rate> complete joins a second (each on its own connection,
 *       closed once JOINED) for <seconds>, at most 256 in flight (a start that finds 256
 *       waiting is skipped and counted); prints `flooding` at the start, then
 *       {"started", "joined", "failed", "skipped", "ms"}
 *
 * <kind>: `hydra` (our relay: Noise handshake and JOIN, then sealed data frames; consumers ask
 * for policy block and check framing without decrypting), `minimal` (the chunk-forwarding
 * ceiling: one role byte, then the same hydra/1 frames), `nats` (nats-server: CONNECT, PUB on
 * one subject / SUB, MSG records parsed the same way).
 */

import { RawClient } from "../../tests/e2e/_raw_client.ts";
import { FrameCounter, RecordWalker } from "./_records.ts";
import { ControlKind, encodeJoinOptions } from "../../src/protocol/control.ts";
import { DataFlag, encodeBatch } from "../../src/protocol/data_frame.ts";
import { Role } from "../../src/protocol/join.ts";
import { Session } from "../../src/protocol/session.ts";
import { Consumer } from "../../src/client/consumer.ts";
import { defaultTransport } from "../../src/transport/default.ts";
import type { Conn } from "../../src/transport/types.ts";

// deno-lint-ignore no-explicit-any
const G = globalThis as any;
const t = defaultTransport();
const enc = new TextEncoder();
const CHUNK = 256 * 1024;
/** Data frame overhead: frame header, flags, stream tag, seq, GCM tag. */
const OVERHEAD = 5 + 1 + 8 + 8 + 16;

function say(line: string): void {
  G.process.stdout.write(line + "\n");
}

const addrOf = (port: number) => ({ kind: "tcp" as const, hostname: "127.0.0.1", port });

/**
 * Counts NATS `MSG <subject> <sid> <size>\r\n<payload>\r\n` records, parsing the size from
 * each header line's bytes (no strings on the hot path); answers PING.
 */
class MsgCounter extends RecordWalker {
  /** MSG records seen. */
  data = 0;
  /** Bytes of a header line split across chunks. */
  #line: number[] = [];
  constructor(readonly conn: Conn) {
    super();
  }

  protected header(c: Uint8Array, i: number): number {
    const n = c.length;
    let j = i;
    while (j < n && c[j] !== 0x0a) j++;
    if (j === n) {
      for (let k = i; k < n; k++) this.#line.push(c[k]!);
      return n;
    }
    const line = this.#line.length > 0
      ? Uint8Array.from([...this.#line, ...c.subarray(i, j + 1)])
      : c.subarray(i, j + 1);
    this.#line = [];
    this.#parse(line);
    return j + 1;
  }

  #parse(line: Uint8Array): void {
    const end = line.length - 2; // before "\r\n"
    if (line[0] === 0x4d) { // MSG
      let size = 0;
      let k = end - 1;
      while (k > 0 && line[k] !== 0x20) k--;
      for (let d = k + 1; d < end; d++) size = size * 10 + (line[d]! - 0x30);
      this.skip = size + 2;
      this.data++;
    } else if (line[0] === 0x50 && line[1] === 0x49) { // PING
      this.conn.write(enc.encode("PONG\r\n")).catch(() => {});
    } else if (line[0] === 0x2d) { // -ERR
      throw new Error(`nats-server: ${new TextDecoder().decode(line).trim()}`);
    }
  }
}

/** `n` results of `make`, at most `batch` in flight (joins are CPU work on both sides). */
async function inBatches<T>(n: number, batch: number, make: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += batch) {
    out.push(...await Promise.all(Array.from({ length: Math.min(batch, n - i) }, make)));
  }
  return out;
}

async function hydraConsumer(port: number, session: Session): Promise<RawClient> {
  const rc = await RawClient.connect(t, addrOf(port));
  const options = encodeJoinOptions({ policy: "block" });
  await rc.control(await rc.joinMessage(session, Role.Consumer, options));
  const m = await rc.nextControl();
  if (m?.kind !== ControlKind.Joined) throw new Error(`join failed: ${JSON.stringify(m)}`);
  return rc;
}

async function connectConsumer(kind: string, port: number, session?: Session): Promise<Conn> {
  if (kind === "hydra") return (await hydraConsumer(port, session!)).conn;
  const conn = await t.connect(addrOf(port));
  conn.setNoDelay(true);
  if (kind === "minimal") {
    await conn.write(new Uint8Array([0x43]));
    return conn;
  }
  await conn.write(enc.encode('CONNECT {"verbose":false,"pedantic":false}\r\nSUB b 1\r\nPING\r\n'));
  let seen = "";
  while (!seen.includes("PONG")) {
    const c = await conn.read();
    if (c === null) throw new Error("nats-server closed");
    seen += new TextDecoder().decode(c);
  }
  return conn;
}

async function consumers(kind: string, port: number, n: number, count: number, token?: string) {
  const session = token === undefined ? undefined : Session.fromToken(token);
  const conns = await inBatches(n, 50, () => connectConsumer(kind, port, session));
  // The minimal relay has no acknowledgement: give it a moment to register the role bytes.
  if (kind === "minimal") await new Promise((r) => setTimeout(r, 200));
  say("ready");
  let first = 0;
  let frames = 0;
  await Promise.all(conns.map(async (conn) => {
    const counter = kind === "nats" ? new MsgCounter(conn) : new FrameCounter();
    while (counter.data < count) {
      const c = await conn.read();
      if (c === null) throw new Error(`relay closed after ${counter.data} of ${count} frames`);
      if (first === 0) first = performance.now();
      counter.push(c);
    }
    frames += counter.data;
  }));
  const ms = performance.now() - first;
  say(JSON.stringify({ ms, frames }));
  for (const c of conns) c.close();
}

/** Chunks of about 256 KiB of hydra/1 data frames with `plain`-byte plaintexts. */
async function hydraChunks(
  plain: number,
  seal: (seq: bigint) => Promise<Uint8Array>,
): Promise<{ template: Uint8Array; perChunk: number; frameLen: number }> {
  const frame = await seal(0n);
  const frameLen = plain + OVERHEAD;
  if (frame.length !== frameLen) throw new Error(`frame is ${frame.length}, want ${frameLen}`);
  const perChunk = Math.max(1, Math.floor(CHUNK / frameLen));
  const template = new Uint8Array(perChunk * frameLen);
  for (let i = 0; i < perChunk; i++) template.set(frame, i * frameLen);
  return { template, perChunk, frameLen };
}

/** A producer connection ready to send, and frames to send on it (`perChunk` back to back). */
interface ProducerConn {
  conn: Conn;
  template: Uint8Array;
  perChunk: number;
  frameLen: number;
  /** Where a frame's own bytes may be changed without the relay noticing (seq low bits, time). */
  seqAt: number;
  bodyAt: number;
}

/**
 * Connects a producer of `kind` whose frames carry `plain`-byte plaintexts (hydra: sealed,
 * JOINED awaited; nats: `PUB` records; minimal: the same hydra/1 frames, unsealed).
 */
async function openProducer(
  kind: string,
  port: number,
  plain: number,
  flags: number,
  token: string | undefined,
  plaintext: () => Uint8Array,
): Promise<ProducerConn> {
  let conn: Conn;
  let chunks: { template: Uint8Array; perChunk: number; frameLen: number };
  let bodyAt = 22; // data frame: header 5, flags 1, tag 8, seq 8, then the ciphertext
  if (kind === "nats") {
    conn = await t.connect(addrOf(port));
    await conn.write(enc.encode('CONNECT {"verbose":false,"pedantic":false}\r\n'));
    const head = enc.encode(`PUB b ${plain}\r\n`);
    const frameLen = head.length + plain + 2;
    const perChunk = Math.max(1, Math.floor(CHUNK / frameLen));
    const template = new Uint8Array(perChunk * frameLen);
    for (let i = 0; i < perChunk; i++) {
      template.set(head, i * frameLen);
      template.set([0x0d, 0x0a], i * frameLen + head.length + plain);
    }
    chunks = { template, perChunk, frameLen };
    bodyAt = head.length;
    // Answer the server's PINGs so it never drops us.
    const answer = new MsgCounter(conn);
    (async () => {
      for (let c = await conn.read(); c !== null; c = await conn.read()) answer.push(c);
    })().catch(() => {});
  } else if (kind === "hydra") {
    const rc = await RawClient.connect(t, addrOf(port));
    const { frame } = await rc.produce(Session.fromToken(token!));
    conn = rc.conn;
    chunks = await hydraChunks(plain, (seq) => frame(seq, flags, plaintext()));
    // Wait for JOINED, then keep reading (ACKs) so the relay never waits on us.
    const m = await rc.nextControl();
    if (m?.kind !== ControlKind.Joined) throw new Error(`join failed: ${JSON.stringify(m)}`);
    (async () => {
      while ((await rc.next()) !== null);
    })().catch(() => {});
  } else {
    conn = await t.connect(addrOf(port));
    await conn.write(new Uint8Array([0x50]));
    // The same frames as for our relay (the ceiling relay only tracks their boundaries).
    chunks = await hydraChunks(plain, () => {
      const f = new Uint8Array(plain + OVERHEAD);
      new DataView(f.buffer).setUint32(0, f.length - 5);
      f[4] = 3;
      f[5] = flags;
      return Promise.resolve(f);
    });
  }
  conn.setNoDelay(true);
  return { conn, ...chunks, seqAt: kind === "nats" ? -1 : 18, bodyAt };
}

/**
 * Sends `count` frames. With `per` > 1 each hydra frame is a BATCH of `per` messages (what
 * `Producer` sends under load), the plaintext `(u32 length ‖ message)*`.
 */
async function producer(
  kind: string,
  port: number,
  size: number,
  count: number,
  token: string | undefined,
  per: number,
  rate: number,
) {
  const plain = per > 1 ? per * (size + 4) : size;
  const flags = per > 1 ? DataFlag.Batch : 0;
  const p = await openProducer(kind, port, plain, flags, token, () => batchOf(per, size));
  const { conn, template, perChunk, frameLen, seqAt } = p;
  for (let seq = 0; seq < count;) {
    // With a rate, one frame per 1/rate s (T7's 1 msg/s stream); without, whole chunks.
    if (rate > 0) await new Promise((r) => setTimeout(r, 1000 / rate));
    const k = rate > 0 ? 1 : Math.min(perChunk, count - seq);
    const chunk = template.slice(0, k * frameLen);
    if (seqAt >= 0) {
      const v = new DataView(chunk.buffer);
      for (let i = 0; i < k; i++) v.setUint32(i * frameLen + seqAt, seq + i);
    }
    seq += k;
    await conn.write(chunk);
  }
  say("sent");
}

/**
 * Send times carried in the records of one connection: hydra/1 data frames (the time where
 * the ciphertext starts; the relay is blind to it) or NATS `MSG` records (the payload's first
 * bytes). Bytes are gathered across chunks; rates here are low, so clarity over speed.
 */
class StampReader {
  #buf = new Uint8Array(0);
  constructor(readonly kind: string, readonly conn: Conn) {}

  /** Appends a chunk; returns the send times of the records it completed. */
  push(c: Uint8Array): number[] {
    const joined = new Uint8Array(this.#buf.length + c.length);
    joined.set(this.#buf);
    joined.set(c, this.#buf.length);
    const v = new DataView(joined.buffer);
    const stamps: number[] = [];
    let at = 0;
    while (true) {
      const used = this.kind === "nats"
        ? this.#msg(joined, v, at, stamps)
        : this.#frame(v, at, stamps);
      if (used === 0) break;
      at += used;
    }
    this.#buf = joined.slice(at);
    return stamps;
  }

  #frame(v: DataView, at: number, stamps: number[]): number {
    if (v.byteLength - at < 5) return 0;
    const len = 5 + v.getUint32(at);
    if (v.byteLength - at < len) return 0;
    if (v.getUint8(at + 4) === 3) stamps.push(v.getFloat64(at + 22));
    return len;
  }

  #msg(b: Uint8Array, v: DataView, at: number, stamps: number[]): number {
    const eol = b.indexOf(0x0a, at);
    if (eol < 0) return 0;
    const line = new TextDecoder().decode(b.subarray(at, eol)).trim();
    if (line.startsWith("PING")) this.conn.write(enc.encode("PONG\r\n")).catch(() => {});
    if (!line.startsWith("MSG")) return eol + 1 - at;
    const size = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (b.length < eol + 1 + size + 2) return 0;
    stamps.push(v.getFloat64(eol + 1));
    return eol + 1 + size + 2 - at;
  }
}

/**
 * The relay's own hop, for T4's split: a raw producer and N raw consumers in this process (no
 * client library, no AES-GCM at either end), <rate> 64 B messages per second for <seconds>,
 * each carrying its send time; prints {"p50", "p99", "p999", "samples"} in microseconds.
 */
async function hop(
  kind: string,
  port: number,
  n: number,
  rate: number,
  seconds: number,
  token: string | undefined,
  phases = 1,
) {
  const session = token === undefined ? undefined : Session.fromToken(token);
  let pinging: ReturnType<typeof setInterval> | undefined;
  let conns: Conn[];
  if (kind === "hydra") {
    const clients = await inBatches(n, 50, () => hydraConsumer(port, session!));
    conns = clients.map((c) => c.conn);
    // Consumers only read: ping as library clients do, so a session measured in several
    // phases outlives the relay's idle timeout (pongs are skipped by the reader).
    pinging = setInterval(() => {
      for (const c of clients) c.control({ kind: ControlKind.Ping, nonce: 1n }).catch(() => {});
    }, 5000);
  } else conns = await inBatches(n, 50, () => connectConsumer(kind, port, session));
  if (kind === "minimal") await new Promise((r) => setTimeout(r, 200));
  const p = await openProducer(kind, port, 64, 0, token, () => new Uint8Array(64));
  const count = Math.round(rate * seconds);
  let samples: number[] = [];
  let failure: Error | undefined;
  const reading = conns.map(async (conn) => {
    const reader = new StampReader(kind, conn);
    let seen = 0;
    while (seen < count * phases) {
      const c = await conn.read();
      if (c === null) throw new Error(`relay closed after ${seen} of ${count * phases} messages`);
      const now = performance.now();
      for (const sentAt of reader.push(c)) {
        samples.push((now - sentAt) * 1000);
        seen++;
      }
    }
  });
  for (const r of reading) r.catch((e: Error) => void (failure ??= e));
  for (let phase = 0; phase < phases; phase++) {
    if (phase > 0) {
      // Between phases the session stays joined; the orchestrator changes the conditions
      // (a flood starts) and says `go`.
      say("paused");
      await nextStdinLine("go");
    }
    samples = [];
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const frame = p.template.slice(0, p.frameLen);
      const v = new DataView(frame.buffer);
      if (p.seqAt >= 0) v.setUint32(p.seqAt, phase * count + i);
      v.setFloat64(p.bodyAt, performance.now());
      await p.conn.write(frame);
    }
    while (samples.length < count * n) {
      if (failure !== undefined) throw failure;
      await new Promise((r) => setTimeout(r, 5));
    }
    say(JSON.stringify(percentiles(samples)));
  }
  await Promise.all(reading);
  clearInterval(pinging);
  for (const c of conns) c.close();
}

/** Resolves when stdin brings the line `word`. */
function nextStdinLine(word: string): Promise<void> {
  return new Promise((resolve) => {
    let buf = "";
    const onData = (b: Uint8Array) => {
      buf += new TextDecoder().decode(b);
      if (buf.split("\n").some((l) => l.trim() === word)) {
        G.process.stdin.off("data", onData);
        resolve();
      }
    };
    G.process.stdin.on("data", onData);
  });
}

/** p50, p99 and p99.9 of `samples` (sorted in place), and their count. */
function percentiles(samples: number[]) {
  samples.sort((a, b) => a - b);
  const q = (f: number) => samples[Math.min(samples.length - 1, Math.floor(f * samples.length))]!;
  return { p50: q(0.5), p99: q(0.99), p999: q(0.999), samples: samples.length };
}

/** A plaintext: one message, or a BATCH of `per` messages. */
function batchOf(per: number, size: number): Uint8Array {
  if (per === 1) return new Uint8Array(size);
  return encodeBatch(Array.from({ length: per }, () => new Uint8Array(size)));
}

async function idle(port: number, n: number, token: string) {
  const session = Session.fromToken(token);
  const clients = await inBatches(n, 50, () => hydraConsumer(port, session));
  // Stay alive past the relay's idle timeout.
  setInterval(() => {
    for (const c of clients) c.control({ kind: ControlKind.Ping, nonce: 1n }).catch(() => {});
  }, 5000);
  say("ready");
}

/** Runs a full garbage collection where the runtime lets us (Bun always; V8 with --expose-gc). */
function collectGarbage(): void {
  if (G.Bun !== undefined) G.Bun.gc(true);
  else G.gc?.();
}

/**
 * Memory of idle `Consumer` clients (the library's, with reconnect and heartbeat): this
 * process's RSS growth per client after N joins, after a full GC on both sides of the
 * measurement.
 */
async function clients(port: number, n: number, token: string) {
  const session = Session.fromToken(token);
  // Warm up: load every module and JIT the join path once.
  const warm = await Consumer.connect(addrOf(port), session);
  await warm.close();
  collectGarbage();
  await new Promise((r) => setTimeout(r, 200));
  const before = G.process.memoryUsage().rss as number;
  const held = await inBatches(n, 50, () => Consumer.connect(addrOf(port), session));
  collectGarbage();
  await new Promise((r) => setTimeout(r, 200));
  const after = G.process.memoryUsage().rss as number;
  say(JSON.stringify({ clients: held.length, perClientKiB: (after - before) / n / 1024 }));
}

/**
 * T7: joins `n` consumers (raw clients, policy block), prints `ready`, then waits until every
 * one has `count` data frames; prints {"consumers", "complete", "ms"}.
 */
async function scale(port: number, n: number, token: string, count: number) {
  const session = Session.fromToken(token);
  // Ping as library clients do, from the first join on: joining thousands can take longer than
  // the relay's idle timeout (20 s), and a silent client is cut at it.
  const joined: RawClient[] = [];
  const pinging = setInterval(() => {
    for (const c of joined) c.control({ kind: ControlKind.Ping, nonce: 1n }).catch(() => {});
  }, 5000);
  const clients = await inBatches(n, 100, async () => {
    const c = await hydraConsumer(port, session);
    joined.push(c);
    return c;
  });
  say("ready");
  const started = performance.now();
  let complete = 0;
  await Promise.all(clients.map(async (rc) => {
    const counter = new FrameCounter();
    while (counter.data < count) {
      const c = await rc.conn.read().catch(() => null);
      if (c === null) return;
      counter.push(c);
    }
    complete++;
  }));
  clearInterval(pinging);
  say(JSON.stringify({ consumers: n, complete, ms: performance.now() - started }));
}

async function joins(port: number, n: number, token: string) {
  const session = Session.fromToken(token);
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < n) {
      next++;
      (await hydraConsumer(port, session)).close();
    }
  }));
  say(JSON.stringify({ ms: performance.now() - started, joins: n }));
}

async function flood(port: number, rate: number, seconds: number, token: string) {
  const session = Session.fromToken(token);
  const stats = { started: 0, joined: 0, failed: 0, skipped: 0, ms: 0 };
  let inFlight = 0;
  const running: Promise<void>[] = [];
  const started = performance.now();
  say("flooding");
  // Starts are paced in 10 ms ticks (timers are not finer than that everywhere).
  for (let tick = 0; performance.now() - started < seconds * 1000; tick++) {
    const due = Math.round(((tick + 1) * 10 * rate) / 1000) - Math.round((tick * 10 * rate) / 1000);
    for (let i = 0; i < due; i++) {
      if (inFlight >= 256) {
        stats.skipped++;
        continue;
      }
      inFlight++;
      stats.started++;
      running.push(
        hydraConsumer(port, session).then(
          (rc) => {
            stats.joined++;
            rc.conn.close();
          },
          () => void stats.failed++,
        ).finally(() => void inFlight--),
      );
    }
    const next = started + (tick + 1) * 10;
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
  await Promise.all(running);
  stats.ms = performance.now() - started;
  say(JSON.stringify(stats));
}

// The orchestrator ends a load process by closing its stdin.
G.process.stdin.on("end", () => G.process.exit(0));
G.process.stdin.resume();
const [role, ...a] = G.process.argv.slice(2) as string[];
const num = (i: number) => Number(a[i]);
if (role === "consumers") await consumers(a[0]!, num(1), num(2), num(4), a[5]);
else if (role === "producer") {
  await producer(a[0]!, num(1), num(2), num(3), a[4], num(5) || 1, num(6) || 0);
} else if (role === "idle") await idle(num(0), num(1), a[2]!);
else if (role === "clients") await clients(num(0), num(1), a[2]!);
else if (role === "hop") await hop(a[0]!, num(1), num(2), num(3), num(4), a[5], num(6) || 1);
else if (role === "scale") await scale(num(0), num(1), a[2]!, num(3));
else if (role === "flood") await flood(num(0), num(1), num(2), a[3]!);
else if (role === "joins") {
  await joins(num(0), num(1), a[2]!);
  G.process.exit(0);
} else throw new Error("usage: relay_load consumers|producer|hop|scale|idle|clients|joins|flood …");
