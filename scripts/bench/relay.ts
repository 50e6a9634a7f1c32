/**
 * The relay benchmark (issue 4): our relay against, in the same run and on the same loopback,
 * (a) a minimal chunk-forwarding relay on the same runtime (the ceiling) and (b) nats-server.
 * Relay, producer and consumers are separate processes; the producer and the consumers are
 * the same Bun load generator for every contestant (scripts/bench/relay_load.ts).
 *
 *   deno task bench:relay [--quick] [--runtimes deno,bun,node] [--sizes 64,1024,65536,1048576]
 *                         [--n 1,10,100] [--reps N] [--mib N]
 *                         [--only fanout,idle,joins,flood,bulk,scale,e2e,latency]
 *                         [--idle N] [--joins N] [--flood-rate N] [--flood-limit N] [--bulk N]
 *                         [--scale N] [--e2e N] [--seconds N]
 *
 * fanout (T1): 1 → N, delivered payload MB/s (N × messages × size / time from the first data
 *   frame to the last consumer's last), consumers checking framing, not decrypting; the
 *   median of --reps interleaved repetitions (minimal, hydra, nats, minimal, …).
 * idle (T5): relay RSS growth per 1,000 idle consumers (joined and pinging, for ours).
 * joins (T6): complete consumer joins per second (Noise handshake + proof + JOINED), 64 in
 *   flight from one client process.
 * flood (issue 23): the relay's hop (raw clients, 64 B at 1,000 msg/s to 10) on one relay,
 *   one session joined first, measured quiet and then, still joined, while another process
 *   attempts --flood-rate joins/s (default 2,000): p99 under the flood against quiet, joins
 *   completed per second, the relay's CPU per join, connections it turned away. The relay
 *   keeps its default maxHandshakesPerSecond (--flood-limit N sets it; 0 = none); every other
 *   part runs the relay without that limit, since they measure how fast joins can go.
 * bulk (T3): 1 → 1 end to end with the library's Producer and Consumer on the runtime under
 *   test (sealing and opening 1 MiB messages) against that runtime's native AES-GCM seal.
 * scale (T7): 10,000 consumers (1,000 with --quick) on one relay, every one receiving a
 *   1 msg/s stream.
 * e2e (T2): 1 → 10 64 B messages with every consumer decrypting (library clients on the
 *   runtime under test) against nats-server delivering them to nats.js subscribers.
 * latency (T4): 64 B at 1,000 msg/s to 10 consumers, p50/p99/p99.9, ours vs nats-server, the
 *   publisher and subscribers in one process (one clock): end to end with the library's
 *   clients (nats.js for nats-server), and the relay's hop alone with raw Bun clients.
 *
 * nats-server comes from Debian (`apt-get install -y nats-server`); without it the nats
 * column says "n/a". Writes .bench/relay.json; results go to docs/BENCHMARKS.md.
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { cliArgs } from "../_cli.ts";
import { Session } from "../../src/protocol/session.ts";
import { rssKiB } from "../../tests/cli/_run.ts";
import { devBin as bin } from "../_bin.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values } = cliArgs(import.meta.url, () =>
  parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      runtimes: { type: "string", default: "deno,bun,node" },
      sizes: { type: "string" },
      n: { type: "string" },
      reps: { type: "string" },
      mib: { type: "string" },
      only: { type: "string", default: "fanout,idle,joins,flood,bulk,scale,e2e,latency" },
      "flood-rate": { type: "string", default: "2000" },
      "flood-limit": { type: "string" },
      idle: { type: "string", default: "1000" },
      joins: { type: "string", default: "2000" },
      scale: { type: "string" },
      e2e: { type: "string" },
      seconds: { type: "string" },
      bulk: { type: "string" },
    },
  }));
const quick = values.quick;
const list = (s: string) => s.split(",").map((x) => x.trim()).filter((x) => x !== "");
const runtimes = list(values.runtimes);
const sizes = list(values.sizes ?? (quick ? "64,65536" : "64,1024,65536,1048576")).map(Number);
const fanouts = list(values.n ?? (quick ? "10" : "1,10,100")).map(Number);
const reps = Number(values.reps ?? (quick ? 1 : 3));
/** Payload delivered per cell (all consumers together). */
const target = Number(values.mib ?? (quick ? 64 : 512)) * 1024 * 1024;
const only = new Set(list(values.only));
const CELL_TIMEOUT_MS = 180_000;

const natsBin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"].find((p) => existsSync(p));

// ---- processes ----

interface Proc {
  child: ChildProcess;
  lines: string[];
  /** Resolves with the first line matching `test` (rejects on exit or timeout). */
  line(test: (l: string) => boolean, ms?: number): Promise<string>;
  stop(): Promise<void>;
}

