/**
 * @module
 * The relay side of the WebSocket transport: a `Listener` whose connections are WebSockets
 * carrying the hydra/1 byte stream in binary messages. One implementation per runtime:
 * `Deno.serve` + `Deno.upgradeWebSocket` on Deno, `Bun.serve` with `websocket` handlers on
 * Bun, and the `ws` package on Node (Node has no WebSocket server of its own; see README
 * "Dependencies"). Plain HTTP requests get `426 Upgrade Required`.
 */

import { RelayError } from "../errors.ts";
import { runtimeName } from "../runtime.ts";
import { MessageConn } from "./_message_conn.ts";
import { AcceptQueue, QueueListener } from "./_listener.ts";
import { WebSocketConn, type WebSocketLike } from "./websocket.ts";
import { type Addr, type Conn, DEFAULT_HIGH_WATER, type Listener, type TcpAddr } from "./types.ts";

/** Options of {@link listenWebSocket}. */
export interface WebSocketListenOptions {
  /** Per-direction queue bound of each connection. */
  readonly highWaterMark?: number;
  /**
   * Largest WebSocket message accepted (bytes); bigger ones close the connection. Default
   * 1 MiB (hydra/1 frames may span messages, so this bounds memory, not frame size). Bun and
   * `ws` enforce it; Deno's WebSocket has its own limit (64 MiB) and offers no setting.
   */
  readonly maxMessageBytes?: number;
}

const WS_PACKAGE = "ws";
const UPGRADE_REQUIRED = "this is a hydra/2 relay: connect with a WebSocket client\n";
/** WebSocket close code 1013, "try again later": a paused listener's answer on Node. */
const TRY_AGAIN_LATER = 1013;

/** A paused listener's answer to an upgrade request (Deno, Bun): before any WebSocket. */
function busy(): Response {
  return new Response("relay busy: try again later\n", {
    status: 503,
    headers: { "retry-after": "1" },
  });
}

/**
 * Listens for WebSocket clients on `addr` with the running runtime's HTTP server.
 * @param addr Where to listen (port 0: any free port; the listener's `addr` has the real one).
 * @param options Queue bound and message size limit.
 * @returns The listener.
 * @throws {RelayError} `addr-in-use` when the address is taken.
 */
export function listenWebSocket(
  addr: TcpAddr,
  options: WebSocketListenOptions = {},
): Promise<Listener> {
  const o = {
    highWater: options.highWaterMark ?? DEFAULT_HIGH_WATER,
    maxMessage: options.maxMessageBytes ?? 1 << 20,
  };
  switch (runtimeName()) {
    case "deno":
      return listenDeno(addr, o);
    case "bun":
      return listenBun(addr, o);
    default:
      return listenNode(addr, o);
  }
}

interface Opts {
  readonly highWater: number;
  readonly maxMessage: number;
}

function inUse(addr: TcpAddr, cause: unknown): RelayError {
  const code = (cause as { code?: string; name?: string })?.code ??
    (cause as { name?: string })?.name;
  if (code === "EADDRINUSE" || code === "AddrInUse") {
    return new RelayError(
      "addr-in-use",
      `websocket: cannot listen on ${addr.hostname}:${addr.port} (address in use)`,
      { cause },
    );
  }
  return new RelayError(
    "connect-failed",
    `websocket: cannot listen on ${addr.hostname}:${addr.port}: ${String(cause)}`,
    { cause },
  );
}

// ---- Deno -------------------------------------------------------------------------------

interface DenoServeNs {
  serve(
    options: {
      hostname: string;
      port: number;
      signal: AbortSignal;
      onListen: (a: { hostname: string; port: number }) => void;
      onError?: (e: unknown) => Response;
    },
    handler: (
      req: Request,
      info: { remoteAddr: { hostname: string; port: number } },
    ) => Response,
  ): { finished: Promise<void> };
  upgradeWebSocket(req: Request): { socket: WebSocketLike; response: Response };
}

