/**
 * Transport adapter throughput: a loopback transfer (default 1 GiB) through each native
 * adapter against a bare loop over the same runtime API, measured in the same run, sender
 * and receiver in separate processes. Repetitions are interleaved (raw, adapter, raw, …) so
 * machine noise hits both alike; the median is reported with the ratio adapter / raw.
 *
 * Usage: deno run -A scripts/bench/transport.ts [--quick] [--reps N] [--mib N] [deno|bun|node …]
 * Writes .bench/transport.json. Results go to docs/BENCHMARKS.md.
 */

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { devBin as bin } from "../_bin.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const reps = flag("--reps", quick ? 1 : 3);
const mib = flag("--mib", quick ? 256 : 1024);
const total = mib * 1024 * 1024;
const RUNTIMES = ["deno", "bun", "node"];
const named = args.filter((a) => RUNTIMES.includes(a));
const runtimes = named.length > 0 ? named : RUNTIMES;

function command(runtime: string): string[] {
  if (runtime === "deno") {
    return [bin("deno"), "run", "-A", join(root, "scripts/bench/transport_worker.ts")];
  }
  if (runtime === "bun") return [bin("bun"), join(root, "scripts/bench/transport_worker.ts")];
  return ["node", join(root, "npm/scripts/bench/transport_worker.js")];
}

/** Runs sink and source in two processes; returns the source's elapsed milliseconds. */
function transfer(runtime: string, impl: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const [cmd, ...base] = command(runtime);
    const sink = spawn(cmd!, [...base, "sink", impl, String(total)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    sink.stdout.once("data", (b: Uint8Array) => {
      const port = new TextDecoder().decode(b).trim();
      const source = spawn(cmd!, [...base, "source", impl, port, String(total)], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      source.stdout.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
      source.on("close", (code) => {
        if (code !== 0) return reject(new Error(`${impl} source exited ${code}`));
        sink.on("close", () => resolve((JSON.parse(out) as { ms: number }).ms));
        if (sink.exitCode !== null) resolve((JSON.parse(out) as { ms: number }).ms);
      });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (runtimes.includes("node") && !existsSync(join(root, "npm/scripts/bench/transport_worker.js"))) {
  spawnSync(bin("deno"), ["run", "-A", join(root, "scripts/build_npm.ts")], { stdio: "inherit" });
}

const rows: {
  runtime: string;
  rawMBs: number;
  adapterMBs: number;
  ratio: number;
  rawMs: number[];
  adapterMs: number[];
}[] = [];
for (const runtime of runtimes) {
  const rawMs: number[] = [];
  const adapterMs: number[] = [];
  for (let i = 0; i < reps; i++) {
    rawMs.push(await transfer(runtime, `raw-${runtime}`));
    adapterMs.push(await transfer(runtime, `adapter-${runtime}`));
  }
  const mbs = (ms: number) => total / 1e6 / (ms / 1000);
  const row = {
    runtime,
    rawMBs: mbs(median(rawMs)),
    adapterMBs: mbs(median(adapterMs)),
    ratio: median(rawMs) / median(adapterMs),
    rawMs,
    adapterMs,
  };
  rows.push(row);
  console.log(
    `${runtime.padEnd(5)} raw ${row.rawMBs.toFixed(0).padStart(6)} MB/s   adapter ${
      row.adapterMBs.toFixed(0).padStart(6)
    } MB/s   ratio ${row.ratio.toFixed(2)}`,
  );
}

console.log(`\n${mib} MiB loopback, 64 KiB writes, median of ${reps} interleaved runs`);
console.log("| runtime | bare API loop MB/s | our adapter MB/s | adapter / bare |");
console.log("|---|---|---|---|");
for (const r of rows) {
  console.log(
    `| ${r.runtime} | ${r.rawMBs.toFixed(0)} | ${r.adapterMBs.toFixed(0)} | ${
      r.ratio.toFixed(2)
    } |`,
  );
}
mkdirSync(join(root, ".bench"), { recursive: true });
writeFileSync(
  join(root, ".bench/transport.json"),
  JSON.stringify({ mib, reps, rows, date: new Date().toISOString() }, null, 2),
);
const misses = rows.filter((r) => r.ratio < 0.8);
if (misses.length > 0) {
  console.log(`below the 0.8 target: ${misses.map((r) => r.runtime).join(", ")}`);
}
// A warning, not a failure: the machine is shared, and a busy core costs the adapters more
// than the bare loops (docs/BENCHMARKS.md, "Transport adapters").
for (const r of rows.filter((r) => r.ratio < 0.5)) {
  console.log(
    `warning: the ${r.runtime} adapter moved ${r.ratio.toFixed(2)}x its bare loop (below 0.5x): ` +
      "a regression, or a busy machine; rerun with --reps 3 and compare",
  );
}