function start(cmd: string[]): Proc {
  // T7 holds 10,000+ sockets in one process: raise the descriptor limit as far as allowed.
  const raise = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"';
  const child = spawn("bash", ["-c", raise, "bash", ...cmd], {
    stdio: ["pipe", "pipe", "pipe"],
    cwd: root,
  });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  let buf = "";
  let err = "";
  child.stdout!.on("data", (b: Uint8Array) => {
    buf += new TextDecoder().decode(b);
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters.splice(0)) w();
  });
  child.stderr!.on(
    "data",
    (b: Uint8Array) => (err = (err + new TextDecoder().decode(b)).slice(-2000)),
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    child,
    lines,
    line(test, ms = CELL_TIMEOUT_MS) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timeout: ${cmd.join(" ")}\n${err}`)), ms);
        const check = () => {
          const l = lines.find(test);
          if (l !== undefined) {
            clearTimeout(timer);
            return resolve(l);
          }
          if (child.exitCode !== null) {
            clearTimeout(timer);
            return reject(new Error(`exited ${child.exitCode}: ${cmd.join(" ")}\n${err}`));
          }
          waiters.push(check);
        };
        child.once("exit", () => setTimeout(check, 50));
        check();
      });
    },
    async stop() {
      child.stdin!.end();
      const t = setTimeout(() => child.kill("SIGKILL"), 3000);
      if (child.exitCode === null) await exited;
      clearTimeout(t);
    },
  };
}

/** A bench script under `runtime`, with a callable full GC (for the memory figures). */
/** The command running `script` on `runtime`; `v8` flags go to Deno's and Node's V8 (not Bun). */
function runtimeCmd(runtime: string, script: string, v8: string[] = []): string[] {
  if (runtime === "deno") {
    const file = join(root, `scripts/bench/${script}.ts`);
    return [bin("deno"), "run", "-A", `--v8-flags=${["--expose-gc", ...v8].join(",")}`, file];
  }
  if (runtime === "bun") return [bin("bun"), join(root, `scripts/bench/${script}.ts`)];
  return ["node", "--expose-gc", ...v8, join(root, `npm/scripts/bench/${script}.js`)];
}
const load = (
  ...args: string[]
) => [bin("bun"), join(root, "scripts/bench/relay_load.ts"), ...args];

interface Server {
  port: number;
  pid: number;
  /**
   * A full garbage collection in the relay process; resolves with its live JS memory (heap
   * used + external buffers) in bytes (nats-server: no-op, NaN).
   */
  gc(): Promise<number>;
  stop(): Promise<void>;
}

let natsDir: string | undefined;
async function startServer(
  kind: string,
  runtime: string,
  extra: string[] = [],
  v8: string[] = [],
): Promise<Server> {
  if (kind === "nats" || kind === "nats-aes") {
    natsDir ??= mkdtempSync(join(tmpdir(), "hydra-bench-nats-"));
    const conf = join(natsDir, "nats.conf");
    // Payloads up to 1 MiB need a larger max_payload; a larger max_pending keeps nats-server
    // from cutting consumers as slow while the producer outruns them (it has no backpressure).
    writeFileSync(
      conf,
      // Port -1: nats-server picks a free one and logs it. (A random pick of ours could land in
      // the ephemeral range, where the scale runs' thousands of client sockets live.)
      `listen: 127.0.0.1:-1\nmax_payload: 8MB\nmax_pending: 1GB\nwrite_deadline: "60s"\n`,
    );
    const p = start([natsBin!, "-c", conf]);
    const child = p.child;
    // nats-server logs its port and then "Server is ready" on stderr.
    const port = await new Promise<number>((resolve, reject) => {
      let log = "";
      const t = setTimeout(() => reject(new Error(`nats-server did not start: ${log}`)), 10_000);
      child.stderr!.on("data", (b: Uint8Array) => {
        log += new TextDecoder().decode(b);
        const m = /Listening for client connections on [^\s]+:(\d+)/.exec(log);
        if (m !== null && log.includes("Server is ready")) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
    });
    return {
      port,
      pid: child.pid!,
      gc: () => Promise.resolve(NaN),
      async stop() {
        child.kill("SIGTERM");
        if (child.exitCode === null) await new Promise((r) => child.once("exit", r));
      },
    };
  }
  // Our relay's handshake rate limit is a defence, not a capacity: benchmarks that join
  // crowds run without it (the flood passes its own).
  if (kind === "hydra" && extra.length < 2) extra = [extra[0] ?? "-", "0"];
  const p = start(runtimeCmd(runtime, "relay_server", v8).concat(kind, ...extra));
  const info = JSON.parse(await p.line((l) => l.startsWith("{"), 30_000)) as {
    port: number;
    pid: number;
  };
  return {
    ...info,
    async gc() {
      const before = p.lines.length;
      p.child.stdin!.write("gc\n");
      const l = await p.line(
        (l) => l.startsWith("gc-done") && p.lines.lastIndexOf(l) >= before,
        30_000,
      );
      return (JSON.parse(l.slice("gc-done ".length)) as { live: number }).live;
    },
    stop: () => p.stop(),
  };
}

// ---- fan-out (T1) ----

/**
 * One 1 → n run; returns delivered payload MB/s (1 MB = 10^6 bytes). With `per` > 1 the
 * producer sends BATCH frames of `per` messages (minimal: the same bytes).
 */
async function fanout(
  kind: string,
  runtime: string,
  size: number,
  n: number,
  per: number,
): Promise<number> {
  const count = Math.max(16, Math.ceil(target / (n * size * per)));
  const server = await startServer(kind, runtime);
  const token = Session.generate().token();
  const port = String(server.port);
  const consumers = start(
    load("consumers", kind, port, String(n), String(size), String(count), token),
  );
  let producer: Proc | undefined;
  try {
    await consumers.line((l) => l === "ready");
    producer = start(
      load("producer", kind, port, String(size), String(count), token, String(per)),
    );
    const r = JSON.parse(await consumers.line((l) => l.startsWith("{"))) as {
      ms: number;
      frames: number;
    };
    return (r.frames * per * size) / r.ms / 1000;
  } finally {
    await consumers.stop();
    await producer?.stop();
    await server.stop();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number | undefined, d = 0) =>
  x === undefined || Number.isNaN(x) ? "n/a" : x.toFixed(d);
const sizeName = (s: number) =>
  s >= 1 << 20 ? `${s >> 20} MiB` : s >= 1024 ? `${s >> 10} KiB` : `${s} B`;

interface FanoutRow {
  runtime: string;
  size: number;
  /** Messages per hydra frame (1, or a BATCH as `Producer` sends under load). */
  per: number;
  n: number;
  minimal: number;
  hydra: number;
  nats: number | undefined;
  vsCeiling: number;
  vsNats: number | undefined;
}

let errors = 0;

async function measureFanout(): Promise<FanoutRow[]> {
  const rows: FanoutRow[] = [];
  const natsCache = new Map<string, number>();
  console.log(
    `\n== fan-out (T1): delivered MB/s, median of ${reps}; target hydra ≥ 0.8× minimal and ≥ 3× nats ==`,
  );
  console.log("runtime  message        N  minimal    hydra     nats  hydra/min  hydra/nats");
  for (const runtime of runtimes) {
    for (const size of sizes) {
      // Small messages also as BATCH frames of up to 64 KiB: what Producer sends under load.
      const pers = size < 8192 ? [1, Math.floor(65536 / (size + 4))] : [1];
      for (const per of pers) {
        for (const n of fanouts) {
          const key = `${size}/${n}`;
          const got: Record<string, number[]> = { minimal: [], hydra: [], nats: [] };
          for (let i = 0; i < reps; i++) {
            for (const kind of ["minimal", "hydra", "nats"]) {
              if (kind === "nats" && (natsBin === undefined || natsCache.has(key))) continue;
              try {
                got[kind]!.push(await fanout(kind, runtime, size, n, kind === "nats" ? 1 : per));
              } catch (e) {
                errors++;
                console.log(
                  `# ${kind} ${runtime} ${sizeName(size)} ×${per} N=${n}: ${(e as Error).message}`,
                );
              }
            }
          }
          if (got.nats!.length > 0) natsCache.set(key, median(got.nats!));
          const nats = natsCache.get(key);
          const minimal = got.minimal!.length > 0 ? median(got.minimal!) : NaN;
          const hydra = got.hydra!.length > 0 ? median(got.hydra!) : NaN;
          const row: FanoutRow = {
            runtime,
            size,
            per,
            n,
            minimal,
            hydra,
            nats,
            vsCeiling: hydra / minimal,
            vsNats: nats === undefined ? undefined : hydra / nats,
          };
          rows.push(row);
          const label = per > 1 ? `${sizeName(size)} ×${per}` : sizeName(size);
          console.log(
            `${runtime.padEnd(8)} ${label.padEnd(13)} ${String(n).padStart(3)}  ${
              fmt(minimal).padStart(7)
            }  ${fmt(hydra).padStart(7)}  ${fmt(nats).padStart(7)}  ${
              fmt(row.vsCeiling, 2).padStart(9)
            }  ${fmt(row.vsNats, 2).padStart(10)}`,
          );
        }
      }
    }
  }
  return rows;
}

