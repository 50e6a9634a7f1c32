/**
 * T4 end to end (64 B at 1,000 msg/s to 10 consumers, publisher and consumers in one process)
 * across source trees, alternating them round by round so that each round sees the same machine:
 * the same-run A/B behind docs/BENCHMARKS.md "Where the T4 gap goes". Each tree is a checkout
 * (e.g. `git worktree add /tmp/h1 15fb1bd`, its node_modules linked to this one's, and for Node
 * its npm build) whose own `relay_server hydra` and `relay_e2e lat` run; the trees may speak
 * different protocol versions.
 *
 *   deno run -A scripts/bench/ab_latency.ts [--runtime bun] [--rounds 4] [--seconds 5] TREE...
 *
 * A TREE may carry environment for its processes, `TREE:NAME=VALUE[,NAME=VALUE]`, so one
 * checkout can run in several variants (BENCHMARKS "What the 10 % bound leaves for a signature"
 * runs a tree that busy-waits `SPIN_US` per message at several values).
 *
 * Prints each run and, per tree, the medians of p50, p99 and the T4 process's CPU per message (µs).
 */

import { execFileSync, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { devBin as bin } from "../_bin.ts";

const { values, positionals: trees } = parseArgs({
  args: process.argv.slice(2),
  options: {
    runtime: { type: "string", default: "bun" },
    rounds: { type: "string", default: "4" },
    seconds: { type: "string", default: "5" },
  },
  allowPositionals: true,
});
const runtime = values.runtime;
if (trees.length === 0 || !["deno", "bun", "node"].includes(runtime)) {
  throw new Error(
    "usage: ab_latency.ts [--runtime deno|bun|node] [--rounds N] [--seconds S] TREE...",
  );
}

function command(tree: string, script: string): string[] {
  if (runtime === "deno") return [bin("deno"), "run", "-A", `${tree}/scripts/bench/${script}.ts`];
  if (runtime === "bun") return [bin("bun"), `${tree}/scripts/bench/${script}.ts`];
  return ["node", `${tree}/npm/scripts/bench/${script}.js`];
}

/** `TREE:NAME=VALUE,…` → the checkout and the environment its processes get. */
function variant(spec: string): { tree: string; env: Record<string, string> } {
  const at = spec.indexOf(":");
  if (at < 0) return { tree: spec, env: {} };
  const env: Record<string, string> = {};
  for (const pair of spec.slice(at + 1).split(",")) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new Error(`${spec}: expected TREE:NAME=VALUE[,NAME=VALUE]`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return { tree: spec.slice(0, at), env };
}

/** Starts a process; resolves its first JSON line. */
function run(cmd: string[], env: Record<string, string>) {
  const p = spawn(cmd[0]!, cmd.slice(1), {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, ...env },
  });
  const exited = new Promise((r) => p.once("exit", r));
  const lines = createInterface({ input: p.stdout! });
  const json = new Promise<string>((resolve, reject) => {
    lines.on("line", (l) => l.startsWith("{") && resolve(l));
    p.once("exit", (code) => reject(new Error(`${cmd.join(" ")} exited with ${code}`)));
  });
  return { p, json, exited };
}

const median = (a: number[]) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const rows = new Map<string, { p50: number; p99: number; cpuUs: number }[]>();
for (let round = 0; round < Number(values.rounds); round++) {
  for (const spec of trees) {
    const { tree, env } = variant(spec);
    // A token of the tree's own format (it may be another protocol version).
    const token = execFileSync(bin("bun"), [
      "-e",
      `import { Session } from "${tree}/src/protocol/session.ts"; console.log(Session.generate().token())`,
    ]).toString().trim();
    const server = run(command(tree, "relay_server").concat("hydra"), env);
    const { port } = JSON.parse(await server.json) as { port: number };
    const lat = run(
      command(tree, "relay_e2e").concat(
        "lat",
        "hydra",
        String(port),
        token,
        "10",
        "1000",
        values.seconds,
      ),
      env,
    );
    const r = JSON.parse(await lat.json) as { p50: number; p99: number; cpuUs?: number };
    lat.p.stdin!.end();
    server.p.stdin!.end();
    await Promise.all([lat.exited, server.exited]);
    const row = { p50: r.p50, p99: r.p99, cpuUs: r.cpuUs ?? NaN };
    rows.set(spec, [...rows.get(spec) ?? [], row]);
    console.log(
      `${spec}  p50 ${row.p50.toFixed(0)}  p99 ${row.p99.toFixed(0)}  cpu ${row.cpuUs.toFixed(0)}`,
    );
  }
}
for (const [tree, rs] of rows) {
  const m = (k: "p50" | "p99" | "cpuUs") => median(rs.map((r) => r[k])).toFixed(0);
  console.log(`median ${tree}  p50 ${m("p50")}  p99 ${m("p99")}  cpu ${m("cpuUs")}`);
}
