/**
 * @module
 * Shared test helpers: which adapters the running runtime offers, temporary socket paths,
 * an echo server, timing helpers. Not a test file itself.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { concat } from "../src/bytes.ts";
import { bunTransport } from "../src/transport/bun.ts";
import { denoTransport } from "../src/transport/deno.ts";
import { memoryTransport } from "../src/transport/memory.ts";
import { nodeTransport } from "../src/transport/node.ts";
import type { Addr, Conn, Listener, Transport } from "../src/transport/types.ts";
import { runtimeName } from "../src/runtime.ts";
import { repoDir } from "../scripts/_bin.ts";

/** Every transport adapter usable in the running runtime. */
export function availableTransports(): Transport[] {
  const list = [memoryTransport(), nodeTransport()];
  if (runtimeName() === "deno") list.push(denoTransport());
  if (runtimeName() === "bun") list.push(bunTransport());
  return list;
}

let dir: string | undefined;
let counter = 0;

/** A fresh Unix socket path in a per-process temporary directory. */
export function tempSocketPath(): string {
  dir ??= mkdtempSync(join(tmpdir(), "hydra-test-"));
  return join(dir, `s${counter++}.sock`);
}

/** Removes the temporary directory (call from an `after` hook or at the end). */
export function cleanupTemp(): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
}

/** The two address kinds, each with a fresh endpoint. */
export function addrKinds(): { name: string; make: () => Addr }[] {
  return [
    { name: "tcp", make: () => ({ kind: "tcp", hostname: "127.0.0.1", port: 0 }) },
    { name: "unix", make: () => ({ kind: "unix", path: tempSocketPath() }) },
  ];
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Races `p` against a deadline.
 * @returns The value of `p`, or the string "timeout".
 */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Echoes every accepted connection until the listener closes; returns when done. */
export async function serveEcho(listener: Listener): Promise<void> {
  const tasks: Promise<void>[] = [];
  for await (const conn of listener) tasks.push(echo(conn));
  await Promise.allSettled(tasks);
}

/** Echoes one connection: what is read is written back; EOF is answered with EOF. */
export async function echo(conn: Conn): Promise<void> {
  try {
    while (true) {
      const chunk = await conn.read();
      if (chunk === null) break;
      await conn.write(chunk);
    }
    await conn.closeWrite();
  } catch {
    conn.close();
  }
}

/** Reads until EOF and returns everything read, concatenated. */
export async function readAll(conn: Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let c = await conn.read(); c !== null; c = await conn.read()) parts.push(c);
  return concat(parts);
}

/** Connects and accepts in parallel; returns both ends. */
export async function pair(
  t: Transport,
  listener: Listener,
): Promise<[client: Conn, server: Conn]> {
  const [client, server] = await Promise.all([t.connect(listener.addr), listener.accept()]);
  if (server === null) throw new Error("listener closed");
  return [client, server];
}

/** The repository root (the directory holding deno.json), from the sources or from npm/. */
export function repoRoot(): string {
  return repoDir;
}

/** Polls `cond` every 5 ms until it holds; fails the test after `ms`. */
export async function waitFor(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await sleep(5);
  }
}
