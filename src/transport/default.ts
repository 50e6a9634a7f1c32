/**
 * @module
 * Picks the native transport adapter for the running runtime.
 */

import { runtimeName } from "../runtime.ts";
import { bunTransport } from "./bun.ts";
import { denoTransport } from "./deno.ts";
import { nodeTransport } from "./node.ts";
import type { Transport } from "./types.ts";

/**
 * The native socket transport of the running runtime: `deno` under Deno, `bun` under Bun,
 * `node` (node:net) elsewhere.
 *
 * @returns The transport.
 * @example
 * ```ts
 * import { defaultTransport } from "./default.ts";
 * console.log(defaultTransport().name);
 * ```
 */
export function defaultTransport(): Transport {
  switch (runtimeName()) {
    case "deno":
      return denoTransport();
    case "bun":
      return bunTransport();
    default:
      return nodeTransport();
  }
}