// ---- idle consumers (T5) ----

interface IdleRow {
  runtime: string;
  kind: string;
  n: number;
  baseKiB: number;
  loadedKiB: number;
  perThousandMB: number;
  /** Growth of live JS memory (heap used + external) per 1,000, after a full GC. */
  livePerThousandMB: number;
}

async function idleCost(
  kind: string,
  runtime: string,
  n: number,
  v8: string[] = [],
): Promise<IdleRow> {
  const server = await startServer(kind, runtime, [], v8);
  const token = Session.generate().token();
  await new Promise((r) => setTimeout(r, 500));
  const liveBase = await server.gc();
  const baseKiB = rssKiB(server.pid) ?? NaN;
  const clients = kind === "hydra"
    ? start(load("idle", String(server.port), String(n), token))
    : start(load("consumers", kind, String(server.port), String(n), "64", "1000000000"));
  try {
    await clients.line((l) => l === "ready");
    await new Promise((r) => setTimeout(r, 1000));
    const liveLoaded = await server.gc();
    const loadedKiB = rssKiB(server.pid) ?? NaN;
    const perThousandMB = ((loadedKiB - baseKiB) / n) * 1000 / 1024;
    const livePerThousandMB = ((liveLoaded - liveBase) / n) * 1000 / 1024 / 1024;
    return { runtime, kind, n, baseKiB, loadedKiB, perThousandMB, livePerThousandMB };
  } finally {
    await clients.stop();
    await server.stop();
  }
}

