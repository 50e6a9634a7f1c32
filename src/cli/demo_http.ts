/**
 * @module
 * `serve --demo HOST:PORT`: a small static HTTP server (node:http, on all three runtimes)
 * with the demo pages, the browser bundle and `/demo.json` (where the relay takes
 * WebSockets). The bundle is the npm package's `dist/hydra-relay.browser.js`; in a checkout,
 * `npm run build` makes it.
 */

import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";
import { RelayError } from "../errors.ts";
import type { TcpAddr } from "../transport/types.ts";
import { type HttpEndpoint, listenHttp } from "./_http.ts";
import { CONSUMER_PAGE, PRODUCER_PAGE } from "./demo_pages.ts";

/** A running endpoint. */
export type DemoEndpoint = HttpEndpoint;

/** Where the browser bundle is: beside this module in the npm package, or npm/ in a checkout. */
function findBundle(): Uint8Array {
  const candidates = ["../../dist/hydra-relay.browser.js", "../../npm/dist/hydra-relay.browser.js"];
  for (const rel of candidates) {
    const url = new URL(rel, import.meta.url);
    if (url.protocol !== "file:") continue;
    const path = fileURLToPath(url);
    if (existsSync(path)) return readFileSync(path);
  }
  throw new RelayError(
    "unsupported",
    "the demo needs the browser bundle (dist/hydra-relay.browser.js of the npm package; in a checkout run npm run build)",
  );
}

/**
 * Serves the demo.
 * @param addr Where to listen.
 * @param websocket The relay's WebSocket address (a wildcard host means: the page's host).
 * @returns The running server.
 * @throws {RelayError} `addr-in-use`, or `unsupported` when the bundle is missing.
 */
export async function serveDemo(addr: TcpAddr, websocket: TcpAddr): Promise<DemoEndpoint> {
  const bundle = findBundle();
  const wildcard = websocket.hostname === "0.0.0.0" || websocket.hostname === "::";
  const host = websocket.hostname.includes(":") ? `[${websocket.hostname}]` : websocket.hostname;
  const demo = JSON.stringify(
    wildcard ? { port: websocket.port } : { websocket: `${host}:${websocket.port}` },
  );
  const files: Record<string, [string, string | Uint8Array]> = {
    "/": ["text/html; charset=utf-8", CONSUMER_PAGE],
    "/index.html": ["text/html; charset=utf-8", CONSUMER_PAGE],
    "/producer.html": ["text/html; charset=utf-8", PRODUCER_PAGE],
    "/hydra-relay.browser.js": ["text/javascript; charset=utf-8", bundle],
    "/demo.json": ["application/json", demo],
  };
  const server = createServer((req, res) => {
    const file = files[(req.url ?? "/").split("?")[0] ?? "/"];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
    } else if (file === undefined) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    } else {
      res.writeHead(200, { "content-type": file[0], "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : file[1]);
    }
  });
  return await listenHttp(server, addr, "demo");
}
