/**
 * @module
 * Which JavaScript runtime is running. Only looks at globals, touches no runtime API; the
 * adapters use it to pick their native implementation.
 */

/** The runtimes `@hydra/relay` knows about. */
export type RuntimeName = "deno" | "bun" | "node" | "browser" | "unknown";

/**
 * Detects the running runtime. Bun is checked before Node (Bun also defines `process`).
 *
 * @returns The runtime's name.
 * @example
 * ```ts
 * import { runtimeName } from "./runtime.ts";
 * console.log(runtimeName()); // "deno" under `deno run`
 * ```
 */
export function runtimeName(): RuntimeName {
  const g = globalThis as {
    Deno?: unknown;
    Bun?: unknown;
    process?: { versions?: { node?: string } };
    document?: unknown;
  };
  if (g.Deno !== undefined) return "deno";
  if (g.Bun !== undefined) return "bun";
  if (g.process?.versions?.node !== undefined) return "node";
  if (g.document !== undefined) return "browser";
  return "unknown";
}