/** RSS per idle library `Consumer` in a client process of `runtime`. */
async function clientCost(runtime: string, n: number): Promise<number> {
  const server = await startServer("hydra", "bun");
  const token = Session.generate().token();
  const p = start(
    runtimeCmd(runtime, "relay_load").concat("clients", String(server.port), String(n), token),
  );
  try {
    const r = JSON.parse(await p.line((l) => l.startsWith("{"))) as { perClientKiB: number };
    return r.perClientKiB;
  } finally {
    await p.stop();
    await server.stop();
  }
}

async function measureIdle(): Promise<IdleRow[]> {
  const n = Number(values.idle);
  console.log(
    `\n== idle consumers (T5): relay RSS growth per 1,000 (measured with ${n}); target ≤ 1.5× minimal, ≤ 2 MB on Bun and Node (issue 23) ==`,
  );
  console.log("runtime  relay     base MB  loaded MB  MB per 1,000  live MB per 1,000");
  const rows: IdleRow[] = [];
  // "hydra-y1": the same relay with V8's young generation capped at 1 MiB semi-spaces, which
  // tells what the connections hold from how far V8 grew its young generation meanwhile
  // (a process-wide cost; Bun's JavaScriptCore has no such flag).
  const young = ["--max-semi-space-size=1"];
  for (const runtime of runtimes) {
    const kinds: [string, string, string[]][] = [["minimal", "minimal", []], [
      "hydra",
      "hydra",
      [],
    ]];
    if (runtime !== "bun") kinds.push(["hydra", "hydra-y1", young]);
    for (const [kind, label, v8] of kinds) {
      const r = { ...await idleCost(kind, runtime, n, v8), kind: label };
      rows.push(r);
      console.log(
        `${runtime.padEnd(8)} ${label.padEnd(8)} ${fmt(r.baseKiB / 1024, 1).padStart(8)}  ${
          fmt(r.loadedKiB / 1024, 1).padStart(9)
        }  ${fmt(r.perThousandMB, 2).padStart(12)}  ${fmt(r.livePerThousandMB, 2).padStart(17)}`,
      );
    }
  }
  const clientRows: { runtime: string; perClientKiB: number }[] = [];
  const m = Math.min(n, 200);
  console.log(
    `idle library Consumer clients (${m} in one process), RSS per client; target ≤ 256 KiB`,
  );
  for (const runtime of runtimes) {
    const perClientKiB = await clientCost(runtime, m);
    clientRows.push({ runtime, perClientKiB });
    console.log(`${runtime.padEnd(8)} ${fmt(perClientKiB, 1).padStart(7)} KiB per client`);
  }
  result.clients = clientRows;
  if (natsBin !== undefined) {
    const r = await idleCost("nats", "", n);
    rows.push(r);
    console.log(
      `-        nats     ${fmt(r.baseKiB / 1024, 1).padStart(8)}  ${
        fmt(r.loadedKiB / 1024, 1).padStart(9)
      }  ${fmt(r.perThousandMB, 2).padStart(12)}`,
    );
  }
  return rows;
}

// ---- joins (T6) ----

async function measureJoins(): Promise<
  { runtime: string; joinsPerSec: number; relayCpuMsPerJoin: number }[]
