/**
 * @module
 * Transport adapter over `Bun.listen` / `Bun.connect` (TCP and Unix sockets).
 *
 * Bun's `socket.write()` writes what the kernel takes right now and returns the count; the
 * rest is ours to resend on `drain`. This adapter keeps that pending queue (references to
 * the caller's buffers, not copies: never mutate a written buffer) and bounds it with the
 * high-water mark. Half-close is `shutdown()` (`end()` would close both directions).
 * Chunks handed to the `data` handler are fresh per call, so `read()` returns them without
 * copying; the conformance suite checks that kept chunks are never overwritten.
 */

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

/** The parts of Bun's socket API this adapter uses, typed locally. */
interface BunSocket {
  data: BunConn | undefined;
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
  write(data: Uint8Array): number;
  shutdown(halfClose?: boolean): void;
  end(): void;
  terminate(): void;
  pause(): void;
  resume(): void;
  setNoDelay?(noDelay?: boolean): boolean;
}
interface BunHandlers {
  open(socket: BunSocket): void;
  data(socket: BunSocket, chunk: Uint8Array): void;
  drain(socket: BunSocket): void;
  end(socket: BunSocket): void;
  close(socket: BunSocket, error?: unknown): void;
  error(socket: BunSocket, error: unknown): void;
}
type BunAddrOptions = { hostname: string; port: number } | { unix: string };
interface BunServer {
  readonly hostname?: string;
  readonly port?: number;
  stop(closeActiveConnections?: boolean): void;
}
interface BunNs {
  listen(options: BunAddrOptions & { socket: BunHandlers; allowHalfOpen: boolean }): BunServer;
  connect(
    options: BunAddrOptions & { socket: BunHandlers; allowHalfOpen: boolean },
  ): Promise<BunSocket>;
}

function bunNs(): BunNs {
  const ns = (globalThis as { Bun?: BunNs }).Bun;
  if (ns === undefined) {
    throw new RelayError("unsupported", "the bun transport needs the Bun runtime");
  }
  return ns;
}

class BunConn implements Conn {
  /** A Unix socket's address (both ends); TCP addresses are read from the socket when asked. */
  readonly #unix: Addr | undefined;
  /** The TCP addresses as they were when the connection ended. */
  #ended: { local: Addr; remote: Addr } | undefined;
  readonly #socket: BunSocket;
  readonly #highWater: number;
  readonly #inbox: ReadQueue;
  readonly #gate = new WriteGate();
  readonly #closed = new Signal();
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #writeClosed = false;
  #shutdownWaiter: (() => void) | undefined;
  #eof = false;
  #isClosed = false;
  #writeError: RelayError | undefined;

  constructor(socket: BunSocket, unixPath: string | undefined, highWater: number) {
    this.#socket = socket;
    this.#highWater = highWater;
    if (unixPath !== undefined) this.#unix = { kind: "unix", path: unixPath };
    else socket.setNoDelay?.(true);
    this.#inbox = new ReadQueue(highWater, socket);
  }

  // Made when asked, not kept while the connection lives: an idle relay connection holds no
  // address objects. They are taken once as it ends, while the socket still knows them.
  get localAddr(): Addr {
    const s = this.#socket;
    return this.#unix ?? this.#ended?.local ?? tcpAddr(s.localAddress, s.localPort);
  }

  get remoteAddr(): Addr {
    const s = this.#socket;
    return this.#unix ?? this.#ended?.remote ?? tcpAddr(s.remoteAddress, s.remotePort);
  }

  /** Keeps the addresses before the socket lets go of them (end, error, close). */
  #keepAddrs(): void {
    if (this.#unix !== undefined || this.#ended !== undefined) return;
    this.#ended = { local: this.localAddr, remote: this.remoteAddr };
  }

  get closed(): Promise<void> {
    return this.#closed.promise;
  }

  // ---- events from Bun's handlers ----
  onData(chunk: Uint8Array): void {
    this.#inbox.push(chunk);
  }

