/**
 * The layering rule of design.md §2: protocol/, server/ and client/ see only the transport
 * and crypto interfaces and import no runtime API; only transport/ and crypto/ adapters (and
 * the CLI) may. Runs against the TypeScript sources wherever the test itself runs from.
 */

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
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

/** Relative imports of a module (static, type-only, re-exports and dynamic), comments stripped. */
export function relativeImports(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const specs: string[] = [];
  const forms = [
    /\b(?:import|export)\s+(?:type\s+)?[^'";]*?\bfrom\s+["'](\.[^"']+)["']/g,
    /\bimport\s+["'](\.[^"']+)["']/g,
    /\bimport\(\s*["'](\.[^"']+)["']\s*\)/g,
  ];
  for (const re of forms) for (const m of code.matchAll(re)) specs.push(m[1]!);
  return specs;
}

/**
 * The import circles among modules: every strongly connected set of two or more modules, and
 * every module importing itself (Tarjan's algorithm).
 * @param graph Each module's name and the names it imports.
 */
export function importCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(scc.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles;
}

test("relativeImports finds static, type, re-export and dynamic imports, not comments", () => {
  const src = [
    'import { a } from "./a.ts";',
    'import type { B } from "../b.ts";',
    'export { c } from "./c.ts";',
    'import "./side.ts";',
    'const d = await import("./d.ts");',
    '// import { e } from "./e.ts";',
    '/* import { f } from "./f.ts"; */',
    'import { g } from "node:fs";',
  ].join("\n");
  assert.deepEqual(relativeImports(src).sort(), [
    "../b.ts",
    "./a.ts",
    "./c.ts",
    "./d.ts",
    "./side.ts",
  ]);
});

test("importCycles names every circle and nothing else", () => {
  const graph = new Map([
    ["a", ["b"]],
    ["b", ["c"]],
    ["c", ["a", "d"]],
    ["d", []],
    ["e", ["e"]],
    ["f", ["d"]],
  ]);
  assert.deepEqual(importCycles(graph), [["a", "b", "c"], ["e"]]);
  assert.deepEqual(importCycles(new Map([["x", ["y"]], ["y", []]])), []);
});

test("src/ has no import circle (type-only and dynamic imports count)", () => {
  const root = repoRoot();
  const files = tsFiles(join(root, "src"));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const deps = relativeImports(readFileSync(file, "utf8")).map((s) => join(dirname(file), s));
    graph.set(file, deps);
  }
  assert.ok(files.length > 20, `expected the sources under src/, found ${files.length}`);
  const cycles = importCycles(graph).map((c) => c.map((f) => relative(root, f)));
  assert.deepEqual(cycles, []);
});
