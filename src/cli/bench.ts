/**
 * @module
 * `hydra-relay bench`: a self-contained local benchmark. It starts a relay in this process,
 * one producer and N consumers (policy `block`, so nothing is dropped), streams messages of
 * one size for a while, and reports what arrived: rates, bytes and end-to-end latency, with
 * every message sealed by the producer and opened by every consumer. For the cross-process
 * suite with same-run baselines, see scripts/bench/relay.ts.
 */

import { Consumer } from "../client/consumer.ts";
import { Producer } from "../client/producer.ts";
import { Session } from "../protocol/session.ts";
import { runtimeName } from "../runtime.ts";
import { RelayServer } from "../server/relay.ts";
import { memoryTransport } from "../transport/memory.ts";
import type { Addr, Transport } from "../transport/types.ts";

/** What to run. */
export interface BenchOptions {
  /** Consumers (1–1,000). */
  readonly consumers: number;
  /** Message size in bytes (8 B–1 MiB; latency is carried in the first 8 bytes). */
  readonly size: number;
  /** How long the producer sends. */
  readonly seconds: number;
  /** Messages per second to send; 0 (default): as fast as the consumers take them, so the
   * latency figures then include time spent in full queues. */
  readonly rate?: number;
  /** `tcp` (loopback), `unix` (a socket in `socketDir`) or `memory` (in-process pipes). */
  readonly transport: "tcp" | "unix" | "memory";
  /** Where the Unix socket goes. */
  readonly socketDir?: string;
}

/** What came out. */
export interface BenchResult {
  readonly runtime: string;
  readonly transport: string;
  readonly consumers: number;
  readonly size: number;
  /** The asked-for send rate (0: full speed). */
  readonly rate: number;
  /** From the first message sent to the last consumer's last message (s). */
  readonly seconds: number;
  /** Messages the producer sent. */
  readonly sent: number;
  /** Messages every consumer received (all equal: nothing is dropped under `block`). */
  readonly received: readonly number[];
  /** Producer messages per second. */
  readonly sentPerSecond: number;
  /** Messages per second over all consumers. */
  readonly deliveredPerSecond: number;
  /** Payload bytes per second over all consumers. */
  readonly deliveredBytesPerSecond: number;
  /** End-to-end latency of a sample of messages, milliseconds. */
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
}

/**
 * Runs the benchmark.
 * @param o What to run.
 * @param onProgress Called about every 100 ms with the fraction of the send time elapsed and
 *   the messages sent so far.
 * @returns The figures.
 * @throws {RangeError} for options out of range.
 */
export async function runBench(
  o: BenchOptions,
  onProgress: (fraction: number, sent: number) => void = () => {},
): Promise<BenchResult> {
  if (!Number.isInteger(o.consumers) || o.consumers < 1 || o.consumers > 1000) {
    throw new RangeError(`--consumers must be 1 to 1000, got ${o.consumers}`);
  }
  if (!Number.isInteger(o.size) || o.size < 8 || o.size > 1 << 20) {
    throw new RangeError(`--size must be 8 B to 1 MiB, got ${o.size}`);
  }
  if (o.rate !== undefined && !(o.rate >= 0 && Number.isFinite(o.rate))) {
    throw new RangeError(`--rate must be a number of messages per second, got ${o.rate}`);
  }
  if (!(o.seconds > 0 && o.seconds <= 3600)) {
    throw new RangeError(`--seconds must be above 0 and at most 3600, got ${o.seconds}`);
  }
  let transport: Transport | undefined;
  let addr: Addr | undefined;
  if (o.transport === "memory") transport = memoryTransport();
  if (o.transport === "unix") {
    addr = { kind: "unix", path: `${o.socketDir ?? "/tmp"}/hydra-bench-${Date.now()}.sock` };
  }
  const relay = await RelayServer.listen({
    ...(transport === undefined ? {} : { transport }),
    ...(addr === undefined ? { port: 0 } : { addr }),
    logLevel: "off",
  });
  const common = { ...(transport === undefined ? {} : { transport }), reconnect: false } as const;
  try {
    const session = Session.generate();
    const consumers = await Promise.all(
      Array.from(
        { length: o.consumers },
        () => Consumer.connect(relay.addr, session, { ...common, policy: "block" }),
      ),
    );
    const producer = await Producer.connect(relay.addr, session, common);
    const samples: number[] = [];
    const received = consumers.map(() => 0);
    const reading = consumers.map(async (c, k) => {
      for await (const m of c) {
        // Every 64th message of consumer 0 is timed: enough samples, little overhead.
        if (k === 0 && (received[0]! & 63) === 0) {
          const view = new DataView(m.buffer, m.byteOffset, m.byteLength);
          samples.push(performance.now() - view.getFloat64(0));
        }
        received[k]!++;
      }
    });

    const message = new Uint8Array(o.size);
    const stamp = new DataView(message.buffer);
    const started = performance.now();
    const deadline = started + o.seconds * 1000;
    let sent = 0;
    let nextReport = started;
    for (;;) {
      const now = performance.now();
      if (now >= deadline) break;
      if (now >= nextReport) {
        onProgress((now - started) / (o.seconds * 1000), sent);
        nextReport = now + 100;
        // Let timers and socket callbacks run: a tight loop of resolved promises starves them.
        await new Promise((r) => setTimeout(r, 0));
      }
      const rate = o.rate ?? 0;
      const burst = rate > 0
        ? Math.min(64, Math.floor(((now - started) * rate) / 1000) - sent)
        : 64;
      if (burst <= 0) {
        await new Promise((r) => setTimeout(r, 1));
        continue;
      }
      for (let i = 0; i < burst; i++) {
        stamp.setFloat64(0, performance.now());
        await producer.broadcast(message);
        sent++;
      }
    }
    const sendSeconds = (performance.now() - started) / 1000;
    onProgress(1, sent);
    await producer.close();
    await Promise.all(reading);
    const seconds = (performance.now() - started) / 1000;
    samples.sort((a, b) => a - b);
    const at = (q: number) =>
      samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0;
    const delivered = received.reduce((a, b) => a + b, 0);
    return {
      runtime: runtimeName(),
      transport: o.transport,
      consumers: o.consumers,
      size: o.size,
      rate: o.rate ?? 0,
      seconds,
      sent,
      received,
      sentPerSecond: sent / sendSeconds,
      deliveredPerSecond: delivered / seconds,
      deliveredBytesPerSecond: (delivered * o.size) / seconds,
      latencyMs: { p50: at(0.5), p99: at(0.99), max: samples.at(-1) ?? 0 },
    };
  } finally {
    await relay.close({ drainMs: 0 });
  }
}
