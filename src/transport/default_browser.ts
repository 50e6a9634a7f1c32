/**
 * @module
 * The browser build's {@link defaultTransport}: the WebSocket transport, the only one a page
 * has. Bundlers put this file in place of default.ts through the `browser` field of
 * package.json, so a browser bundle carries no Deno, Bun or Node socket adapter.
 */

import type { Transport } from "./types.ts";
import { websocketTransport } from "./websocket.ts";

/**
 * The WebSocket transport (a browser has no sockets).
 *
 * @returns The transport.
 * @example
 * ```ts
 * import { defaultTransport } from "./default_browser.ts";
 * console.log(defaultTransport().name); // "websocket"
 * ```
 */
export function defaultTransport(): Transport {
  return websocketTransport();
}
