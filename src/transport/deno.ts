/**
 * @module
 * Transport adapter over `Deno.listen` / `Deno.connect` (TCP and Unix sockets), using
 * `conn.read` / `conn.write` / `conn.closeWrite` directly: Deno's web streams cannot
 * half-close and add a copy.
 *
 * Buffer ownership: each `read()` fills a buffer the adapter then gives up. The buffer size
 * adapts (1 KiB idle … 64 KiB under load) so an idle connection pins little memory; a read
 * that fills under a quarter of its buffer is copied out and the buffer reused, so a kept
 * chunk never pins a mostly empty buffer. `write()` queues the caller's buffer without
 * copying (never mutate it afterwards); runs of small queued chunks are coalesced into one
 * `conn.write` to save syscalls.
 */

import { RelayError } from "../errors.ts";
import { closedError, formatAddr, PullReader, socketError, WriteGate } from "./_queues.ts";
import { iterateAccept } from "./_listener.ts";
import {
  type Addr,
  type Conn,
  type ConnOptions,
  type ConnSink,
  DEFAULT_HIGH_WATER,
  type Listener,
  type Transport,
} from "./types.ts";

/** The parts of the Deno namespace this adapter uses, typed locally. */
type DenoAddr =
  | { transport: "tcp" | "udp"; hostname: string; port: number }
  | { transport: "unix" | "unixpacket"; path: string };
interface DenoConn {
  readonly localAddr: DenoAddr;
  readonly remoteAddr: DenoAddr;
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}
interface DenoListener {
  readonly addr: DenoAddr;
  accept(): Promise<DenoConn>;
  close(): void;
}
type DenoOptions =
  | { transport: "tcp"; hostname: string; port: number }
  | { transport: "unix"; path: string };
interface DenoNs {
  listen(options: DenoOptions): DenoListener;
  connect(options: DenoOptions): Promise<DenoConn>;
  removeSync(path: string): void;
}

function denoNs(): DenoNs {
  const ns = (globalThis as { Deno?: DenoNs }).Deno;
  if (ns === undefined) {
    throw new RelayError("unsupported", "the deno transport needs the Deno runtime");
  }
  return ns;
}

// An idle connection always has a read pending, and the pending read pins its buffer. 256 B
// hold the usual control message (a ping, a pong); a larger one (a join) takes a second read,
// and the size doubles after every full read under load. 1 KiB → 256 B: relay live JS per
// idle connection −0.6 KB, bulk end to end unchanged (docs/BENCHMARKS.md).
const MIN_READ = 256;
// Measured: fresh 256 KiB buffers per read cost 40 % of throughput (0.60x a bare loop,
// glibc serves them by mmap and each read page-faults); 64 KiB stays on the heap (0.97x).
const MAX_READ = 64 * 1024;
/** Queued chunks smaller than this are merged into one write. */
const COALESCE_BELOW = 16 * 1024;
const COALESCE_MAX = 64 * 1024;

function toAddr(a: DenoAddr): Addr {
  if ("path" in a) return { kind: "unix", path: a.path };
  return { kind: "tcp", hostname: a.hostname, port: a.port };
}

function toOptions(addr: Addr): DenoOptions {
  return addr.kind === "unix"
    ? { transport: "unix", path: addr.path }
    : { transport: "tcp", hostname: addr.hostname, port: addr.port };
}

class DenoConnAdapter implements Conn {
  readonly closed: Promise<void>;
  /** A Unix socket's local address (the path); TCP addresses are made from Deno's when asked. */
  readonly #unix: Addr | undefined;
  readonly #conn: DenoConn;
  readonly #highWater: number;
  readonly #gate = new WriteGate();
  #resolveClosed!: () => void;
  #readSize = MIN_READ;
  #spare: Uint8Array | undefined;
  #eof = false;
  #isClosed = false;
  #writeClosed = false;
  #writeError: RelayError | undefined;
  #queue: Uint8Array[] = [];
  #queued = 0;
  /** Bytes of the chunk a `conn.write` op is reading now (its memory is pinned by the op). */
  #inflight = 0;
  #pumping: Promise<void> | undefined;
  /** Push mode: reads for the sink (Deno's API has no push of its own). */
  #reader: PullReader | undefined;

