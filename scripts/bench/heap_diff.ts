/**
 * What one idle joined connection holds in a Node relay's heap (issue 23, T5): a relay in this
 * process, a V8 heap snapshot after a full GC, then N idle consumers joined from a Bun process
 * (`relay_load idle`), a second snapshot, and the difference grouped by node type and name,
 * per connection. Compiled code ("code") is made once per process and shows per connection only
 * at this N. docs/BENCHMARKS.md, "A crowd on one relay", has the figures it gave.
 *
 *   npm run build && node --expose-gc npm/scripts/bench/heap_diff.js [N=1000] [ROWS=30]
 *
 * Node only (it needs `node:v8` heap snapshots and `--expose-gc`); snapshots go to a temporary
 * directory and are removed.
 */

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeHeapSnapshot } from "node:v8";
import { RelayServer } from "../../src/server/relay.ts";
import { Session } from "../../src/protocol/session.ts";
import { devBin as bin, repoDir } from "../_bin.ts";

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

/** Count and self size per "type:name", strings and code folded into one key each. */
function groups(file: string): Map<string, { n: number; size: number }> {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const [ti, ni, si] = [f.indexOf("type"), f.indexOf("name"), f.indexOf("self_size")];
  const out = new Map<string, { n: number; size: number }>();
  for (let i = 0; i < s.nodes.length; i += f.length) {
    const type = types[s.nodes[i + ti]!]!;
    const name = /string/.test(type)
      ? "(string)"
      : type === "code"
      ? "(code)"
      : s.strings[s.nodes[i + ni]!]!.slice(0, 40);
    const key = `${type}:${name}`;
    const e = out.get(key) ?? { n: 0, size: 0 };
    e.n++;
    e.size += s.nodes[i + si]!;
    out.set(key, e);
  }
  return out;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with node --expose-gc");
const n = Number(process.argv[2] ?? 1000);
const rows = Number(process.argv[3] ?? 30);
const dir = mkdtempSync(join(tmpdir(), "hydra-heap-"));
const relay = await RelayServer.listen({ port: 0, logLevel: "off", maxHandshakesPerSecond: 0 });
const port = (relay.addr as { port: number }).port;
const snap = (name: string) => {
  gc();
  gc();
  return writeHeapSnapshot(join(dir, name));
};
try {
  await new Promise((r) => setTimeout(r, 500));
  const before = snap("before.heapsnapshot");
  const load = spawn(bin("bun"), [
    join(repoDir, "scripts/bench/relay_load.ts"),
    "idle",
    String(port),
    String(n),
    Session.generate().token(),
  ], { stdio: ["pipe", "pipe", "inherit"] });
  await new Promise<void>((resolve, reject) => {
    load.stdout!.on("data", (b: Uint8Array) => String(b).includes("ready") && resolve());
    load.once("exit", () => reject(new Error("relay_load idle exited before it was ready")));
  });
  await new Promise((r) => setTimeout(r, 1000));
  const after = snap("after.heapsnapshot");
  const a = groups(before);
  const diff = [...groups(after)].map(([key, e]) => {
    const o = a.get(key) ?? { n: 0, size: 0 };
    return { key, count: (e.n - o.n) / n, bytes: (e.size - o.size) / n };
  }).filter((d) => d.bytes > 0).sort((x, y) => y.bytes - x.bytes);
  const total = diff.reduce((t, d) => t + d.bytes, 0);
  const code = diff.filter((d) => d.key.startsWith("code:")).reduce((t, d) => t + d.bytes, 0);
  console.log(
    `${n} idle joined consumers: ${total.toFixed(0)} B of heap per connection ` +
      `(${(total - code).toFixed(0)} without compiled code)`,
  );
  console.log("   bytes   count  type:name (per connection)");
  for (const d of diff.slice(0, rows)) {
    console.log(`${d.bytes.toFixed(1).padStart(8)} ${d.count.toFixed(2).padStart(7)}  ${d.key}`);
  }
  load.kill();
} finally {
  await relay.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
