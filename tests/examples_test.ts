/**
 * Every program in examples/ runs on the runtime under test (Node runs the built copy in
 * npm/examples/) and prints what it promises.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { describe, test } from "node:test";
import { repoRoot } from "./_helpers.ts";
import { cleanStop, selfRt, serveCli } from "./cli/_run.ts";

const rt = selfRt();

function runExample(name: string, env: Record<string, string> = {}): string {
  const root = repoRoot();
  const args = rt === "deno"
    ? ["run", "-A", join(root, "examples", `${name}.ts`)]
    : rt === "bun"
    ? [join(root, "examples", `${name}.ts`)]
    : [join(root, "npm", "examples", `${name}.js`)];
  assert.ok(existsSync(args.at(-1)!), `${args.at(-1)} not found (node: npm run build first)`);
  const r = spawnSync(process.execPath, args, {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, NO_COLOR: "1", ...env },
  });
  assert.equal(r.status, 0, `${name} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

describe(`examples on ${rt}`, () => {
  test("telemetry: three consumers each get all 300 readings, in order", () => {
    const out = runExample("telemetry");
    assert.match(out, /^dashboard: boiler [\d.]+ °C, intake [\d.]+ °C, exhaust [\d.]+ °C$/m);
    assert.match(out, /^alerter: 2 readings above 90 °C$/m);
    assert.match(out, /^archive: 300 of 300 readings, in order: true$/m);
  });

  test("telemetry against a relay started with `hydra-relay serve` (HYDRA_RELAY)", async () => {
    const relay = await serveCli(rt, ["--log-level", "warn"]);
    try {
      const out = runExample("telemetry", { HYDRA_RELAY: relay.addr });
      assert.match(out, /^archive: 300 of 300 readings, in order: true$/m);
    } finally {
      assert.ok(cleanStop(await relay.stop()));
    }
  });

  test("typed_messages: trades and quotes decode to their types", () => {
    const out = runExample("typed_messages");
    assert.match(out, /^quote ACME: 99\.5 \/ 100\.5$/m);
    assert.match(out, /^quote ÉTOILE: 12\.25 \/ 12\.5$/m);
    assert.match(out, /^ACME: 600 shares traded, VWAP 99\.8333; 2 quotes$/m);
  });

  test("rotation: the renewed subscriber reads on, the other is cut off and cannot rejoin", () => {
    const out = runExample("rotation");
    assert.match(out, /^staying: rotated to generation 1$/m);
    assert.match(out, /^staying: 200 prices, then the feed ended$/m);
    assert.match(out, /^leaving: 100 prices, then revoked$/m);
    assert.match(out, /^the old token joins again: revoked$/m);
  });

  test("resume: a cut connection and a relay restart lose nothing", () => {
    const out = runExample("resume");
    assert.match(out, /^consumer: back after \d+ attempt\(s\)$/m);
    assert.match(out, /^producer: back after \d+ attempt\(s\)$/m);
    assert.match(
      out,
      /^received 3000 of 3000 messages, 0 out of order or duplicated, 0 gaps$/m,
    );
  });
});
