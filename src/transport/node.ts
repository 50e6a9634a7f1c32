/**
 * @module
 * Transport adapter over `node:net` (TCP and Unix sockets). Native on Node; also runs under
 * Deno and Bun through their Node compatibility layers.
 *
 * Buffer ownership: chunks from `read()` are Node's own per-read buffers, never reused by
 * Node, handed out as plain `Uint8Array` views without copying. `write()` passes the caller's
 * buffer to `socket.write()`, which keeps a reference until it is flushed: never mutate a
 * written buffer. Write backpressure follows the socket's `writableHighWaterMark`.
 *
 * `node:net` is reached through `process.getBuiltinModule` when first used, not a static
 * import, so client code that merely imports this module (through the default transport)
 * also bundles and loads in browsers.
 */

import type * as Net from "node:net";
import { Signal } from "../_signal.ts";
import { RelayError } from "../errors.ts";
import { closedError, formatAddr, ReadQueue, socketError, tcpAddr, WriteGate } from "./_queues.ts";
import { AcceptQueue, QueueListener } from "./_listener.ts";
import {
  type Addr,
  type Conn,
  type ConnOptions,
  type ConnSink,
  DEFAULT_HIGH_WATER,
  type Listener,
  type Transport,
} from "./types.ts";

let netModule: typeof Net | undefined;

function net(): typeof Net {
  if (netModule !== undefined) return netModule;
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } })
    .process;
  const m = proc?.getBuiltinModule?.("node:net") as typeof Net | undefined;
  if (m === undefined) {
    throw new RelayError("unsupported", "the node transport needs node:net (Node, Deno or Bun)");
  }
  return (netModule = m);
}

/** Where a socket's listeners find their connection (they are shared by every socket). */
const CONN: unique symbol = Symbol("hydra.node.conn");
type TaggedSocket = Net.Socket & { [CONN]?: NodeConn };

class NodeConn implements Conn {
  /** A Unix socket's address (both ends); TCP addresses are read from the socket when asked. */
  readonly #unix: Addr | undefined;
  /** The TCP addresses as they were when the connection ended (the socket forgets them). */
  #ended: { local: Addr; remote: Addr } | undefined;
  readonly #socket: Net.Socket;
  readonly #queue: ReadQueue;
  readonly #gate = new WriteGate();
  readonly #closed = new Signal();
  #writeError: RelayError | undefined;

