/**
 * README.md is the front door: every command in its shell blocks must exist as written on a
 * machine that has only Node and npm (Deno and Bun live in node_modules/.bin, so a bare `deno`
 * is "command not found"), and the quick start must run: `npm start` brings up a relay and the
 * second block's keygen → sub → pub prints the three lines.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { delimiter, join } from "node:path";
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { test } from "node:test";
import { runtimeName } from "../src/runtime.ts";
import { repoRoot } from "./_helpers.ts";

/** The command lines of a Markdown text's `sh` blocks, comments dropped, split at `;`/`&`/`|`. */
export function shellCommands(markdown: string): string[][] {
  const blocks = [...markdown.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
  const commands: string[][] = [];
  for (const line of blocks.join("\n").split("\n")) {
    const code = line.replace(/(^|\s)#.*$/, "").trim();
    if (code === "") continue;
    // $(…) holds a command of its own.
    const parts = code.replace(/\$\(([^)]*)\)/g, "; $1 ;").split(/;|&&|\|\||\||&/);
    for (const part of parts) {
      const words = part.trim().split(/\s+/).filter((w) => w !== "");
      // Leading assignments (`export X=…`, `X=… cmd`) are not commands.
      while (words.length > 0 && (words[0] === "export" || /^[A-Z_]+=/.test(words[0]!))) {
        words.shift();
      }
      if (words.length > 0) commands.push(words);
    }
  }
  return commands;
}

/** Why a command would not run from a fresh clone after `npm ci`, or `undefined` if it would. */
export function checkCommand(words: string[], root: string): string | undefined {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const deno = JSON.parse(readFileSync(join(root, "deno.json"), "utf8"));
  const [cmd, ...args] = words;
  const shell = ["printf", "sleep", "wait", "echo", "cd", "cat", "seq"];
  if (cmd === "npm") {
    const [sub, name] = args;
    if (sub === "ci" || sub === "install") return undefined;
    if (sub === "start" || sub === "test") {
      return pkg.scripts?.[sub] === undefined ? `no npm script "${sub}"` : undefined;
    }
    if (sub === "run") {
      return pkg.scripts?.[name!] === undefined ? `no npm script "${name}"` : undefined;
    }
    return `npm ${sub} is not a command the README should need`;
  }
  if (cmd === "npx") {
    const [tool, ...rest] = args;
    if (tool !== "deno" && tool !== "bun") return `npx ${tool}: not a dev dependency`;
    if (!existsSync(join(root, "node_modules", ".bin", tool))) {
      return `npx ${tool}: node_modules/.bin/${tool} is missing (npm ci brings it)`;
    }
    if (tool === "deno" && rest[0] === "task") {
      return deno.tasks?.[rest[1]!] === undefined ? `no deno task "${rest[1]}"` : undefined;
    }
    const file = rest.find((w) => w.endsWith(".ts"));
    if (file !== undefined && !existsSync(join(root, file))) return `${file} does not exist`;
    return undefined;
  }
  if (shell.includes(cmd!)) return undefined;
  return `"${cmd}" is not on PATH after npm ci (use npx, an npm script or a deno task)`;
}

const root = repoRoot();
const readme = readFileSync(join(root, "README.md"), "utf8");

test("shellCommands splits lines, pipes, substitutions and assignments", () => {
  const md = "```sh\nexport T=$(npx deno run -A mod.ts keygen)  # a comment\n" +
    "npx deno run -A mod.ts sub & sleep 2; printf 'a' | npx deno run -A mod.ts pub; wait\n```\n";
  assert.deepEqual(shellCommands(md).map((w) => w.join(" ")), [
    "npx deno run -A mod.ts keygen",
    "npx deno run -A mod.ts sub",
    "sleep 2",
    "printf 'a'",
    "npx deno run -A mod.ts pub",
    "wait",
  ]);
});

test("checkCommand refuses what a fresh clone with only Node and npm lacks", () => {
  assert.match(checkCommand(["deno", "run", "-A", "mod.ts"], root)!, /not on PATH/);
  assert.match(checkCommand(["hydra-relay", "serve"], root)!, /not on PATH/);
  assert.match(checkCommand(["npm", "run", "no-such-script"], root)!, /no npm script/);
  assert.match(checkCommand(["npx", "deno", "task", "no-such-task"], root)!, /no deno task/);
  assert.match(checkCommand(["npx", "deno", "run", "-A", "missing.ts"], root)!, /does not exist/);
  assert.equal(checkCommand(["npx", "deno", "run", "-A", "mod.ts", "keygen"], root), undefined);
});

test("README.md: every command in its shell blocks exists as written after npm ci", () => {
  const commands = shellCommands(readme);
  assert.ok(commands.length >= 5, `expected the quick start's commands, found ${commands.length}`);
  const problems = commands.flatMap((w) => {
    const why = checkCommand(w, root);
    return why === undefined ? [] : [`${w.join(" ")}: ${why}`];
  });
  assert.deepEqual(problems, []);
  assert.ok(readme.split("\n").length <= 150, "README.md is a front door: under ~150 lines");
});

/** Runs `bash -c script` in the repository with `env`, resolving to its exit code and output. */
function bash(
  script: string,
  env: Record<string, string>,
): {
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  output(): string;
  kill(): void;
} {
  const child = spawn("bash", ["-c", script], {
    cwd: root,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: npm → sh → deno all stop together
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (b: Uint8Array) => (stdout += new TextDecoder().decode(b)));
  child.stderr!.on("data", (b: Uint8Array) => (stderr += new TextDecoder().decode(b)));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) =>
    child.on("close", (code) => r({ code, stdout, stderr }))
  );
  return {
    done,
    output: () => stdout + stderr,
    kill: () => {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // Already gone.
      }
    },
  };
}

/** PATH without any directory that holds a `deno` or `bun`, as on a machine with only Node. */
function nodeOnlyPath(): string {
  return (process.env.PATH ?? "").split(delimiter).filter((d) =>
    d !== "" && !existsSync(join(d, "deno")) && !existsSync(join(d, "bun"))
  ).join(delimiter);
}

// The commands are the same whatever runtime runs this file: run them once, from Deno's pass.
if (runtimeName() === "deno") {
  test("README.md's quick start runs as written: npm start, then keygen → sub → pub", async () => {
    const blocks = [...readme.matchAll(/^```sh\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
    const second = blocks[1]!;
    assert.match(blocks[0]!, /^npm start\b/m);
    assert.match(second, /keygen/);
    const env = { PATH: nodeOnlyPath() };
    // `npm start` as written, with an OS-picked port and no key file left behind.
    const relay = bash("exec npm start -- --port 0 --ephemeral", env);
    try {
      let addr: string | undefined;
      let exited = false;
      relay.done.then(() => (exited = true));
      const deadline = Date.now() + 60_000;
      while (addr === undefined && !exited && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        addr = /listening on (\S+)/.exec(relay.output())?.[1];
      }
      assert.ok(!exited, `npm start exited early:\n${relay.output()}`);
      assert.ok(addr !== undefined, "npm start printed no address within 60 s");
      const client = bash(second, { ...env, HYDRA_RELAY: addr });
      const timer = setTimeout(() => client.kill(), 60_000);
      const r = await client.done;
      clearTimeout(timer);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "a\nb\nc\n");
    } finally {
      relay.kill();
      await relay.done;
    }
  });
}