  onEnd(): void {
    this.#keepAddrs();
    this.#eof = true;
    this.#inbox.end();
    if (this.#writeClosed && this.#pendingBytes === 0) this.#socket.end();
  }

  onDrain(): void {
    this.#flush();
  }

  onError(error: unknown): void {
    this.#keepAddrs();
    const err = socketError(error, formatAddr(this.remoteAddr));
    this.#writeError ??= err;
    this.#inbox.fail(err);
    this.#gate.fail(err);
  }

  onClose(): void {
    this.#keepAddrs();
    // Bun reports a peer's FIN after our own shutdown() as a close without an end event.
    if (this.#eof || this.#writeClosed) this.#inbox.end();
    else this.#inbox.fail(new RelayError("connection-lost", "connection closed before EOF"));
    this.#isClosed = true;
    // Not closed by us (close() sets #writeError first): the peer or the network did it.
    this.#writeError ??= new RelayError("connection-lost", "connection closed by peer");
    this.#gate.fail(this.#writeError);
    this.#shutdownWaiter?.();
    this.#closed.resolve();
  }

  // ---- Conn ----
  get writableLength(): number {
    // Bun copies what socket.write() takes; what it did not take waits in #pending, which
    // nothing reads once the socket is closed.
    return this.#isClosed ? 0 : this.#pendingBytes;
  }

  read(): Promise<Uint8Array | null> {
    return this.#inbox.read();
  }

  startReading(sink: ConnSink): void {
    this.#inbox.start(sink);
  }

  pauseReading(): void {
    this.#inbox.hold(true);
  }

  resumeReading(): void {
    this.#inbox.hold(false);
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#writeClosed) return Promise.reject(closedError());
    if (this.#writeError !== undefined) return Promise.reject(this.#writeError);
    if (data.length === 0) return Promise.resolve();
    if (this.#pendingBytes === 0) {
      const n = this.#socket.write(data);
      if (n === data.length) return Promise.resolve();
      data = n > 0 ? data.subarray(n) : data;
    }
    this.#pending.push(data);
    this.#pendingBytes += data.length;
    return this.#pendingBytes >= this.#highWater ? this.#gate.wait() : Promise.resolve();
  }

  #flush(): void {
    while (this.#pending.length > 0) {
      const chunk = this.#pending[0]!;
      const n = this.#socket.write(chunk);
      if (n < 0) return;
      this.#pendingBytes -= Math.max(n, 0);
      if (n < chunk.length) {
        this.#pending[0] = chunk.subarray(n);
        break;
      }
      this.#pending.shift();
    }
    if (this.#pendingBytes < this.#highWater) this.#gate.release();
    if (this.#pendingBytes === 0 && this.#shutdownWaiter !== undefined) {
      const done = this.#shutdownWaiter;
      this.#shutdownWaiter = undefined;
      done();
    }
  }

  async closeWrite(): Promise<void> {
    if (this.#writeError !== undefined && !this.#writeClosed) throw this.#writeError;
    if (this.#writeClosed) return;
    this.#writeClosed = true;
    if (this.#pendingBytes > 0) {
      await new Promise<void>((resolve) => (this.#shutdownWaiter = resolve));
    }
    if (this.#isClosed) {
      if (this.#pendingBytes > 0) throw this.#writeError ?? closedError();
      return;
    }
    this.#socket.shutdown();
    if (this.#eof) this.#socket.end();
  }

  close(): void {
    if (this.#isClosed) return;
    this.#keepAddrs();
    this.#isClosed = true;
    this.#writeClosed = true;
    const closed = closedError(); // one error object: on Node each costs ~30 µs of stack capture
    this.#writeError ??= closed;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#inbox.discard(closed);
    this.#gate.fail(this.#writeError);
    this.#socket.terminate();
    this.#closed.resolve();
  }

  setNoDelay(noDelay: boolean): void {
    if (this.#unix === undefined) this.#socket.setNoDelay?.(noDelay);
  }
}

function handlers(
  unixPath: string | undefined,
  highWater: number,
  onOpen?: (c: BunConn) => void,
  admit?: () => boolean,
): BunHandlers {
  return {
    open(socket) {
      // Turned away by a paused listener: closed before anything is made of it.
      if (admit?.() === false) return void socket.terminate();
      const conn = new BunConn(socket, unixPath, highWater);
      socket.data = conn;
      onOpen?.(conn);
    },
    data: (socket, chunk) => socket.data?.onData(chunk),
    drain: (socket) => socket.data?.onDrain(),
    end: (socket) => socket.data?.onEnd(),
    close: (socket) => socket.data?.onClose(),
    error: (socket, error) => socket.data?.onError(error),
  };
}

function bunAddr(addr: Addr): BunAddrOptions {
  return addr.kind === "unix" ? { unix: addr.path } : { hostname: addr.hostname, port: addr.port };
}

/**
 * Creates the Bun-native transport.
 *
 * @returns The transport.
 * @throws {RelayError} `unsupported` from `listen`/`connect` outside Bun.
 * @example
 * ```ts ignore
 * import { bunTransport } from "./bun.ts";
 * const listener = await bunTransport().listen({ kind: "tcp", hostname: "127.0.0.1", port: 0 });
 * await listener.close();
 * ```
 */
export function bunTransport(): Transport {
  return {
    name: "bun",
    listen(addr: Addr, options?: ConnOptions): Promise<Listener> {
      const hwm = options?.highWaterMark ?? DEFAULT_HIGH_WATER;
      const unixPath = addr.kind === "unix" ? addr.path : undefined;
      const queue = new AcceptQueue<BunConn>();
      // Made once the address is known; no connection can arrive before.
      let listener: QueueListener<BunConn> | undefined;
      try {
        const server = bunNs().listen({
          ...bunAddr(addr),
          allowHalfOpen: true,
          socket: handlers(unixPath, hwm, (c) => queue.push(c), () => listener?.admit() !== false),
        });
        const bound: Addr = addr.kind === "unix" ? addr : {
          kind: "tcp",
          hostname: server.hostname ?? addr.hostname,
          port: server.port ?? addr.port,
        };
        listener = new QueueListener(bound, queue, () => server.stop(false));
        return Promise.resolve(listener);
      } catch (e) {
        if (e instanceof RelayError) return Promise.reject(e);
        return Promise.reject(socketError(e, `listen on ${formatAddr(addr)}`));
      }
    },
    async connect(addr: Addr, options?: ConnOptions): Promise<Conn> {
      const hwm = options?.highWaterMark ?? DEFAULT_HIGH_WATER;
      let socket: BunSocket;
      try {
        socket = await bunNs().connect({
          ...bunAddr(addr),
          allowHalfOpen: true,
          socket: handlers(addr.kind === "unix" ? addr.path : undefined, hwm),
        });
      } catch (e) {
        if (e instanceof RelayError) throw e;
        throw socketError(e, `connect to ${formatAddr(addr)}`);
      }
      const conn = socket.data;
      if (conn === undefined) {
        throw new RelayError("connect-failed", `connect to ${formatAddr(addr)}: no socket`);
      }
      return conn;
    },
  };
}
