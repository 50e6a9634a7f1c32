/**
 * The layering rule of design.md §2: protocol/, server/ and client/ see only the transport
 * and crypto interfaces and import no runtime API; only transport/ and crypto/ adapters (and
 * the CLI) may. Runs against the TypeScript sources wherever the test itself runs from.
 */

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { repoRoot } from "./_helpers.ts";

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

const FORBIDDEN =
  /\bDeno\.|\bBun\.|from\s+["']node:|import\(\s*["']node:|require\(\s*["']node:|\bprocess\.|getBuiltinModule/;

/** Lines that use a runtime API, with comments stripped. */
export function runtimeApiUses(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").split("\n").map((l) =>
    l.replace(/\/\/.*$/, "")
  );
  return code.filter((l) => FORBIDDEN.test(l)).map((l) => l.trim());
}

test("runtimeApiUses flags runtime API uses and ignores comments", () => {
  assert.deepEqual(
    runtimeApiUses('import net from "node:net";\n// Deno.listen\n/* Bun.connect */\nconst x = 1;'),
    [
      'import net from "node:net";',
    ],
  );
  assert.equal(runtimeApiUses("await Deno.connect({ port: 1 });").length, 1);
});

test("src/protocol, src/server and src/client import no runtime API", () => {
  const root = repoRoot();
  const offenders: string[] = [];
  for (const layer of ["protocol", "server", "client"]) {
    for (const file of tsFiles(join(root, "src", layer))) {
      for (const line of runtimeApiUses(readFileSync(file, "utf8"))) {
        offenders.push(`${file}: ${line}`);
      }
    }
  }
  assert.deepEqual(offenders, []);
  // The rule must actually look at something once the core exists; today src/ must exist.
  assert.ok(existsSync(join(root, "src")), "src/ not found");
});
