import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { cliArgs, usageOf } from "../../scripts/_cli.ts";

test("usageOf prints a script's first doc comment without its markers", () => {
  const dir = mkdtempSync(join(tmpdir(), "hydra-cli-"));
  try {
    const file = join(dir, "s.ts");
    writeFileSync(file, "/**\n * The thing.\n *\n *   deno task x [--n 3]\n */\n/** later */\n");
    assert.equal(usageOf(pathToFileURL(file).href), "The thing.\n\n  deno task x [--n 3]");
    writeFileSync(file, "const x = 1;\n");
    assert.equal(usageOf(pathToFileURL(file).href), "(no usage text)");
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("cliArgs hands back what the parser returned when no help is asked for", () => {
  const args = ["--n", "5"];
  const { values } = cliArgs(
    import.meta.url,
    () => parseArgs({ args, options: { n: { type: "string" } } }),
    args,
  );
  assert.equal(values.n, "5");
});
