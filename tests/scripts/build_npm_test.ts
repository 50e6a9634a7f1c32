import assert from "node:assert/strict";
import { test } from "node:test";
import { exportDiffs, npmExport } from "../../scripts/build_npm.ts";

test("npmExport maps a deno.json .ts target to its built .js and .d.ts", () => {
  assert.deepEqual(npmExport("./src/deno.ts"), {
    types: "./src/deno.d.ts",
    default: "./src/deno.js",
  });
  assert.throws(() => npmExport("src/deno.ts"), /relative \.ts path/);
  assert.throws(() => npmExport("./src/deno.js"), /relative \.ts path/);
});

test("exportDiffs is empty for matching maps and names every divergence", () => {
  const deno = { ".": "./mod.ts", "./node": "./src/node.ts" };
  const npm = { ".": npmExport("./mod.ts"), "./node": npmExport("./src/node.ts") };
  assert.deepEqual(exportDiffs(deno, npm), []);
  assert.deepEqual(exportDiffs({ ...deno, "./bun": "./src/bun.ts" }, npm), [
    "./bun: only in deno.json exports",
  ]);
  assert.deepEqual(exportDiffs(deno, { ...npm, "./x": npmExport("./x.ts") }), [
    "./x: only in npm exports",
  ]);
  assert.deepEqual(exportDiffs(deno, { ...npm, "./node": npmExport("./src/other.ts") }), [
    "./node: deno.json ./src/node.ts vs npm ./src/other.js",
  ]);
});
