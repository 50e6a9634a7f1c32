/**
 * Cost of one hop through NATS (issue 8, part 5; docs/SCALING.md). In one run, per runtime:
 * nats-server with JetStream, relays A and B (`hydra-relay serve --cluster`, separate
 * processes on the runtime under test) and, for comparison, a stand-alone relay S.
 *
 * - latency: one producer on A sends 64 B messages at --rate msg/s for --seconds; a consumer
 *   on A (one hop) and a consumer on B (A → NATS → B) in this process, on one clock, report
 *   p50/p99/p99.9 of send → receive. The difference is the hop's cost.
 * - throughput and CPU: the producer sends --mib MiB of --size messages as fast as it may, with
 *   one consumer on A and one on B (cluster) — and again with both consumers on S (stand-alone).
 *   CPU time of every server process comes from /proc/<pid>/stat, reported as CPU-ms per MiB
 *   the producer sent: S's cost for two consumers against A + B + nats-server's for the same
 *   two, one of them a hop away.
 *
 *   deno run -A scripts/bench/cluster.ts [--runtimes deno,bun,node] [--quick] [--json FILE]
 *
 * Clients are the library's Producer and Consumer in this (Deno) process, decrypting.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";
import { parseArgs } from "node:util";
import { cliArgs } from "../_cli.ts";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { Session } from "../../src/protocol/session.ts";
import { natsMissing, NatsServer } from "../../tests/_nats.ts";
import { devBin } from "../_bin.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values } = cliArgs(import.meta.url, () =>
  parseArgs({
    options: {
      runtimes: { type: "string", default: "deno,bun,node" },
      quick: { type: "boolean", default: false },
      rate: { type: "string" },
      seconds: { type: "string" },
      mib: { type: "string" },
      size: { type: "string", default: "1024" },
      json: { type: "string" },
    },
  }));
const quick = values.quick!;
const rate = Number(values.rate ?? 1000);
const seconds = Number(values.seconds ?? (quick ? 2 : 10));
const mib = Number(values.mib ?? (quick ? 16 : 128));
const size = Number(values.size);

interface Relay {
  readonly addr: string;
  readonly pid: number;
  stop(): Promise<void>;
}

function cli(runtime: string): string[] {
  if (runtime === "deno") {
    return [devBin("deno"), "run", "-A", join(root, "mod.ts")];
  }
  if (runtime === "bun") return [devBin("bun"), join(root, "mod.ts")];
  return ["node", join(root, "npm/src/cli/bin.js")];
}

async function serve(runtime: string, extra: string[]): Promise<Relay> {
  const [cmd, ...args] = cli(runtime);
  const child: ChildProcess = spawn(
    cmd!,
    [...args, "serve", "--port", "0", "--ephemeral", "--log-level", "warn", ...extra],
    { stdio: ["ignore", "pipe", "inherit"], cwd: root },
  );
  let text = "";
  const addr = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no banner from ${runtime}: ${text}`)), 30_000);
    child.stdout!.on("data", (b: Uint8Array) => {
      text += new TextDecoder().decode(b);
      const m = /listening on (\S+)/.exec(text);
      if (m !== null) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    });
    child.once("exit", () => reject(new Error(`serve on ${runtime} exited: ${text}`)));
  });
  return {
    addr,
    pid: child.pid!,
    async stop() {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await gone;
    },
  };
}

/** CPU time (user + system) of a process so far, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * 10; // clock ticks of 10 ms
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/** Latency at a fixed rate: a producer on `relays[0]`, one consumer on each relay, one clock. */
async function latency(relays: Relay[]): Promise<number[][]> {
  const session = Session.generate();
  const consumers = await Promise.all(relays.map((r) => Consumer.connect(r.addr, session)));
  const producer = await Producer.connect(relays[0]!.addr, session);
  const total = Math.round(rate * seconds);
  const warm = Math.round(total / 10);
  const results = consumers.map(() => [] as number[]);
  const reading = consumers.map(async (c, k) => {
    for (let i = 0; i < total; i++) {
      const m = await c.recv();
      if (m === null) break;
      const v = new DataView(m.buffer, m.byteOffset);
      if (v.getUint32(0) >= warm) results[k]!.push(performance.now() - v.getFloat64(4));
    }
  });
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const m = new Uint8Array(64);
    const v = new DataView(m.buffer);
    v.setUint32(0, i);
    v.setFloat64(4, performance.now());
    await producer.broadcast(m);
  }
  await Promise.all(reading);
  await producer.close();
  for (const c of consumers) await c.close();
  for (const r of results) r.sort((x, y) => x - y);
  return results;
}

