/**
 * @module
 * Picks the native transport adapter for the running runtime.
 */

import { runtimeName } from "../runtime.ts";
import { bunTransport } from "./bun.ts";
import { denoTransport } from "./deno.ts";
import { nodeTransport } from "./node.ts";
import type { Transport } from "./types.ts";
import { websocketTransport } from "./websocket.ts";

/**
 * The native socket transport of the running runtime: `deno` under Deno, `bun` under Bun,
 * `node` (node:net) under Node, and in a browser (no sockets there) the WebSocket transport.
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
    case "browser":
      return websocketTransport();
    default:
      return nodeTransport();
  }
}
