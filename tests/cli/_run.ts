/**
 * @module
 * Runs the `hydra-relay` CLI as a subprocess on any of the three runtimes: `deno run -A
 * mod.ts`, `bun mod.ts`, or `node npm/src/cli/bin.js` (the built package).
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { runtimeName } from "../../src/runtime.ts";
import { repoRoot } from "../_helpers.ts";
import { devBin } from "../../scripts/_bin.ts";

/** A runtime able to run the CLI. */
export type Rt = "deno" | "bun" | "node";

/** The command line that runs the CLI on `rt`. */
export function cliCommand(rt: Rt): [string, string[]] {
  const root = repoRoot();
  const self = runtimeName();
  const bin = (name: string) => self === name ? process.execPath : devBin(name);
  switch (rt) {
    case "deno":
      return [bin("deno"), ["run", "-A", join(root, "mod.ts")]];
    case "bun":
      return [bin("bun"), [join(root, "mod.ts")]];
    case "node": {
      const built = join(root, "npm", "src", "cli", "bin.js");
      if (!existsSync(built)) throw new Error("npm/ is not built: run `npm run build` first");
      return [self === "node" ? process.execPath : "node", [built]];
    }
  }
}

/** The runtime these tests run in. */
export function selfRt(): Rt {
  const n = runtimeName();
  return n === "deno" || n === "bun" ? n : "node";
}

/** How to start the CLI. */
export interface CliOptions {
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  /** A command the CLI runs under, e.g. `["ip", "netns", "exec", "ns1"]`. */
  readonly wrap?: string[];
}

/** Starts the CLI. */
export function startCli(
  rt: Rt,
  args: string[],
  options: CliOptions = {},
): ChildProcess {
  const [cmd, pre] = cliCommand(rt);
  const wrap = options.wrap ?? [];
  return spawn(wrap[0] ?? cmd, [
    ...wrap.slice(1),
    ...(wrap.length > 0 ? [cmd] : []),
    ...pre,
    ...args,
  ], {
    cwd: options.cwd ?? repoRoot(),
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** What a finished CLI run produced. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: Uint8Array;
  readonly stderr: string;
}

/** Collects a child's output until it exits. */
export function finished(child: ChildProcess): Promise<CliResult> {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  child.stdout!.on("data", (c: Uint8Array) => out.push(c));
  child.stderr!.on("data", (c: Uint8Array) => err.push(c));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      const stdout = new Uint8Array(out.reduce((n, c) => n + c.length, 0));
      let off = 0;
      for (const c of out) {
        stdout.set(c, off);
        off += c.length;
      }
      resolve({ code, stdout, stderr: new TextDecoder().decode(concatAll(err)) });
    });
  });
}

function concatAll(parts: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(parts.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of parts) {
    all.set(c, off);
    off += c.length;
  }
  return all;
}

/** Runs the CLI to completion with optional stdin. */
export async function runCli(
  rt: Rt,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; stdin?: Uint8Array } = {},
): Promise<CliResult> {
  const child = startCli(rt, args, options);
  const done = finished(child);
  child.stdin!.end(options.stdin ?? new Uint8Array(0));
  return await done;
}

/** A running `serve`: its address, key, and a stop function returning the exit result. */
export interface Served {
  readonly addr: string;
  readonly key: string;
  /** The relay process (for RSS readings and kill -9). */
  readonly child: ChildProcess;
  /** Resolves when the process exits, however it does. */
  readonly done: Promise<CliResult>;
  /** Everything it printed to stdout so far. */
  output(): string;
  stop(): Promise<CliResult>;
}

/**
 * Whether a stopped `serve` exited cleanly. It prints "hydra-relay stopped" and exits 0; a
 * Deno parent, though, reports a child it signalled as killed by the signal even when the
 * child handled it and exited 0 (Node and Bun parents report 0), so there the line counts.
 */
export function cleanStop(r: CliResult): boolean {
  const said = new TextDecoder().decode(r.stdout).includes("hydra-relay stopped");
  return said && (r.code === 0 || (selfRt() === "deno" && r.code === null));
}

/**
 * Starts `hydra-relay serve` and waits for its banner: on a free port with a throwaway key
 * unless `args` name `--port`/`--unix` or `--key-file`.
 */
export async function serveCli(
  rt: Rt,
  args: string[] = [],
  options: CliOptions = {},
): Promise<Served> {
  const defaults = [
    ...(args.includes("--port") || args.includes("--unix") ? [] : ["--port", "0"]),
    ...(args.includes("--key-file") ? [] : ["--ephemeral"]),
  ];
  const child = startCli(rt, ["serve", ...defaults, ...args], options);
  const done = finished(child);
  let text = "";
  const banner = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no banner from serve on ${rt}: ${text}`)),
      30_000,
    );
    child.stdout!.on("data", (c: Uint8Array) => {
      text += new TextDecoder().decode(c);
      const m = /listening on (\S+)\nrelay key ([0-9a-f]{64})/.exec(text);
      if (m !== null) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.on("close", () => reject(new Error(`serve on ${rt} exited early: ${text}`)));
  });
  return {
    addr: banner[1]!,
    key: banner[2]!,
    child,
    done,
    output: () => text,
    stop: () => {
      child.kill("SIGTERM");
      return done;
    },
  };
}

/**
 * Waits until a running `serve` printed a line matching `re` (e.g. `/demo on (\S+)/`).
 * @returns The match.
 * @throws after 10 s, with what it printed.
 */
export async function waitForOutput(served: Served, re: RegExp): Promise<RegExpExecArray> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const m = re.exec(served.output());
    if (m !== null) return m;
    if (Date.now() > deadline) throw new Error(`serve never printed ${re}: ${served.output()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Resident set size of a process in KiB (Linux `/proc`), or `undefined` where unavailable.
 */
export function rssKiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m === null ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
}
