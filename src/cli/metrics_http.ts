/**
 * @module
 * The HTTP endpoint of `serve --metrics host:port`, on `node:http` (Deno, Bun and Node all
 * provide it): `GET /metrics` (Prometheus text), `GET /healthz` (the process answers) and
 * `GET /readyz` (200 while the relay accepts clients, 503 while it drains or after).
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import process from "node:process";
import { formatMetrics, METRICS_CONTENT_TYPE } from "../server/metrics.ts";
import type { RelayServer } from "../server/relay.ts";
import type { TcpAddr } from "../transport/types.ts";
import { type HttpEndpoint, listenHttp } from "./_http.ts";

/** A running endpoint. */
export type MetricsEndpoint = HttpEndpoint;

const startTimeSeconds = Math.round(Date.now() / 1000 - process.uptime());

/**
 * Serves a relay's metrics and health over HTTP.
 * @param relay The relay to report on.
 * @param addr Where to listen.
 * @returns The running endpoint.
 * @throws {RelayError} `addr-in-use` when the address is taken.
 */
export async function serveMetrics(relay: RelayServer, addr: TcpAddr): Promise<MetricsEndpoint> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      return reply(res, req, 405, "text/plain", "method not allowed\n", { allow: "GET, HEAD" });
    }
    switch (path) {
      case "/metrics": {
        const mem = process.memoryUsage();
        const text = formatMetrics(relay.stats(), {
          residentBytes: mem.rss,
          heapBytes: mem.heapUsed,
          startTimeSeconds,
        });
        return reply(res, req, 200, METRICS_CONTENT_TYPE, text);
      }
      case "/healthz":
        return reply(res, req, 200, "text/plain", "ok\n");
      case "/readyz":
        return relay.stats().draining
          ? reply(res, req, 503, "text/plain", "draining\n")
          : reply(res, req, 200, "text/plain", "ready\n");
      default:
        return reply(res, req, 404, "text/plain", "not found: try /metrics, /healthz or /readyz\n");
    }
  });
  return await listenHttp(server, addr, "metrics");
}

function reply(
  res: ServerResponse,
  req: IncomingMessage,
  status: number,
  type: string,
  body: string,
  headers: Record<string, string> = {},
): void {
  const bytes = new TextEncoder().encode(body);
  res.writeHead(status, {
    "content-type": type,
    "content-length": String(bytes.length),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(req.method === "HEAD" ? undefined : bytes);
}