  constructor(socket: Net.Socket, unix: Addr | undefined, highWater: number) {
    this.#socket = socket;
    this.#unix = unix;
    this.#queue = new ReadQueue(highWater, socket);
    // One set of listener functions for every socket (they find this object on the socket):
    // an idle connection holds no closure of its own.
    (socket as TaggedSocket)[CONN] = this;
    socket.on("data", NodeConn.#onData);
    socket.on("end", NodeConn.#onEnd);
    socket.on("drain", NodeConn.#onDrain);
    socket.on("error", NodeConn.#onError);
    socket.on("close", NodeConn.#onClose);
  }

  static #onData(this: TaggedSocket, b: Uint8Array): void {
    this[CONN]!.#queue.push(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
  }

  static #onEnd(this: TaggedSocket): void {
    const conn = this[CONN]!;
    conn.#keepAddrs();
    conn.#queue.end();
  }

  static #onDrain(this: TaggedSocket): void {
    this[CONN]!.#gate.release();
  }

  static #onError(this: TaggedSocket, e: unknown): void {
    const conn = this[CONN]!;
    conn.#keepAddrs();
    const err = socketError(e, formatAddr(conn.remoteAddr));
    conn.#writeError ??= err;
    conn.#queue.fail(err);
    conn.#gate.fail(err);
  }

  static #onClose(this: TaggedSocket): void {
    const conn = this[CONN]!;
    // Not closed by us (close() sets #writeError first): the peer or the network did it.
    conn.#writeError ??= new RelayError("connection-lost", "connection closed by peer");
    if (!conn.#queue.done) {
      conn.#queue.fail(new RelayError("connection-lost", "connection closed before EOF"));
    }
    conn.#gate.fail(conn.#writeError);
    conn.#closed.resolve();
  }

  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  // Made when asked, not kept while the connection lives: an idle relay connection holds no
  // address objects. They are taken once as it ends, while the socket still knows them.
  get localAddr(): Addr {
    return this.#unix ?? this.#ended?.local ??
      tcpAddr(this.#socket.localAddress, this.#socket.localPort);
  }

  get remoteAddr(): Addr {
    return this.#unix ?? this.#ended?.remote ??
      tcpAddr(this.#socket.remoteAddress, this.#socket.remotePort);
  }

  /** Keeps the addresses before the socket lets go of them (end, error, close). */
  #keepAddrs(): void {
    if (this.#unix !== undefined || this.#ended !== undefined) return;
    this.#ended = { local: this.localAddr, remote: this.remoteAddr };
  }

  get writableLength(): number {
    // A destroyed socket's fd is closed at once (uv_close): libuv sends nothing more from the
    // write requests it still lists, so no written buffer is read again.
    return this.#socket.destroyed ? 0 : this.#socket.writableLength;
  }

  read(): Promise<Uint8Array | null> {
    return this.#queue.read();
  }

  startReading(sink: ConnSink): void {
    this.#queue.start(sink);
  }

  pauseReading(): void {
    this.#queue.hold(true);
  }

  resumeReading(): void {
    this.#queue.hold(false);
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#socket.writableEnded) return Promise.reject(closedError());
    if (this.#writeError !== undefined) return Promise.reject(this.#writeError);
    if (data.length === 0) return Promise.resolve();
    // Node only emits "drain" after a write returned false, so that is the signal to wait on.
    return this.#socket.write(data) ? Promise.resolve() : this.#gate.wait();
  }

  closeWrite(): Promise<void> {
    if (this.#writeError !== undefined) return Promise.reject(this.#writeError);
    if (this.#socket.writableEnded) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#socket.end(() => (this.#writeError ? reject(this.#writeError) : resolve()));
    });
  }

  close(): void {
    this.#keepAddrs();
    const closed = closedError(); // one error object: each costs ~30 µs of stack capture
    this.#writeError ??= closed;
    this.#queue.discard(closed);
    this.#gate.fail(closed);
    this.#socket.destroy();
  }

  setNoDelay(noDelay: boolean): void {
    if (this.#unix === undefined) this.#socket.setNoDelay(noDelay);
  }
}

function wrap(socket: Net.Socket, unixPath: string | undefined, highWater: number): NodeConn {
  if (unixPath !== undefined) {
    return new NodeConn(socket, { kind: "unix", path: unixPath }, highWater);
  }
  socket.setNoDelay(true);
  return new NodeConn(socket, undefined, highWater);
}

/**
 * Creates the `node:net` transport.
 *
 * @returns The transport.
 * @example
 * ```ts
 * import { nodeTransport } from "./node.ts";
 * const t = nodeTransport();
 * const listener = await t.listen({ kind: "tcp", hostname: "127.0.0.1", port: 0 });
 * await listener.close();
 * ```
 */
export function nodeTransport(): Transport {
  return {
    name: "node",
    async listen(addr: Addr, options?: ConnOptions): Promise<Listener> {
      const hwm = options?.highWaterMark ?? DEFAULT_HIGH_WATER;
      const unixPath = addr.kind === "unix" ? addr.path : undefined;
      const queue = new AcceptQueue<NodeConn>();
      // Made once the address is known; no connection can arrive before.
      // deno-lint-ignore prefer-const -- its handlers read it; assigned once bound
      let listener: QueueListener<NodeConn> | undefined;
      const server = net().createServer({ allowHalfOpen: true }, (socket) => {
        if (listener?.admit() !== false) queue.push(wrap(socket, unixPath, hwm));
        else socket.destroy();
      });
      server.on("drop", () => listener?.countTurnedAway());
      await new Promise<void>((resolve, reject) => {
        server.once("error", (e) => reject(socketError(e, `listen on ${formatAddr(addr)}`)));
        if (addr.kind === "unix") server.listen({ path: addr.path }, resolve);
        else server.listen({ host: addr.hostname, port: addr.port }, resolve);
      });
      server.on("error", () => {/* accept errors (EMFILE) must not crash the process */});
      const bound = server.address();
      const boundAddr: Addr = typeof bound === "object" && bound !== null
        ? tcpAddr(bound.address, bound.port)
        : addr;
      // server.close()'s callback waits for every accepted connection to end; accepted
      // connections are the caller's, so the listener only stops the listening socket.
      // Paused, the listener raises no connection: `maxConnections` below zero makes node:net
      // close each one as it is accepted, before a Socket exists (counted by its `drop`).
      // Deno's node:net drops them without a `drop`: there admit() above closes and counts.
      const unpaused = server.maxConnections; // undefined on Node 20, Infinity later
      const onPause = (globalThis as { Deno?: unknown }).Deno === undefined
        ? (paused: boolean) => {
          try {
            server.maxConnections = paused ? -1 : unpaused;
          } catch {
            // A node:net that validates the value: admit() above turns arrivals away instead.
          }
        }
        : undefined;
      listener = new QueueListener(boundAddr, queue, () => server.close(), onPause);
      return listener;
    },
    connect(addr: Addr, options?: ConnOptions): Promise<Conn> {
      const hwm = options?.highWaterMark ?? DEFAULT_HIGH_WATER;
      return new Promise((resolve, reject) => {
        const socket = addr.kind === "unix"
          ? net().connect({ path: addr.path, allowHalfOpen: true })
          : net().connect({ host: addr.hostname, port: addr.port, allowHalfOpen: true });
        const onError = (e: unknown) => {
          socket.destroy();
          reject(socketError(e, `connect to ${formatAddr(addr)}`));
        };
        socket.once("error", onError);
        socket.once("connect", () => {
          socket.off("error", onError);
          resolve(wrap(socket, addr.kind === "unix" ? addr.path : undefined, hwm));
        });
      });
    },
  };
}
