/**
 * The long live-relay fuzz run (issue 5, part 4; results in docs/SECURITY.md):
 *
 *   deno task fuzz [--frames 1000000] [--seed N] [--relay deno,bun,node] [--concurrency 8]
 *
 * For each relay runtime: a relay process, ≥ `--frames` random and mutated handshakes and
 * frames over real TCP, a legitimate session alongside. Prints one JSON report per runtime
 * and exits 1 if any relay crashed, logged an uncaught error, or the session lost anything.
 * `--relay node` needs the npm build (`npm run build`).
 */

import { parseArgs } from "node:util";
import { cliArgs } from "./_cli.ts";
import process from "node:process";
import { fuzzLiveRelay } from "../tests/e2e/_live_fuzz.ts";
import type { Rt } from "../tests/cli/_run.ts";

const { values } = cliArgs(import.meta.url, () =>
  parseArgs({
    options: {
      frames: { type: "string", default: "1000000" },
      seed: { type: "string", default: String(Date.now() % 1_000_000_007) },
      relay: { type: "string", default: "deno,bun,node" },
      concurrency: { type: "string", default: "8" },
    },
  }));
const frames = Number(values.frames);
const seed = Number(values.seed) >>> 0;
let failed = false;
for (const relay of values.relay!.split(",") as Rt[]) {
  console.error(`fuzzing the ${relay} relay: ${frames} frames, seed ${seed}`);
  const r = await fuzzLiveRelay({
    relay,
    frames,
    seed,
    concurrency: Number(values.concurrency),
    progress: (line) => console.error(`  ${line}`),
  });
  console.log(JSON.stringify(r));
  const ok = r.cleanExit && r.uncaught.length === 0 && r.legitReceived === r.legitSent;
  if (!ok) failed = true;
  console.error(
    `  ${ok ? "ok" : "FAILED"}: ${r.frames} frames, ${r.connections} connections, ` +
      `${r.seconds.toFixed(0)} s, RSS ${r.rss.start} → ${r.rss.peak} → ${r.rss.end} KiB, ` +
      `legit ${r.legitReceived}/${r.legitSent}`,
  );
}
process.exit(failed ? 1 : 0);