async function listenDeno(addr: TcpAddr, o: Opts): Promise<Listener> {
  const deno = (globalThis as unknown as { Deno: DenoServeNs }).Deno;
  const queue = new AcceptQueue<Conn>();
  const abort = new AbortController();
  let listener: QueueListener<Conn> | undefined;
  let bound!: TcpAddr;
  let server: { finished: Promise<void> };
  await new Promise<void>((resolve, reject) => {
    try {
      server = deno.serve({
        hostname: addr.hostname,
        port: addr.port,
        signal: abort.signal,
        onListen: (a) => {
          bound = { kind: "tcp", hostname: a.hostname, port: a.port };
          resolve();
        },
      }, (req, info) => {
        if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
          return new Response(UPGRADE_REQUIRED, { status: 426, headers: { upgrade: "websocket" } });
        }
        if (listener?.admit() === false) return busy();
        // The peer's address must be read before the upgrade takes the request over.
        const remote: Addr = {
          kind: "tcp",
          hostname: info.remoteAddr.hostname,
          port: info.remoteAddr.port,
        };
        const { socket, response } = deno.upgradeWebSocket(req);
        const conn = new WebSocketConn(socket, bound, remote, o.highWater);
        socket.addEventListener("open", (() => queue.push(conn)) as never);
        return response;
      });
    } catch (e) {
      reject(inUse(addr, e));
    }
  });
  return listener = new QueueListener(bound, queue, () => {
    abort.abort();
    void server.finished.catch(() => {});
  });
}

// ---- Bun --------------------------------------------------------------------------------

interface BunServerWebSocket {
  readonly remoteAddress: string;
  readonly data: { conn?: BunWsConn };
  send(data: Uint8Array): number;
  getBufferedAmount(): number;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

interface BunServeNs {
  serve(options: {
    hostname: string;
    port: number;
    fetch(req: Request, server: { upgrade(req: Request, o: { data: object }): boolean }):
      | Response
      | undefined;
    websocket: {
      maxPayloadLength: number;
      backpressureLimit: number;
      closeOnBackpressureLimit: boolean;
      open(ws: BunServerWebSocket): void;
      message(ws: BunServerWebSocket, message: string | Uint8Array): void;
      drain(ws: BunServerWebSocket): void;
      close(ws: BunServerWebSocket, code: number, reason: string): void;
    };
  }): { readonly port: number; readonly hostname: string; stop(force?: boolean): void };
}

/** A `Conn` over one of Bun's server-side WebSockets (a different API from the client's). */
class BunWsConn extends MessageConn {
  readonly #ws: BunServerWebSocket;
  #gone = false;

  constructor(ws: BunServerWebSocket, localAddr: Addr, highWater: number) {
    // Bun cannot pause one socket's reads: queued bytes are bounded by the clients' reading.
    super(localAddr, { kind: "tcp", hostname: ws.remoteAddress, port: 0 }, highWater);
    this.#ws = ws;
  }

  onMessage(message: string | Uint8Array): void {
    this.received(message);
  }

  onDrain(): void {
    this.drained();
  }

  onClose(code: number, reason: string): void {
    this.#gone = true;
    this.ended(code, reason);
  }

  // -1: queued (backpressure), 0: dropped (the socket is closing), > 0: sent.
  protected send(data: Uint8Array): boolean {
    return this.#ws.send(data) !== 0;
  }

  protected buffered(): number {
    return this.#gone ? 0 : this.#ws.getBufferedAmount();
  }

  protected isOpen(): boolean {
    return !this.#gone;
  }

  protected isGone(): boolean {
    return this.#gone;
  }

  protected closeSocket(code: number, reason: string): void {
    this.#ws.close(code, reason);
  }

