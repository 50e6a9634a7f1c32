/**
 * The one test command (`npm test`, `deno task test`): static checks (fmt, lint, type check,
 * doc lint, runnable doc examples),
 * builds the npm package, then runs the
 * whole suite on Deno (`deno test`), Bun (`bun test`) and Node (`node --test` against the
 * built npm output), one runtime after the other, and finally checks the packages as users
 * install them (scripts/check_package.ts). Prints each runtime's counts, a summary table and a
 * closing `N passed, N failed` line; exits non-zero if any runtime failed or ran no test.
 *
 * Usage: deno run -A scripts/test.ts [deno|bun|node|package ...]   (default: all)
 */

import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { devBin as bin } from "./_bin.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

interface Result {
  runtime: string;
  passed: number;
  failed: number;
  exitCode: number;
  seconds: number;
  /** Names of failed tests, repeated in the summary so a truncated log still shows them. */
  failures: string[];
}

function findTests(dir: string, suffix: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? findTests(p, suffix) : name.endsWith(suffix) ? [p] : [];
  });
}

/**
 * How long one runtime's whole suite may run (it takes 3–4 minutes): a test that hangs (Deno's
 * runner has no per-test timeout) ends the stage as a failure that names the deadline, instead
 * of holding CI until its own limit, when nothing lands. `HYDRA_TEST_DEADLINE_MIN` overrides it.
 */
const STAGE_DEADLINE_MS = Number(process.env["HYDRA_TEST_DEADLINE_MIN"] ?? 25) * 60_000;

/** Runs a command with a raised fd limit (the suite opens 1,000+ sockets at once), teeing its output. */
function run(
  cmd: string[],
  deadlineMs = STAGE_DEADLINE_MS,
): Promise<{ code: number; output: string }> {
  const quoted = cmd.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const script =
    `ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec ${quoted}`;
  return new Promise((resolve) => {
    const child = spawn("bash", ["-c", script], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
    });
    let output = "";
    const tee = (target: NodeJS.WriteStream) => (b: Uint8Array) => {
      const s = new TextDecoder().decode(b);
      output += s;
      target.write(s);
    };
    child.stdout.on("data", tee(process.stdout));
    child.stderr.on("data", tee(process.stderr));
    const deadline = setTimeout(() => {
      const line = `\nDEADLINE: ${cmd.slice(0, 3).join(" ")} … still running after ${
        deadlineMs / 60_000
      } minutes: killed (a test hangs; the last test names above show which)\n`;
      output += line;
      process.stdout.write(line);
      child.kill("SIGKILL");
    }, deadlineMs);
    child.on("close", (code) => {
      clearTimeout(deadline);
      resolve({ code: code ?? 1, output });
    });
  });
}

const num = (re: RegExp, s: string): number => Number(re.exec(s)?.[1] ?? 0);

/** Per-runtime commands and the parsers of their closing lines. */
const RUNNERS: Record<
  string,
  { cmd: () => string[]; parse: (out: string) => [number, number]; failures: RegExp }
