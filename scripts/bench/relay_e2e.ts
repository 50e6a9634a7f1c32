/**
 * End-to-end endpoints for scripts/bench/relay.ts, run under the runtime being measured (Node
 * runs the compiled copy in npm/scripts/bench/): the library's own `Producer` and `Consumer`
 * with the runtime's native crypto, sealing and opening every message.
 *
 *   relay_e2e seal <size> <count>
 *       the baseline: native AES-256-GCM seal of <count> <size>-byte messages, one after the
 *       other, through the same crypto provider the clients use; prints {"MBs"}
 *   relay_e2e consume <port> <token> <size> <count>
 *       a Consumer; prints `ready` once joined, then {"ms", "messages"} (ms from the first
 *       message to the last), checking every message's length and first/last bytes
 *   relay_e2e produce <port> <token> <size> <count>
 *       a Producer broadcasting <count> messages as fast as it may, then closing (END)
 *   relay_e2e fan <hydra|nats> <port> <token> <n> <size> <count>
 *       N subscribers in this process (library Consumers, decrypting; or nats.js subscribers
 *       on one subject); prints `ready`, then {"ms", "messages"} once all have <count>
 *   relay_e2e pub <hydra|nats> <port> <token> <size> <count>
 *       one publisher (library Producer, or nats.js publishing on the subject)
 *   relay_e2e lat <hydra|nats|nats-aes> <port> <token> <n> <rate> <seconds>
 *   relay_e2e latsub <hydra|nats|nats-aes> <port> <token> <n> <count>   (T4 split: subscribers)
 *   relay_e2e latpub <hydra|nats|nats-aes> <port> <token> <rate> <count> (T4 split: publisher)
 *       publisher and N subscribers in this process (one clock): <rate> messages/s carrying
 *       their send time; prints {"p50", "p99", "p999", "samples"} in microseconds
 *
 * `nats-aes` is nats.js with application-level AES-256-GCM, what a NATS user who wants the
 * payloads hidden from the server writes: the publisher seals each message under a key both
 * sides derive from the token (SHA-256 of it) with a counter nonce, sending `nonce ‖ sealed`;
 * every subscriber opens it with its own key object — the same native AES-GCM our clients use.
 *
 * nats.js is `@nats-io/transport-node` (v3; the relay's cluster mode uses it too).
 */

import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { createNativeCrypto, nativeCrypto } from "../../src/crypto/native.ts";
import { Session } from "../../src/protocol/session.ts";
import { connect as natsConnect, type NatsConnection } from "@nats-io/transport-node";

// deno-lint-ignore no-explicit-any
const G = globalThis as any;
const say = (line: string) => G.process.stdout.write(line + "\n");
const addrOf = (port: number) => ({ kind: "tcp" as const, hostname: "127.0.0.1", port });
/** HYDRA_BENCH_AEAD=node|webcrypto|auto overrides the runtime's default AES-GCM for the clients. */
const aead = G.process.env.HYDRA_BENCH_AEAD as "node" | "webcrypto" | "auto" | undefined;
const crypto = aead === undefined ? nativeCrypto() : createNativeCrypto({ aead });

/** Message i: its index in the first 4 bytes and in the last 4. */
function message(size: number, i: number): Uint8Array {
  const m = new Uint8Array(size);
  const v = new DataView(m.buffer);
  v.setUint32(0, i);
  v.setUint32(size - 4, i);
  return m;
}

async function seal(size: number, count: number): Promise<void> {
  const crypto = nativeCrypto();
  const aead = await crypto.aesGcm(crypto.randomBytes(32));
  const nonce = new Uint8Array(12);
  const plain = message(size, 0);
  await aead.seal(nonce, plain); // warm-up
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    new DataView(nonce.buffer).setUint32(8, i);
    await aead.seal(nonce, plain);
  }
  const ms = performance.now() - started;
  say(JSON.stringify({ MBs: (size * count) / ms / 1000 }));
}