  /**
   * @param unix The Unix socket's local address, or `undefined` for TCP.
   */
  constructor(conn: DenoConn, highWater: number, unix: Addr | undefined) {
    this.#conn = conn;
    this.#highWater = highWater;
    this.#unix = unix;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    if (unix === undefined) this.setNoDelay(true);
  }

  // Made when asked (Deno's own address objects live as long as the connection): an idle
  // relay connection holds no copies.
  get localAddr(): Addr {
    return this.#unix ?? toAddr(this.#conn.localAddr);
  }

  get remoteAddr(): Addr {
    return toAddr(this.#conn.remoteAddr);
  }

  get writableLength(): number {
    // After close() the queue is gone, but an op already in flight still reads its chunk
    // until it settles (Deno keeps the resource alive for it).
    return this.#isClosed ? this.#inflight : this.#queued;
  }

  async read(): Promise<Uint8Array | null> {
    if (this.#isClosed) throw closedError();
    if (this.#eof) return null;
    const buf = this.#spare ?? new Uint8Array(this.#readSize);
    this.#spare = undefined;
    let n: number | null;
    try {
      n = await this.#conn.read(buf);
    } catch (e) {
      if (this.#isClosed) throw closedError();
      const err = socketError(e, formatAddr(this.remoteAddr));
      this.#fail(err);
      throw err;
    }
    if (n === null) {
      this.#eof = true;
      if (this.#writeClosed) this.close();
      return null;
    }
    if (n === buf.length) {
      this.#readSize = Math.min(this.#readSize * 2, MAX_READ);
      return buf;
    }
    if (n < buf.length / 4) {
      this.#readSize = Math.max(this.#readSize / 2, MIN_READ);
      if (buf.length <= this.#readSize) this.#spare = buf;
      return buf.slice(0, n);
    }
    return buf.subarray(0, n);
  }

  startReading(sink: ConnSink): void {
    if (this.#reader !== undefined) throw new TypeError("Conn.startReading() called twice");
    this.#reader = new PullReader(this, sink);
  }

  pauseReading(): void {
    this.#reader?.pause();
  }

  resumeReading(): void {
    this.#reader?.resume();
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#writeError !== undefined) return Promise.reject(this.#writeError);
    if (this.#writeClosed) return Promise.reject(closedError());
    if (data.length === 0) return Promise.resolve();
    this.#queue.push(data);
    this.#queued += data.length;
    this.#pumping ??= this.#pump();
    return this.#queued >= this.#highWater ? this.#gate.wait() : Promise.resolve();
  }

  /** Hands queued chunks to the OS one `conn.write` at a time until the queue is empty. */
  async #pump(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const chunk = this.#takeChunk();
        this.#inflight = chunk.length;
        let off = 0;
        while (off < chunk.length) {
          off += await this.#conn.write(off === 0 ? chunk : chunk.subarray(off));
        }
        this.#queued -= chunk.length;
        if (this.#queued < this.#highWater) this.#gate.release();
      }
    } catch (e) {
      this.#fail(this.#isClosed ? closedError() : socketError(e, formatAddr(this.remoteAddr)));
    } finally {
      this.#inflight = 0;
      this.#pumping = undefined;
    }
  }

  #takeChunk(): Uint8Array {
    const first = this.#queue[0]!;
    if (first.length >= COALESCE_BELOW || this.#queue.length === 1) {
      this.#queue.shift();
      return first;
    }
    let count = 0;
    let size = 0;
    for (const c of this.#queue) {
      if (size + c.length > COALESCE_MAX && count > 0) break;
      size += c.length;
      count++;
    }
    const merged = new Uint8Array(size);
    let off = 0;
    for (const c of this.#queue.splice(0, count)) {
      merged.set(c, off);
      off += c.length;
    }
    return merged;
  }

  #fail(err: RelayError): void {
    this.#writeError ??= err;
    this.#queue = [];
    this.#queued = 0;
    this.#gate.fail(err);
    this.close();
  }

  async closeWrite(): Promise<void> {
    if (this.#writeError !== undefined) throw this.#writeError;
    if (this.#writeClosed) return;
    this.#writeClosed = true;
    while (this.#pumping !== undefined) await this.#pumping;
    if (this.#writeError !== undefined) throw this.#writeError;
    try {
      await this.#conn.closeWrite();
    } catch (e) {
      throw socketError(e, formatAddr(this.remoteAddr));
    }
    if (this.#eof) this.close();
  }

  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#writeClosed = true;
    this.#writeError ??= closedError();
    this.#queue = [];
    this.#queued = 0;
    this.#gate.fail(this.#writeError);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime (e.g. after a reset): nothing left to release.
    }
    this.#resolveClosed();
  }

  setNoDelay(noDelay: boolean): void {
    if (this.#unix === undefined) this.#conn.setNoDelay?.(noDelay);
  }
}

class DenoListenerAdapter implements Listener {
  readonly addr: Addr;
  readonly #listener: DenoListener;
  readonly #highWater: number;
  #closed = false;
  /** Set while paused: accept() waits on it, so new connections stay in the kernel's backlog. */
  #paused: { promise: Promise<void>; resolve: () => void } | undefined;
  #turnedAway = 0;

  constructor(listener: DenoListener, highWater: number) {
    this.#listener = listener;
    this.#highWater = highWater;
    this.addr = toAddr(listener.addr);
  }

  get turnedAway(): number {
    return this.#turnedAway;
  }

  pause(): void {
    if (this.#paused !== undefined || this.#closed) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#paused = { promise, resolve };
  }

  resume(): void {
    this.#paused?.resolve();
    this.#paused = undefined;
  }

  async accept(): Promise<Conn | null> {
    while (!this.#closed) {
      if (this.#paused !== undefined) {
        await this.#paused.promise;
        continue;
      }
      let conn: DenoConn;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#closed || isBadResource(e)) return null;
        // A failed accept (EMFILE, a connection reset before accept) affects that one
        // connection only; wait a moment so fd exhaustion does not spin.
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      if (this.#paused !== undefined) {
        // The accept in flight when the pause came: this one is turned away.
        this.#turnedAway++;
        try {
          conn.close();
        } catch {
          // Closed already.
        }
        continue;
      }
      const unix = this.addr.kind === "unix" ? this.addr : undefined;
      return new DenoConnAdapter(conn, this.#highWater, unix);
    }
    return null;
  }

  [Symbol.asyncIterator](): AsyncIterator<Conn> {
    return iterateAccept(() => this.accept());
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.resume();
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
    if (this.addr.kind === "unix") {
      try {
        denoNs().removeSync(this.addr.path);
      } catch {
        // Already gone.
      }
    }
    return Promise.resolve();
  }
}

function isBadResource(e: unknown): boolean {
  return e instanceof Error && (e.name === "BadResource" || e.name === "Interrupted");
}

/**
 * Creates the Deno-native transport.
 *
 * @returns The transport.
 * @throws {RelayError} `unsupported` from `listen`/`connect` outside Deno.
 * @example
 * ```ts ignore
 * import { denoTransport } from "./deno.ts";
 * const listener = await denoTransport().listen({ kind: "tcp", hostname: "127.0.0.1", port: 0 });
 * await listener.close();
 * ```
 */
export function denoTransport(): Transport {
  return {
    name: "deno",
    listen(addr: Addr, options?: ConnOptions): Promise<Listener> {
      try {
        const listener = denoNs().listen(toOptions(addr));
        return Promise.resolve(
          new DenoListenerAdapter(listener, options?.highWaterMark ?? DEFAULT_HIGH_WATER),
        );
      } catch (e) {
        if (e instanceof RelayError) return Promise.reject(e);
        return Promise.reject(socketError(e, `listen on ${formatAddr(addr)}`));
      }
    },
    async connect(addr: Addr, options?: ConnOptions): Promise<Conn> {
      let conn: DenoConn;
      try {
        conn = await denoNs().connect(toOptions(addr));
      } catch (e) {
        if (e instanceof RelayError) throw e;
        throw socketError(e, `connect to ${formatAddr(addr)}`);
      }
      const unix = addr.kind === "unix" ? addr : undefined;
      return new DenoConnAdapter(conn, options?.highWaterMark ?? DEFAULT_HIGH_WATER, unix);
    },
  };
}
