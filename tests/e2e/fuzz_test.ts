/**
 * A short pass of the live-relay fuzzer (issue 5, part 4) against a relay process of this
 * runtime: random and mutated handshakes and frames from concurrent connections while a
 * legitimate session runs. The long run is `deno task fuzz` (scripts/fuzz.ts; figures in
 * docs/SECURITY.md). `HYDRA_FUZZ_FRAMES` and `HYDRA_FUZZ_SEED` scale and vary this pass.
 */

import assert from "node:assert/strict";
import process from "node:process";
import { test } from "node:test";
import { selfRt } from "../cli/_run.ts";
import { fuzzSeed } from "../_fuzz.ts";
import { fuzzLiveRelay } from "./_live_fuzz.ts";

test("a live relay survives random and mutated frames; the legitimate session loses nothing", async () => {
  const frames = Number(process.env["HYDRA_FUZZ_FRAMES"] ?? 10_000);
  const r = await fuzzLiveRelay({ relay: selfRt(), frames, seed: fuzzSeed() });
  console.log(
    `# fuzz: ${r.frames} frames over ${r.connections} connections in ${r.seconds.toFixed(1)} s, ` +
      `seed ${r.seed}, relay RSS ${r.rss.start} → peak ${r.rss.peak} KiB, ` +
      `legit ${r.legitReceived}/${r.legitSent}`,
  );
  assert.ok(r.frames >= frames);
  assert.ok(r.cleanExit, "the relay crashed or did not exit cleanly");
  assert.deepEqual(r.uncaught, []);
  assert.ok(r.legitSent > 0);
  assert.equal(r.legitReceived, r.legitSent);
  if (r.rss.start !== undefined && r.rss.peak !== undefined) {
    // Bounded: rings are capped by the memory budget; the rest is connection churn.
    assert.ok(r.rss.peak - r.rss.start < 256 * 1024, `RSS grew ${r.rss.peak - r.rss.start} KiB`);
  }
});