> = {
  deno: {
    cmd: () => [bin("deno"), "test", "-A", "--no-prompt", "tests/"],
    parse: (o) => [num(/\|\s*(\d+) passed/, o), num(/\|\s*(\d+) failed/, o)],
    failures: /^(.+ => \S+:\d+:\d+)$/gm,
  },
  bun: {
    cmd: () => [bin("bun"), "test", "--timeout", "120000", "./tests/"],
    parse: (o) => [num(/^\s*(\d+) pass$/m, o), num(/^\s*(\d+) fail$/m, o)],
    failures: /^(\(fail\) .+)$/gm,
  },
  node: {
    cmd: () => [
      "node",
      "--test",
      "--test-reporter=spec",
      // One test at most 5 minutes (the longest take ~30 s): a hang fails by name.
      "--test-timeout=300000",
      ...findTests(join(root, "npm", "tests"), "_test.js").map((f) => relative(root, f)),
    ],
    parse: (o) => [num(/^ℹ pass (\d+)$/m, o), num(/^ℹ fail (\d+)$/m, o)],
    failures: /^\s*(✖ .+)$/gm,
  },
};

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const wanted = args.filter((a) => a in RUNNERS);
  const runtimes = wanted.length > 0 || args.includes("package") ? wanted : Object.keys(RUNNERS);
  const checkPackage = args.length === 0 || args.includes("package");

  console.log("\n=== static checks: fmt, lint, type check, doc lint, doc examples (deno) ===");
  const entries = ["mod.ts", "src/deno.ts", "src/bun.ts", "src/node.ts", "src/browser.ts"];
  const checks = [
    ["fmt", "--check"],
    ["lint"],
    ["check", "mod.ts", "src/", "scripts/", "examples/"],
    ["doc", "--lint", ...entries],
    ["test", "--doc", "-A", "--no-prompt", "mod.ts", "src/"],
  ];
  for (const cmd of checks) {
    const r = await run([bin("deno"), ...cmd]);
    if (r.code !== 0) {
      console.log(`deno ${cmd.join(" ")} failed`);
      console.log("0 passed, 1 failed");
      return 1;
    }
  }

  if (runtimes.includes("node") || checkPackage) {
    console.log("\n=== build npm package (node runs the built output) ===");
    const build = await run([bin("deno"), "run", "-A", "scripts/build_npm.ts"]);
    if (build.code !== 0) {
      console.log("npm build failed");
      return 1;
    }
  }

  const results: Result[] = [];
  for (const runtime of runtimes) {
    console.log(`\n=== ${runtime} ===`);
    const started = performance.now();
    const { code, output } = await run(RUNNERS[runtime]!.cmd());
    const [passed, failed] = RUNNERS[runtime]!.parse(output);
    results.push({
      runtime,
      passed,
      failed,
      exitCode: code,
      seconds: (performance.now() - started) / 1000,
      failures: [...new Set([...output.matchAll(RUNNERS[runtime]!.failures)].map((m) => m[1]!))],
    });
  }

  if (checkPackage) {
    // The packages as users install them: npm pack → fresh Node and Bun projects, JSR dry run.
    console.log(
      "\n=== package (npm pack into fresh Node and Bun projects; deno publish --dry-run) ===",
    );
    const started = performance.now();
    const { code, output } = await run([bin("deno"), "run", "-A", "scripts/check_package.ts"]);
    results.push({
      runtime: "package",
      passed: code === 0 ? 1 : 0,
      failed: code === 0 ? 0 : 1,
      exitCode: code,
      seconds: (performance.now() - started) / 1000,
      failures: code === 0 ? [] : [output.trim().split("\n").at(-1) ?? "check_package failed"],
    });
  }

  console.log("\n=== summary ===");
  console.log("runtime  passed  failed  exit  seconds");
  for (const r of results) {
    console.log(
      `${r.runtime.padEnd(8)} ${String(r.passed).padStart(6)}  ${String(r.failed).padStart(6)}  ${
        String(r.exitCode).padStart(4)
      }  ${r.seconds.toFixed(1).padStart(7)}`,
    );
  }
  const passed = results.reduce((a, r) => a + r.passed, 0);
  const failed = results.reduce((a, r) => a + r.failed, 0);
  const bad = results.filter((r) => r.exitCode !== 0 || r.failed > 0 || r.passed === 0);
  for (const r of bad) {
    console.log(
      `${r.runtime}: FAILED (exit ${r.exitCode}, ${r.passed} passed, ${r.failed} failed)`,
    );
    for (const name of r.failures.slice(0, 20)) console.log(`  ${r.runtime}: ${name}`);
  }
  // A runtime that crashed before printing counts still counts as one failure.
  console.log(`${passed} passed, ${failed + bad.filter((r) => r.failed === 0).length} failed`);
  return bad.length === 0 ? 0 : 1;
}

process.exitCode = await main();