  protected abortSocket(): void {
    this.#gone = true;
    try {
      this.#ws.terminate();
    } catch {
      // Closed already.
    }
  }
}

function listenBun(addr: TcpAddr, o: Opts): Promise<Listener> {
  const bun = (globalThis as unknown as { Bun: BunServeNs }).Bun;
  const queue = new AcceptQueue<Conn>();
  // deno-lint-ignore prefer-const -- its handlers read it; assigned once bound
  let listener: QueueListener<Conn> | undefined;
  let bound: TcpAddr = addr;
  let server;
  try {
    server = bun.serve({
      hostname: addr.hostname,
      port: addr.port,
      fetch(req, srv) {
        const upgrade = req.headers.get("upgrade")?.toLowerCase() === "websocket";
        if (upgrade && listener?.admit() === false) return busy();
        if (upgrade && srv.upgrade(req, { data: {} })) return undefined;
        return new Response(UPGRADE_REQUIRED, { status: 426, headers: { upgrade: "websocket" } });
      },
      websocket: {
        maxPayloadLength: o.maxMessage,
        // Never drop or close on backpressure: the relay's policies decide about slow readers.
        backpressureLimit: 1024 * 1024 * 1024,
        closeOnBackpressureLimit: false,
        open(ws) {
          const conn = new BunWsConn(ws, bound, o.highWater);
          ws.data.conn = conn;
          queue.push(conn);
        },
        message: (ws, m) => ws.data.conn?.onMessage(m),
        drain: (ws) => ws.data.conn?.onDrain(),
        close: (ws, code, reason) => ws.data.conn?.onClose(code, reason),
      },
    });
  } catch (e) {
    return Promise.reject(inUse(addr, e));
  }
  bound = { kind: "tcp", hostname: addr.hostname, port: server.port };
  const s = server;
  listener = new QueueListener(bound, queue, () => s.stop(true));
  return Promise.resolve(listener);
}

// ---- Node (the ws package) --------------------------------------------------------------

interface WsServer {
  address(): { port: number; address: string } | string | null;
  on(event: "connection", f: (ws: WebSocketLike, req: NodeRequest) => void): void;
  on(event: "listening", f: () => void): void;
  on(event: "error", f: (e: Error) => void): void;
  close(): void;
  clients: Set<WebSocketLike>;
}
interface NodeRequest {
  readonly socket: { remoteAddress?: string; remotePort?: number; setNoDelay?(b: boolean): void };
}

async function listenNode(addr: TcpAddr, o: Opts): Promise<Listener> {
  let WebSocketServer: new (options: object) => WsServer;
  try {
    // Loaded by name at run time, on Node only: Deno, Bun and browsers never need it.
    ({ WebSocketServer } = await import(WS_PACKAGE) as {
      WebSocketServer: new (options: object) => WsServer;
    });
  } catch (e) {
    throw new RelayError("unsupported", `the ws package is needed for WebSockets on Node: ${e}`);
  }
  const queue = new AcceptQueue<Conn>();
  const server = new WebSocketServer({
    host: addr.hostname,
    port: addr.port,
    maxPayload: o.maxMessage,
    perMessageDeflate: false,
    clientTracking: true,
  });
  await new Promise<void>((resolve, reject) => {
    server.on("listening", () => resolve());
    server.on("error", (e) => reject(inUse(addr, e)));
  });
  const a = server.address();
  const bound: TcpAddr = {
    kind: "tcp",
    hostname: addr.hostname,
    port: typeof a === "object" && a !== null ? a.port : addr.port,
  };
  // deno-lint-ignore prefer-const -- its handlers read it; assigned once bound
  let listener: QueueListener<Conn> | undefined;
  server.on("connection", (ws, req) => {
    if (listener?.admit() === false) {
      ws.close(TRY_AGAIN_LATER, "relay busy: try again later");
      return;
    }
    req.socket.setNoDelay?.(true);
    const remote: Addr = {
      kind: "tcp",
      hostname: req.socket.remoteAddress ?? "",
      port: req.socket.remotePort ?? 0,
    };
    queue.push(new WebSocketConn(ws, bound, remote, o.highWater));
  });
  listener = new QueueListener(bound, queue, () => server.close());
  return listener;
}