> {
  const n = Number(values.joins);
  console.log(
    `\n== joins (T6): complete consumer joins per second, ${n} joins, and the relay's CPU per join (the rest is the joining process's); target ≥ 5,000/s ==`,
  );
  console.log("runtime    joins/s  relay CPU ms/join");
  const rows = [];
  for (const runtime of runtimes) {
    const server = await startServer("hydra", runtime);
    const cpu0 = cpuSeconds(server.pid);
    const p = start(load("joins", String(server.port), String(n), Session.generate().token()));
    try {
      const r = JSON.parse(await p.line((l) => l.startsWith("{"))) as { ms: number; joins: number };
      // Includes the relay's share of the consumers' leaving (they close after the last join).
      const relayCpuMsPerJoin = ((cpuSeconds(server.pid) - cpu0) * 1000) / r.joins;
      const joinsPerSec = r.joins / (r.ms / 1000);
      rows.push({ runtime, joinsPerSec, relayCpuMsPerJoin });
      console.log(
        `${runtime.padEnd(8)} ${fmt(joinsPerSec).padStart(9)}  ${
          fmt(relayCpuMsPerJoin, 3).padStart(17)
        }`,
      );
    } finally {
      await p.stop();
      await server.stop();
    }
  }
  return rows;
}

// ---- a handshake flood (issue 23): a legitimate session's p99 while strangers join ----

