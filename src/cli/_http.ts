/**
 * @module
 * The small HTTP servers of the CLI (`--metrics`, `--demo`) share this: bounded timeouts, a
 * clear error for a taken address, the bound port, and a close that does not wait for idle
 * keep-alive connections.
 */

import type { Server } from "node:http";
import { RelayError } from "../errors.ts";
import type { TcpAddr } from "../transport/types.ts";

/** A running HTTP endpoint. */
export interface HttpEndpoint {
  /** The bound address (the real port when 0 was asked for). */
  readonly addr: TcpAddr;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/**
 * Starts `server` on `addr`.
 * @param server A `node:http` server with its handler.
 * @param addr Where to listen.
 * @param what For messages, e.g. `metrics`.
 * @returns The endpoint.
 * @throws {RelayError} `addr-in-use` when the address is taken.
 */
export async function listenHttp(
  server: Server,
  addr: TcpAddr,
  what: string,
): Promise<HttpEndpoint> {
  // Requests here are small and quick; bound what a slow or idle client can hold.
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: Error & { code?: string }) =>
      reject(
        new RelayError(
          e.code === "EADDRINUSE" ? "addr-in-use" : "connect-failed",
          `${what}: cannot listen on ${addr.hostname}:${addr.port} (${e.code ?? e.message})`,
        ),
      ));
    server.listen(addr.port, addr.hostname, () => resolve());
  });
  const bound = server.address();
  const port = typeof bound === "object" && bound !== null ? bound.port : addr.port;
  return {
    addr: { kind: "tcp", hostname: addr.hostname, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      }),
  };
}
