/**
 * @module
 * The WebSocket transport for clients: a `Conn` over the standard `WebSocket` API, so a
 * producer or consumer runs wherever that exists — browsers, Deno, Bun, Node ≥ 22 — or, on
 * Node 20, over the `ws` package's `WebSocket` passed in. Each binary message carries a piece
 * of the same hydra/1 byte stream a TCP connection carries; message boundaries mean nothing.
 * Relays accept WebSockets with `RelayServer.listen({ websocket })` / `serve --ws`.
 *
 * Differences from a socket, by the nature of the API:
 * - Backpressure on writes follows `bufferedAmount`: `write()` waits while it is above the
 *   high-water mark. Reads cannot be paused (the API has no way to), except where the socket
 *   offers `pause()`/`resume()` (the `ws` package); the clients read promptly.
 * - No half-close: `closeWrite()` flushes, then closes the whole connection (code 1000); the
 *   peer reads end of stream. hydra/1 sends its last word (CLOSE, ERROR, END) before that.
 */

import { RelayError } from "../errors.ts";
import { MessageConn } from "./_message_conn.ts";
import {
  type Addr,
  type Conn,
  type ConnOptions,
  DEFAULT_HIGH_WATER,
  type Listener,
  type Transport,
} from "./types.ts";

/** The part of the WHATWG `WebSocket` API this adapter needs. */
export interface WebSocketLike {
  /** Set to `arraybuffer` by the adapter. */
  binaryType: string;
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Bytes passed to `send()` and not yet handed to the network. */
  readonly bufferedAmount: number;
  /** Sends one binary message. */
  send(data: Uint8Array): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Listens for `open`, `message`, `close` and `error`. */
  addEventListener(type: string, listener: (event: never) => void): void;
  /** Stops reading from the network (the `ws` package; used when present). */
  pause?(): void;
  /** Reads again after {@link pause}. */
  resume?(): void;
  /** Closes at once, without the closing handshake (the `ws` package). */
  terminate?(): void;
}

/** A `WebSocket` class: the global one, or e.g. the `ws` package's on Node 20. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Options of {@link websocketTransport}. */
export interface WebSocketTransportOptions {
  /** The `WebSocket` class (default: `globalThis.WebSocket`). */
  readonly WebSocket?: WebSocketConstructor;
  /** `wss:` instead of `ws:` (TLS, e.g. behind a proxy that terminates it). */
  readonly secure?: boolean;
  /** URL path (default `/`). */
  readonly path?: string;
}

const OPEN = 1;
const CLOSED = 3;

/**
 * A `Conn` over one open (or opening) standard WebSocket; used for client sockets and for
 * the server-side sockets of the Deno and Node relay listeners.
 */
export class WebSocketConn extends MessageConn {
  readonly #ws: WebSocketLike;

  /**
   * Wraps a socket that is open or opening.
   * @param ws The socket; its `binaryType` is set to `arraybuffer`.
   * @param localAddr This end's address.
   * @param remoteAddr The peer's address.
   * @param highWater Per-direction queue bound.
   */
  constructor(ws: WebSocketLike, localAddr: Addr, remoteAddr: Addr, highWater: number) {
    super(localAddr, remoteAddr, highWater, () => ws.pause?.(), () => ws.resume?.());
    this.#ws = ws;
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", ((e: { data: unknown }) => this.received(e.data)) as never);
    ws.addEventListener(
      "close",
      ((e: { code: number; reason: string }) => this.ended(e.code, e.reason)) as never,
    );
    ws.addEventListener(
      "error",
      ((e: { message?: string; error?: unknown }) =>
        this.fail(
          new RelayError(
            "connection-lost",
            e.message ?? (e.error instanceof Error ? e.error.message : "WebSocket error"),
          ),
        )) as never,
    );
  }

  /** Sends one binary message. */
  protected send(data: Uint8Array): boolean {
    this.#ws.send(data);
    return true;
  }

  /** The socket's `bufferedAmount`. */
  protected buffered(): number {
    return this.#ws.bufferedAmount;
  }

  /** Whether the socket is open. */
  protected isOpen(): boolean {
    return this.#ws.readyState === OPEN;
  }

  /** Whether the socket is closed. */
  protected isGone(): boolean {
    return this.#ws.readyState === CLOSED;
  }

  /** Starts the closing handshake. */
  protected closeSocket(code: number, reason: string): void {
    this.#ws.close(code, reason);
  }

  /** `terminate()` where there is one (the `ws` package), else a normal close. */
  protected abortSocket(): void {
    if (this.#ws.terminate !== undefined) this.#ws.terminate();
    else this.#ws.close(1000, "");
  }
}

/**
 * The client side of the WebSocket transport: `connect()` opens `ws://host:port/path`;
 * `listen()` is not available (relays listen with `RelayServer.listen({ websocket })`).
 *
 * @param options The `WebSocket` class, `secure`, `path`.
 * @returns The transport.
 * @example
 * ```ts ignore
 * import { websocketTransport } from "./websocket.ts";
 * import { Consumer } from "../client/consumer.ts";
 * import { Session } from "../protocol/session.ts";
 * const session = Session.fromToken("hydra1_…");
 * const consumer = await Consumer.connect("127.0.0.1:7448", session, {
 *   transport: websocketTransport(),
 * });
 * ```
 */
export function websocketTransport(options: WebSocketTransportOptions = {}): Transport {
  return {
    name: "websocket",
    listen(_addr: Addr, _options?: ConnOptions): Promise<Listener> {
      return Promise.reject(
        new RelayError(
          "unsupported",
          "the websocket transport only connects; relays accept WebSockets with RelayServer.listen({ websocket })",
        ),
      );
    },
    connect(addr: Addr, connOptions?: ConnOptions): Promise<Conn> {
      const Ws = options.WebSocket ??
        (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (Ws === undefined) {
        return Promise.reject(
          new RelayError(
            "unsupported",
            "no WebSocket here (Node 20): pass websocketTransport({ WebSocket }) from the ws package",
          ),
        );
      }
      if (addr.kind !== "tcp") {
        return Promise.reject(new TypeError("the websocket transport connects to host:port only"));
      }
      const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
      const url = `${options.secure === true ? "wss" : "ws"}://${host}:${addr.port}${
        options.path ?? "/"
      }`;
      let ws: WebSocketLike;
      try {
        ws = new Ws(url);
      } catch (e) {
        return Promise.reject(new RelayError("connect-failed", `connect to ${url}: ${String(e)}`));
      }
      const highWater = connOptions?.highWaterMark ?? DEFAULT_HIGH_WATER;
      return new Promise<Conn>((resolve, reject) => {
        let settled = false;
        ws.addEventListener(
          "open",
          (() => {
            if (settled) return;
            settled = true;
            resolve(new WebSocketConn(ws, { kind: "tcp", hostname: "", port: 0 }, addr, highWater));
          }) as never,
        );
        const fail = (why: string) => {
          if (settled) return;
          settled = true;
          reject(new RelayError("connect-failed", `connect to ${url}: ${why}`));
        };
        ws.addEventListener(
          "error",
          ((e: { message?: string }) => fail(e.message ?? "connection refused")) as never,
        );
        ws.addEventListener(
          "close",
          ((e: { code: number }) => fail(`closed with code ${e.code}`)) as never,
        );
      });
    },
  };
}