/** CPU seconds (user + system) a process has used, from /proc (Linux); NaN elsewhere. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
  } catch {
    return NaN;
  }
}

async function measureFlood(): Promise<Record<string, unknown>[]> {
  const rate = Number(values["flood-rate"]);
  // The relay's maxHandshakesPerSecond during the flood: its default unless asked.
  const floodLimit = values["flood-limit"] ?? "-";
  const seconds = Number(values.seconds ?? (quick ? 3 : 10));
  const n = 10;
  console.log(
    `\n== handshake flood: the hop's latency (64 B at 1,000 msg/s to ${n}, raw clients joined first) quiet, then while ${rate} joins/s are attempted (the flooding process at nice 19); target flood p99 ≤ 2× quiet ==`,
  );
  console.log(
    `(relay maxHandshakesPerSecond: ${
      floodLimit === "-" ? "its default" : floodLimit
    }; failed: joins that failed (turned away unanswered, mostly); skipped: starts that found 256 in flight)`,
  );
  console.log(
    "runtime  quiet p50  p99   flood p50  p99    p99 ×  joined/s  relay CPU ms/join  failed  skipped",
  );
  const rows: Record<string, unknown>[] = [];
  for (const runtime of runtimes) {
    for (let rep = 0; rep < reps; rep++) {
      const server = await startServer("hydra", runtime, ["-", floodLimit]);
      let flooder: Proc | undefined;
      // One session, joined before the flood: measured quiet, then again while strangers join.
      const hop = start(
        load(
          "hop",
          "hydra",
          String(server.port),
          String(n),
          "1000",
          String(seconds),
          Session.generate().token(),
          "2",
        ),
      );
      try {
        const q0 = cpuSeconds(server.pid);
        const quiet = JSON.parse(await hop.line((l) => l.startsWith("{"))) as Latency;
        // What the session alone costs the relay per second, to take out of the flood's.
        const quietCpu = (cpuSeconds(server.pid) - q0) / seconds;
        await hop.line((l) => l === "paused");
        // At the lowest priority: the flood takes what CPU the relay and the measuring clients
        // leave, as it would from another machine, instead of starving them at the OS level.
        flooder = start([
          "nice",
          "-n",
          "19",
          ...load(
            "flood",
            String(server.port),
            String(rate),
            String(seconds + 2),
            Session.generate().token(),
          ),
        ]);
        await flooder.line((l) => l === "flooding");
        await new Promise((r) => setTimeout(r, 1000));
        const cpu0 = cpuSeconds(server.pid);
        hop.child.stdin!.write("go\n");
        const loud = JSON.parse(
          await hop.line((l) =>
            l.startsWith("{") && hop.lines.indexOf(l) > hop.lines.indexOf("paused")
          ),
        ) as Latency;
        const cpu1 = cpuSeconds(server.pid);
        const f = JSON.parse(await flooder.line((l) => l.startsWith("{"))) as {
          started: number;
          joined: number;
          failed: number;
          skipped: number;
          ms: number;
        };
        const joinedPerSec = f.joined / (f.ms / 1000);
        // The relay's CPU while the hop ran beyond what the quiet session took, per join
        // completed in that time (the flood's rate): turned-away connections included.
        const cpuMsPerJoin = ((cpu1 - cpu0 - quietCpu * seconds) * 1000) /
          (joinedPerSec * seconds);
        const ratio = loud.p99 / quiet.p99;
        rows.push({
          runtime,
          rate,
          quiet,
          flood: loud,
          ratio,
          joinedPerSec,
          cpuMsPerJoin,
          ...f,
        });
        console.log(
          `${runtime.padEnd(8)} ${fmt(quiet.p50).padStart(9)} ${fmt(quiet.p99).padStart(5)}  ${
            fmt(loud.p50).padStart(9)
          } ${fmt(loud.p99).padStart(6)}  ${fmt(ratio, 2).padStart(5)}  ${
            fmt(joinedPerSec).padStart(8)
          }  ${fmt(cpuMsPerJoin, 3).padStart(17)}  ${String(f.failed).padStart(6)}  ${
            String(f.skipped).padStart(7)
          }`,
        );
      } catch (e) {
        errors++;
        console.log(`# flood ${runtime}: ${(e as Error).message}`);
      } finally {
        await flooder?.stop();
        await hop.stop();
        await server.stop();
      }
    }
  }
  return rows;
}

// ---- bulk end to end (T3) ----

async function measureBulk(): Promise<{ runtime: string; sealMBs: number; e2eMBs: number }[]> {
  const size = 1 << 20;
  const count = Number(values.bulk ?? (quick ? 32 : 256));
  console.log(
    `\n== bulk end to end (T3): 1 → 1, ${count} × 1 MiB, library Producer/Consumer (sealing and opening) vs native AES-GCM seal; target ≥ 0.7× ==`,
  );
  console.log("runtime  seal MB/s  end-to-end MB/s  ratio");
  const rows = [];
  for (const runtime of runtimes) {
    const e2e = (...a: string[]) => runtimeCmd(runtime, "relay_e2e").concat(a);
    const sealer = start(e2e("seal", String(size), String(count)));
    const sealMBs = (JSON.parse(await sealer.line((l) => l.startsWith("{"))) as { MBs: number })
      .MBs;
    await sealer.stop();
    const server = await startServer("hydra", runtime);
    const token = Session.generate().token();
    const port = String(server.port);
    const consumer = start(e2e("consume", port, token, String(size), String(count)));
    let producer: Proc | undefined;
    try {
      await consumer.line((l) => l === "ready");
      producer = start(e2e("produce", port, token, String(size), String(count)));
      const r = JSON.parse(await consumer.line((l) => l.startsWith("{"))) as { ms: number };
      // The clock starts at the first message: count - 1 messages in r.ms.
      const e2eMBs = ((count - 1) * size) / r.ms / 1000;
      rows.push({ runtime, sealMBs, e2eMBs });
      console.log(
        `${runtime.padEnd(8)} ${fmt(sealMBs).padStart(9)}  ${fmt(e2eMBs).padStart(15)}  ${
          fmt(e2eMBs / sealMBs, 2).padStart(5)
        }`,
      );
    } catch (e) {
      errors++;
      console.log(`# bulk ${runtime}: ${(e as Error).message}`);
    } finally {
      await consumer.stop();
      await producer?.stop();
      await server.stop();
    }
  }
  return rows;
}

// ---- scale (T7) ----

async function measureScale(): Promise<{ runtime: string; consumers: number; complete: number }[]> {
  const n = Number(values.scale ?? (quick ? 1000 : 10_000));
  const messages = 5;
  console.log(
    `\n== scale (T7): ${n} consumers on one relay, a 1 msg/s stream of ${messages} messages; target: all receive all ==`,
  );
  const rows = [];
  for (const runtime of runtimes) {
    // The default cap (10,000 connections) would refuse the producer: raise it, as an operator
    // would with --max-connections.
    const server = await startServer("hydra", runtime, [String(n + 100)]);
    const token = Session.generate().token();
    const port = String(server.port);
    const joinedAt = Date.now();
    const consumers = start(load("scale", port, String(n), token, String(messages)));
    let producer: Proc | undefined;
    try {
      await consumers.line((l) => l === "ready", 600_000);
      const joinSeconds = (Date.now() - joinedAt) / 1000;
      const rss = rssKiB(server.pid) ?? NaN;
      producer = start(load("producer", "hydra", port, "64", String(messages), token, "1", "1"));
      const r = JSON.parse(await consumers.line((l) => l.startsWith("{"), 120_000)) as {
        consumers: number;
        complete: number;
      };
      rows.push({ runtime, ...r, joinSeconds, relayRssMB: rss / 1024 });
      console.log(
        `${runtime.padEnd(8)} ${r.complete} of ${r.consumers} received all ${messages} (joined in ${
          joinSeconds.toFixed(1)
        } s; relay RSS ${fmt(rss / 1024)} MB)`,
      );
      if (r.complete !== r.consumers) errors++;
    } catch (e) {
      errors++;
      console.log(`# scale ${runtime}: ${(e as Error).message}`);
    } finally {
      await consumers.stop();
      await producer?.stop();
      await server.stop();
    }
  }
  return rows;
}

// ---- small messages end to end (T2) and latency (T4): ours vs nats-server + nats.js ----

/** One 1 → n end-to-end run with the runtime's own clients; returns delivered messages/s. */
async function e2eRun(kind: string, runtime: string, n: number, count: number): Promise<number> {
  const server = await startServer(kind, runtime);
  const token = Session.generate().token();
  const port = String(server.port);
  const e2e = (...a: string[]) => runtimeCmd(runtime, "relay_e2e").concat(a);
  const subs = start(e2e("fan", kind, port, token, String(n), "64", String(count)));
  let producer: Proc | undefined;
  try {
    await subs.line((l) => l === "ready");
    producer = start(e2e("pub", kind, port, token, "64", String(count)));
    const r = JSON.parse(await subs.line((l) => l.startsWith("{"))) as {
      ms: number;
      messages: number;
    };
    return r.messages / (r.ms / 1000);
  } finally {
    await subs.stop();
    await producer?.stop();
    await server.stop();
  }
}