async function consume(port: number, token: string, size: number, count: number) {
  const consumer = await Consumer.connect(addrOf(port), Session.fromToken(token), {
    policy: "block",
  });
  say("ready");
  let first = 0;
  let i = 0;
  for await (const m of consumer) {
    if (i === 0) first = performance.now();
    const v = new DataView(m.buffer, m.byteOffset, m.length);
    if (m.length !== size || v.getUint32(0) !== i || v.getUint32(size - 4) !== i) {
      throw new Error(`message ${i} is wrong`);
    }
    if (++i === count) break;
  }
  say(JSON.stringify({ ms: performance.now() - first, messages: i }));
  await consumer.close();
}

async function produce(port: number, token: string, size: number, count: number) {
  const producer = await Producer.connect(addrOf(port), Session.fromToken(token));
  for (let i = 0; i < count; i++) await producer.broadcast(message(size, i));
  await producer.close();
  say("sent");
}

/** The application-level AES-256-GCM key of `nats-aes`: SHA-256 of the token. */
const appKey = (token: string) => crypto.sha256(new TextEncoder().encode(token));

/** A subscriber of either kind: an async stream of message payloads. */
async function subscribers(
  kind: string,
  port: number,
  token: string,
  n: number,
): Promise<{ streams: AsyncIterable<Uint8Array>[]; close(): Promise<void> }> {
  if (kind === "hydra") {
    const session = Session.fromToken(token);
    const cs = await Promise.all(
      Array.from(
        { length: n },
        () => Consumer.connect(addrOf(port), session, { policy: "block", crypto }),
      ),
    );
    return { streams: cs, close: async () => void await Promise.all(cs.map((c) => c.close())) };
  }
  const ncs = await Promise.all(
    Array.from({ length: n }, () => natsConnect({ servers: `127.0.0.1:${port}` })),
  );
  const keys = kind === "nats-aes"
    ? await Promise.all(ncs.map(() => crypto.aesGcm(appKey(token))))
    : undefined;
  const streams = ncs.map((nc, i) => {
    const sub = nc.subscribe("b");
    const aead = keys?.[i];
    return {
      async *[Symbol.asyncIterator]() {
        if (aead === undefined) {
          for await (const m of sub) yield m.data;
          return;
        }
        for await (const m of sub) {
          yield await aead.open(m.data.subarray(0, 12), m.data.subarray(12));
        }
      },
    };
  });
  await Promise.all(ncs.map((nc) => nc.flush())); // subscriptions registered
  return { streams, close: async () => void await Promise.all(ncs.map((nc) => nc.close())) };
}

/** A publisher of either kind. */
async function publisher(
  kind: string,
  port: number,
  token: string,
): Promise<{ send(m: Uint8Array): Promise<void>; close(): Promise<void> }> {
  if (kind === "hydra") {
    const p = await Producer.connect(addrOf(port), Session.fromToken(token), { crypto });
    return { send: (m) => p.broadcast(m), close: () => p.close() };
  }
  const nc: NatsConnection = await natsConnect({ servers: `127.0.0.1:${port}` });
  const aead = kind === "nats-aes" ? await crypto.aesGcm(appKey(token)) : undefined;
  let sent = 0;
  return {
    async send(m) {
      if (aead === undefined) nc.publish("b", m);
      else {
        // nonce ‖ ciphertext ‖ tag, the nonce a counter (one key per run, never repeated).
        const nonce = new Uint8Array(12);
        new DataView(nonce.buffer).setUint32(8, sent);
        const out = await aead.seal(nonce, m, undefined, 12);
        out.set(nonce, 0);
        nc.publish("b", out);
      }
      // nats.js buffers publishes; flush now and then so memory stays bounded.
      if (++sent % 1000 === 0) await nc.flush();
    },
    async close() {
      await nc.flush();
      await nc.close();
    },
  };
}

async function fan(kind: string, port: number, token: string, n: number, count: number) {
  const subs = await subscribers(kind, port, token, n);
  say("ready");
  let first = 0;
  let total = 0;
  await Promise.all(subs.streams.map(async (s) => {
    let i = 0;
    for await (const _ of s) {
      if (first === 0) first = performance.now();
      if (++i === count) break;
    }
    total += i;
  }));
  say(JSON.stringify({ ms: performance.now() - first, messages: total }));
  await subs.close();
}

