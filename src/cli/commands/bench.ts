/**
 * @module
 * `hydra-relay bench`: a relay, one producer and N consumers in this process; prints delivered
 * messages/s, bytes/s and end-to-end latency (src/cli/bench.ts runs it).
 */

import { tmpdir } from "node:os";
import process from "node:process";
import { type FlagSpec, intFlag, UsageError } from "../args.ts";
import { runBench } from "../bench.ts";
import { bar, grouped, humanBytes, Progress } from "../progress.ts";
import { type Command, CONFIG, type Flags, HELP, JSON_FLAG, out } from "./_command.ts";

const BENCH_FLAGS: FlagSpec[] = [
  { name: "consumers", default: "4", value: "N", help: "consumers (1-1000)" },
  { name: "size", default: "1KiB", value: "BYTES", help: "message size, 8 B to 1 MiB" },
  { name: "seconds", default: "5", value: "S", help: "how long the producer sends" },
  { name: "rate", default: "0", value: "N", help: "messages/s to send, 0 = as fast as possible" },
  { name: "transport", default: "tcp", value: "T", help: "tcp | unix | memory" },
  JSON_FLAG,
  CONFIG,
  HELP,
];

async function bench(flags: Flags): Promise<number> {
  const transport = flags.transport;
  if (transport !== "tcp" && transport !== "unix" && transport !== "memory") {
    throw new UsageError(`--transport must be tcp, unix or memory, got "${transport}"`);
  }
  const seconds = Number(flags.seconds);
  if (!(seconds > 0 && seconds <= 3600)) {
    throw new UsageError(`--seconds must be above 0 and at most 3600, got "${flags.seconds}"`);
  }
  const consumers = intFlag(flags, "consumers")!;
  const size = intFlag(flags, "size")!;
  if (consumers < 1 || consumers > 1000) {
    throw new UsageError(`--consumers must be 1 to 1000, got ${consumers}`);
  }
  if (size < 8 || size > 1 << 20) throw new UsageError(`--size must be 8 B to 1 MiB, got ${size}`);
  const json = flags.json !== undefined;
  let fraction = 0;
  const progress = new Progress("bench", process.stderr, () => bar(fraction));
  const r = await runBench(
    { consumers, size, seconds, transport, rate: intFlag(flags, "rate")!, socketDir: tmpdir() },
    (f, sent) => {
      fraction = f;
      progress.messages = sent;
      progress.bytes = sent * size;
    },
  );
  progress.stop();
  if (json) {
    out(JSON.stringify(r) + "\n");
    return 0;
  }
  const each = r.received[0] ?? 0;
  const rows: [string, string][] = [
    ["producer sent", `${grouped(r.sentPerSecond)} msg/s`],
    ["each consumer got", `${grouped(each)} of ${grouped(r.sent)} messages`],
    ["delivered (all)", `${grouped(r.deliveredPerSecond)} msg/s`],
    ["delivered (all)", `${humanBytes(r.deliveredBytesPerSecond)}/s`],
    ["latency p50", `${r.latencyMs.p50.toFixed(2)} ms`],
    ["latency p99", `${r.latencyMs.p99.toFixed(2)} ms`],
    ["latency max", `${r.latencyMs.max.toFixed(2)} ms`],
  ];
  out(
    `hydra-relay bench on ${r.runtime}: 1 producer -> ${r.consumers} consumers, ` +
      `${humanBytes(r.size)} messages, ${r.transport}, ${r.seconds.toFixed(1)} s, ` +
      `${r.rate > 0 ? `${grouped(r.rate)} msg/s` : "full speed (latency includes queueing)"}\n\n` +
      rows.map(([k, v]) => `  ${k.padEnd(18)} ${v.padStart(24)}`).join("\n") + "\n",
  );
  return 0;
}

/** `hydra-relay bench`. */
export const benchCommand: Command = {
  usage:
    "Usage: hydra-relay bench [options]\n\nRuns a relay, one producer and N consumers in this process and reports delivered\nmessages/s, bytes/s and end-to-end latency (every message sealed and opened).",
  flags: BENCH_FLAGS,
  run: bench,
};