async function measureE2e(): Promise<Record<string, unknown>[]> {
  const n = 10;
  const count = Number(values.e2e ?? (quick ? 20_000 : 100_000));
  console.log(
    `\n== small messages end to end (T2): 1 → ${n}, ${count} × 64 B, every consumer decrypting; nats.js subscribers on nats-server; target ours ≥ nats ==`,
  );
  console.log("runtime  hydra msg/s  nats msg/s  ratio");
  const rows = [];
  for (const runtime of runtimes) {
    const got: Record<string, number[]> = { hydra: [], nats: [] };
    for (let i = 0; i < reps; i++) {
      for (const kind of ["hydra", "nats"]) {
        if (kind === "nats" && natsBin === undefined) continue;
        try {
          got[kind]!.push(await e2eRun(kind, runtime, n, count));
        } catch (e) {
          errors++;
          console.log(`# e2e ${kind} ${runtime}: ${(e as Error).message}`);
        }
      }
    }
    const hydra = got.hydra!.length > 0 ? median(got.hydra!) : NaN;
    const nats = got.nats!.length > 0 ? median(got.nats!) : NaN;
    rows.push({ runtime, hydra, nats, ratio: hydra / nats });
    console.log(
      `${runtime.padEnd(8)} ${fmt(hydra).padStart(11)}  ${fmt(nats).padStart(10)}  ${
        fmt(hydra / nats, 2).padStart(5)
      }`,
    );
  }
  return rows;
}

async function latencyRun(kind: string, runtime: string, n: number, seconds: number) {
  const server = await startServer(kind, runtime);
  const token = Session.generate().token();
  const e2e = runtimeCmd(runtime, "relay_e2e");
  const p = start(
    e2e.concat("lat", kind, String(server.port), token, String(n), "1000", String(seconds)),
  );
  try {
    return JSON.parse(await p.line((l) => l.startsWith("{"))) as Latency;
  } finally {
    await p.stop();
    await server.stop();
  }
}

/**
 * T4 with the publisher and the subscribers in two processes (as deployed: the producer signs
 * in one, the consumers verify in the other), timed by the wall clock both share.
 */
async function latencySplitRun(kind: string, runtime: string, n: number, seconds: number) {
  const server = await startServer(kind, runtime);
  const token = Session.generate().token();
  const e2e = runtimeCmd(runtime, "relay_e2e");
  const count = String(1000 * seconds);
  const port = String(server.port);
  const subs = start(e2e.concat("latsub", kind, port, token, String(n), count));
  let pub: Proc | undefined;
  try {
    await subs.line((l) => l === "ready");
    pub = start(e2e.concat("latpub", kind, port, token, "1000", count));
    return JSON.parse(await subs.line((l) => l.startsWith("{"))) as Latency;
  } finally {
    await subs.stop();
    await pub?.stop();
    await server.stop();
  }
}

/**
 * The relay's hop alone (T4's split): raw Bun clients (no library, no AES-GCM) publishing and
 * subscribing through the relay under test; the same clients against nats-server.
 */
async function hopRun(kind: string, runtime: string, n: number, seconds: number) {
  const server = await startServer(kind, runtime);
  const token = Session.generate().token();
  const p = start(
    load("hop", kind, String(server.port), String(n), "1000", String(seconds), token),
  );
  try {
    return JSON.parse(await p.line((l) => l.startsWith("{"))) as Latency;
  } finally {
    await p.stop();
    await server.stop();
  }
}

interface Latency {
  p50: number;
  p99: number;
  p999: number;
}

