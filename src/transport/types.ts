/**
 * @module
 * The transport contract: the only view of sockets that the protocol core, relay and clients
 * have. Adapters (`deno.ts`, `bun.ts`, `node.ts`, `memory.ts`) implement it over one runtime
 * each. See README "Transports" for the per-adapter notes.
 *
 * Buffer ownership, the same in every adapter:
 * - `read()` hands the caller a chunk it owns: the adapter never writes into it again, so it
 *   may be kept (e.g. in a ring buffer) without copying.
 * - `write(data)` lends `data` to the adapter: it may queue the same memory instead of copying
 *   it, so the caller must not mutate a buffer it has written while the adapter may still hold
 *   it. Writing one buffer to many connections is allowed (this is how the relay fans out
 *   without copies).
 * - The loan ends when `writableLength` is 0: then the adapter holds no buffer passed to
 *   `write()` — everything was handed to the operating system (which copied it), or dropped
 *   by `close()` with no system call still reading from it. The relay's ring reuses its
 *   buffers on that signal (src/server/ring.ts), so an adapter whose `writableLength` is 0
 *   while it still holds a written buffer (or whose peer keeps one, as an in-memory pipe
 *   would) breaks the relay: such an adapter must copy.
 *
 * Reading comes in two modes. `read()` pulls one chunk at a time; `startReading(sink)` switches
 * the connection to push mode for good: every chunk goes to the sink as it arrives, and the
 * reader holds no pending promise while the peer is quiet (the relay's connections are read
 * this way, so an idle one costs no suspended function). `pauseReading()` is backpressure in
 * push mode: chunks arriving meanwhile wait in the adapter (bounded by the high-water mark, past
 * which the socket stops being read), and `resumeReading()` hands them over in order.
 */

/** A TCP endpoint. */
export interface TcpAddr {
  /** Discriminant. */
  readonly kind: "tcp";
  /** Host name or IP literal. */
  readonly hostname: string;
  /** Port; `0` asks the OS for a free one when listening. */
  readonly port: number;
}

/** A Unix domain socket endpoint (or, for the memory transport, a name). */
export interface UnixAddr {
  /** Discriminant. */
  readonly kind: "unix";
  /** File system path of the socket. */
  readonly path: string;
}

/** Any endpoint a transport can listen on or connect to. */
export type Addr = TcpAddr | UnixAddr;

/** Tuning shared by every adapter. */
export interface ConnOptions {
  /**
   * Bytes that may sit in the adapter's queues (per direction) before `write()` waits and
   * before the adapter stops reading from the socket. Default {@link DEFAULT_HIGH_WATER}.
   */
  readonly highWaterMark?: number;
}

/** Default per-direction queue bound: 64 KiB. */
export const DEFAULT_HIGH_WATER: number = 64 * 1024;

/** Where a connection's input goes in push mode ({@link Conn.startReading}). */
export interface ConnSink {
  /** A chunk arrived; the sink owns it (as a `read()` caller would). */
  onData(chunk: Uint8Array): void;
  /**
   * No chunk follows: `undefined` at end of stream, else what `read()` would have thrown
   * (`connection-lost`, or `closed` after a local `close()`). Called once.
   */
  onEnd(error: unknown): void;
}

/** One bidirectional byte stream. */
export interface Conn {
  /** This end's address. */
  readonly localAddr: Addr;
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /**
   * Bytes accepted by `write()` and not yet handed to the operating system. Never exceeds the
   * high-water mark by more than the size of the last write. 0 means no written buffer is
   * still held (see the module notes); after `close()` it is 0 once no system call still
   * reads from one.
   */
  readonly writableLength: number;
  /**
   * Resolves once the connection is fully closed (both directions, resources released).
   * Never rejects.
   */
  readonly closed: Promise<void>;
  /**
   * Reads the next chunk.
   * @returns The chunk (owned by the caller), or `null` at end of stream (peer half-closed
   *   or closed cleanly).
   * @throws {RelayError} `connection-lost` when the peer vanished abruptly, `closed` after
   *   a local `close()`.
   */
  read(): Promise<Uint8Array | null>;
  /**
   * Switches to push mode: chunks already received, then every later one, go to `sink` in
   * order, then its `onEnd` once. `read()` must not be called afterwards.
   * @param sink Receives the chunks and the end.
   * @throws {TypeError} when already reading in push mode or while a `read()` is pending.
   */
  startReading(sink: ConnSink): void;
  /** Push mode: hands the sink nothing until {@link Conn.resumeReading} (backpressure). */
  pauseReading(): void;
  /** Push mode: hands the sink what arrived while paused, in order, then goes on. */
  resumeReading(): void;
  /**
   * Queues bytes for sending. Resolves at once while the queue is below the high-water mark,
   * otherwise once it has drained below it: awaiting every write is backpressure.
   * @throws {RelayError} `closed` after `close()`/`closeWrite()`, `connection-lost` when the
   *   peer is gone.
   */
  write(data: Uint8Array): Promise<void>;
  /** Flushes queued bytes, then half-closes: the peer reads EOF and may still reply. */
  closeWrite(): Promise<void>;
  /** Closes both directions now; queued bytes are discarded. Idempotent. */
  close(): void;
  /** Enables or disables Nagle's algorithm (no-op on non-TCP connections). */
  setNoDelay(noDelay: boolean): void;
}

/** A bound endpoint yielding incoming connections. */
export interface Listener extends AsyncIterable<Conn> {
  /** The bound address (with the real port when `0` was asked for). */
  readonly addr: Addr;
  /**
   * Waits for the next connection.
   * @returns The connection, or `null` once the listener is closed.
   */
  accept(): Promise<Conn | null>;
  /**
   * Stops taking new connections until {@link Listener.resume}; idempotent. Connections that
   * arrive meanwhile are turned away as cheaply as the runtime allows — closed before a
   * connection object is made (Node, Bun), or left in the kernel's backlog until resumed
   * (Deno, whose accept is a pull). Connections accepted before the pause stay queued for
   * `accept()`. The relay pauses while over its handshake rate (docs/ADAPTERS.md).
   */
  pause(): void;
  /** Takes new connections again after {@link Listener.pause}; idempotent. */
  resume(): void;
  /** Connections turned away while paused, as far as the runtime tells (Deno: none). */
  readonly turnedAway: number;
  /**
   * Stops accepting. Connections already accepted stay open; ones not yet taken by
   * `accept()` are closed.
   */
  close(): Promise<void>;
}

/** A factory of listeners and outgoing connections over one runtime's socket API. */
export interface Transport {
  /** Adapter name: "deno", "bun", "node" or "memory". */
  readonly name: string;
  /**
   * Binds an endpoint.
   * @throws {RelayError} `addr-in-use` when the address is taken.
   */
  listen(addr: Addr, options?: ConnOptions): Promise<Listener>;
  /**
   * Opens a connection.
   * @throws {RelayError} `connect-failed` when nothing listens there.
   */
  connect(addr: Addr, options?: ConnOptions): Promise<Conn>;
}