async function pub(kind: string, port: number, token: string, size: number, count: number) {
  const p = await publisher(kind, port, token);
  for (let i = 0; i < count; i++) await p.send(message(size, i));
  await p.close();
  say("sent");
}

/** Time in ms that processes on this machine share (the wall clock, at µs resolution). */
const now = () => performance.timeOrigin + performance.now();

/** Reads `count` stamped messages from every stream: each one's latency in µs. */
function collect(streams: AsyncIterable<Uint8Array>[], count: number): Promise<number[]> {
  const samples: number[] = [];
  return Promise.all(streams.map(async (st) => {
    let i = 0;
    for await (const m of st) {
      const sentAt = new DataView(m.buffer, m.byteOffset, m.length).getFloat64(0);
      samples.push((now() - sentAt) * 1000);
      if (++i === count) break;
    }
  })).then(() => samples);
}

/** Sends `count` 64-byte messages at `rate` per second, each stamped with its send time. */
async function paced(p: { send(m: Uint8Array): Promise<void> }, rate: number, count: number) {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const m = new Uint8Array(64);
    new DataView(m.buffer).setFloat64(0, now());
    await p.send(m);
  }
}

/** The quantiles and this process's CPU per message (what queues on its event loop). */
function report(samples: number[], count: number, cpu0: { user: number; system: number }) {
  samples.sort((a, b) => a - b);
  const q = (f: number) => samples[Math.min(samples.length - 1, Math.floor(f * samples.length))]!;
  const cpu = G.process.cpuUsage(cpu0);
  const cpuUs = (cpu.user + cpu.system) / count;
  say(
    JSON.stringify({ p50: q(0.5), p99: q(0.99), p999: q(0.999), samples: samples.length, cpuUs }),
  );
}

/** T4: publisher and subscribers in this one process. */
async function lat(kind: string, port: number, token: string, n: number, rate: number, s: number) {
  const subs = await subscribers(kind, port, token, n);
  const p = await publisher(kind, port, token);
  const count = Math.round(rate * s);
  const reading = collect(subs.streams, count);
  const cpu0 = G.process.cpuUsage();
  await paced(p, rate, count);
  report(await reading, count, cpu0);
  await p.close();
  await subs.close();
}

/** T4 split: the subscribers alone (the publisher is `latpub`, another process). */
async function latsub(kind: string, port: number, token: string, n: number, count: number) {
  const subs = await subscribers(kind, port, token, n);
  say("ready");
  const cpu0 = G.process.cpuUsage();
  report(await collect(subs.streams, count), count, cpu0);
  await subs.close();
}

/** T4 split: the publisher alone. */
async function latpub(kind: string, port: number, token: string, rate: number, count: number) {
  const p = await publisher(kind, port, token);
  await paced(p, rate, count);
  await p.close();
  say("sent");
}

G.process.stdin.on("end", () => G.process.exit(0));
G.process.stdin.resume();
const [role, ...a] = G.process.argv.slice(2) as string[];
const num = (i: number) => Number(a[i]);
if (role === "seal") await seal(num(0), num(1));
else if (role === "consume") await consume(num(0), a[1]!, num(2), num(3));
else if (role === "produce") await produce(num(0), a[1]!, num(2), num(3));
else if (role === "fan") await fan(a[0]!, num(1), a[2]!, num(3), num(5));
else if (role === "pub") await pub(a[0]!, num(1), a[2]!, num(3), num(4));
else if (role === "lat") await lat(a[0]!, num(1), a[2]!, num(3), num(4), num(5));
else if (role === "latsub") await latsub(a[0]!, num(1), a[2]!, num(3), num(4));
else if (role === "latpub") await latpub(a[0]!, num(1), a[2]!, num(3), num(4));
else throw new Error("usage: relay_e2e seal|consume|produce|fan|pub|lat|latsub|latpub …");