async function measureLatency(): Promise<Record<string, unknown>[]> {
  const n = 10;
  const seconds = Number(values.seconds ?? (quick ? 3 : 10));
  console.log(
    `\n== latency (T4): 64 B at 1,000 msg/s to ${n} consumers for ${seconds} s; µs; target p99 ≤ 0.8× nats-aes ==`,
  );
  console.log(
    "(e2e: library clients vs nats.js on the runtime (nats-aes: with application-level AES-256-GCM, as our clients seal and open), publisher and subscribers in one process; split: the same in two processes; hop: raw Bun clients, no crypto, through the relay alone)",
  );
  console.log("runtime  path  relay       p50     p99   p99.9");
  const rows: Record<string, unknown>[] = [];
  let natsHop: Latency | undefined;
  const show = (runtime: string, path: string, kind: string, r: Latency) => {
    rows.push({ runtime, path, kind, ...r });
    console.log(
      `${runtime.padEnd(8)} ${path.padEnd(5)} ${kind.padEnd(8)} ${fmt(r.p50).padStart(6)}  ${
        fmt(r.p99).padStart(6)
      }  ${fmt(r.p999).padStart(6)}`,
    );
  };
  for (const runtime of runtimes) {
    for (const [path, run] of [["e2e", latencyRun], ["split", latencySplitRun]] as const) {
      for (const kind of ["hydra", "nats", "nats-aes"]) {
        if (kind !== "hydra" && natsBin === undefined) continue;
        try {
          show(runtime, path, kind, await run(kind, runtime, n, seconds));
        } catch (e) {
          errors++;
          console.log(`# latency ${path} ${kind} ${runtime}: ${(e as Error).message}`);
        }
      }
      const p99 = (kind: string) =>
        (rows.find((r) => r.runtime === runtime && r.path === path && r.kind === kind) as
          | Latency
          | undefined)?.p99 ?? NaN;
      const ratio = p99("hydra") / p99("nats-aes");
      if (!Number.isNaN(ratio)) {
        rows.push({ runtime, path, kind: "ratio", p99: ratio });
        console.log(
          `${runtime.padEnd(8)} ${path.padEnd(5)} p99 hydra / nats-aes = ${
            fmt(ratio, 2)
          } (target ≤ 0.8)`,
        );
      }
    }
    for (const kind of ["hydra", "minimal", "nats"]) {
      if (kind === "nats" && natsBin === undefined) continue;
      try {
        // nats-server is the same program whatever the runtime: measured once.
        const r = kind === "nats"
          ? natsHop ??= await hopRun(kind, runtime, n, seconds)
          : await hopRun(kind, runtime, n, seconds);
        show(runtime, "hop", kind, r);
      } catch (e) {
        errors++;
        console.log(`# hop ${kind} ${runtime}: ${(e as Error).message}`);
      }
    }
  }
  return rows;
}

// ---- main ----

if (runtimes.includes("node")) {
  // Node runs the compiled copy: build it from the current sources.
  const b = spawnSync(bin("deno"), ["run", "-A", join(root, "scripts/build_npm.ts")], {
    stdio: "inherit",
  });
  if (b.status !== 0) throw new Error("npm build failed");
}
if (natsBin === undefined) {
  console.log("# nats-server not found (apt-get install -y nats-server): nats columns are n/a");
}
const started = Date.now();
const result: Record<string, unknown> = {
  date: new Date().toISOString(),
  versions: {
    deno: spawnSync(bin("deno"), ["--version"]).stdout?.toString().split("\n")[0],
    bun: spawnSync(bin("bun"), ["--version"]).stdout?.toString().trim(),
    node: spawnSync("node", ["--version"]).stdout?.toString().trim(),
    nats: natsBin === undefined
      ? undefined
      : spawnSync(natsBin, ["--version"]).stdout?.toString().trim(),
  },
  options: { quick, runtimes, sizes, fanouts, reps, targetBytes: target },
};
if (only.has("fanout")) result.fanout = await measureFanout();
if (only.has("idle")) result.idle = await measureIdle();
if (only.has("joins")) result.joins = await measureJoins();
if (only.has("flood")) result.flood = await measureFlood();
if (only.has("bulk")) result.bulk = await measureBulk();
if (only.has("scale")) result.scale = await measureScale();
if (only.has("e2e")) result.e2e = await measureE2e();
if (only.has("latency")) result.latency = await measureLatency();
mkdirSync(join(root, ".bench"), { recursive: true });
writeFileSync(join(root, ".bench/relay.json"), JSON.stringify(result, null, 2) + "\n");
if (natsDir !== undefined) rmSync(natsDir, { recursive: true, force: true });
console.log(`\nwrote .bench/relay.json (${((Date.now() - started) / 1000).toFixed(0)} s)`);
if (errors > 0) {
  console.log(`${errors} run(s) failed`);
  process.exitCode = 1;
}