/** Bulk: `mib` MiB of `size`-byte messages to one consumer on each relay given. */
async function bulk(origin: Relay, mirrors: Relay[], pids: number[]) {
  const session = Session.generate();
  const consumers = await Promise.all(
    [origin, ...mirrors].map((r) => Consumer.connect(r.addr, session, { policy: "block" })),
  );
  const producer = await Producer.connect(origin.addr, session);
  const count = Math.floor((mib * 1024 * 1024) / size);
  const cpu0 = pids.map(cpuMs);
  const started = performance.now();
  const reading = consumers.map(async (c) => {
    let n = 0;
    while ((await c.recv()) !== null) n++;
    return [n, performance.now() - started] as const;
  });
  const m = new Uint8Array(size);
  for (let i = 0; i < count; i++) await producer.broadcast(m);
  await producer.close();
  const done = await Promise.all(reading);
  const cpu = pids.map((p, k) => cpuMs(p) - cpu0[k]!);
  for (const c of consumers) await c.close();
  return {
    delivered: done.map(([n, ms]) => ({ n, mibs: (n * size) / 1048576 / (ms / 1000) })),
    cpuMsPerMiB: cpu.map((ms) => ms / mib),
    count,
  };
}

const rows: unknown[] = [];
const missing = natsMissing();
if (missing !== undefined) {
  console.log(`cluster bench: ${missing}`);
} else {
  if (values.runtimes!.includes("node") && !existsSync(join(root, "npm/src/cli/bin.js"))) {
    throw new Error("build the npm package first (npm run build)");
  }
  console.log(
    `cluster hop cost — latency: 64 B at ${rate}/s for ${seconds} s; bulk: ${mib} MiB of ${size} B`,
  );
  console.log(
    "runtime  relay      p50 ms  p99 ms  p99.9 ms | bulk MiB/s  relay CPU-ms/MiB  nats CPU-ms/MiB",
  );
  for (const runtime of values.runtimes!.split(",")) {
    const nats = await NatsServer.start();
    const prefix = `bench${Date.now()}`;
    const cluster = ["--cluster", nats.url, "--cluster-prefix", prefix];
    const a = await serve(runtime, cluster);
    const b = await serve(runtime, cluster);
    const s = await serve(runtime, []);
    const natsPid = nats.pid!;
    try {
      const [alone] = await latency([s]);
      const [near, far] = await latency([a, b]);
      const lat = { standalone: alone!, near: near!, far: far! };
      const one = await bulk(s, [s], [s.pid]); // the same two consumers, both local
      const two = await bulk(a, [b], [a.pid, b.pid, natsPid]);
      const fmt = (x: number) => x.toFixed(2).padStart(7);
      const line = (hop: string, l: number[], mibs: number, relayCpu: string, natsCpu: string) =>
        console.log(
          `${runtime.padEnd(8)} ${hop.padEnd(10)}${fmt(pct(l, 0.5))} ${fmt(pct(l, 0.99))}  ${
            fmt(pct(l, 0.999))
          }  | ${mibs.toFixed(1).padStart(10)}  ${relayCpu.padStart(16)}  ${natsCpu.padStart(15)}`,
        );
      line("alone S", lat.standalone, one.delivered[0]!.mibs, one.cpuMsPerMiB[0]!.toFixed(2), "-");
      line("origin A", lat.near, two.delivered[0]!.mibs, two.cpuMsPerMiB[0]!.toFixed(2), "-");
      line(
        "mirror B",
        lat.far,
        two.delivered[1]!.mibs,
        two.cpuMsPerMiB[1]!.toFixed(2),
        two.cpuMsPerMiB[2]!.toFixed(2),
      );
      for (const d of [...one.delivered, ...two.delivered]) {
        if (d.n !== one.count) {
          console.log(`  ${runtime}: a consumer got ${d.n} of ${one.count} messages`);
          process.exitCode = 1;
        }
      }
      rows.push({
        runtime,
        latencyMs: Object.fromEntries(
          Object.entries(lat).map(([k, l]) => [k, {
            p50: pct(l, 0.5),
            p99: pct(l, 0.99),
            p999: pct(l, 0.999),
            samples: l.length,
          }]),
        ),
        standalone: { mibs: one.delivered[0]!.mibs, cpuMsPerMiB: one.cpuMsPerMiB[0] },
        cluster: {
          originMibs: two.delivered[0]!.mibs,
          mirrorMibs: two.delivered[1]!.mibs,
          delivered: two.delivered.map((d) => d.n),
          expected: two.count,
          cpuMsPerMiB: {
            origin: two.cpuMsPerMiB[0],
            mirror: two.cpuMsPerMiB[1],
            nats: two.cpuMsPerMiB[2],
          },
        },
      });
    } finally {
      await Promise.all([a.stop(), b.stop(), s.stop()]);
      await nats.dispose();
    }
  }
}
if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(rows, null, 2) + "\n");
