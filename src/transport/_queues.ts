/**
 * @module
 * Internal queues shared by the adapters: a bounded queue of received chunks that pauses its
 * source above the high-water mark, a pull-to-push reader, a gate that parks writers until
 * the queue drains, and the errors and address format every adapter uses. Listeners' queues
 * are _listener.ts.
 */

import { RelayError } from "../errors.ts";
import type { Addr, ConnSink } from "./types.ts";

/** A parked promise's settlers. */
export interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** What a {@link ReadQueue} stops and starts reading from. */
export interface ReadSource {
  pause(): void;
  resume(): void;
}

/**
 * The chunk list of every queue holding nothing: shared and never written to (a queue takes
 * an array of its own on its first queued chunk), so an idle connection holds no array.
 */
const NO_CHUNKS: readonly Uint8Array[] = Object.freeze([]);

/**
 * Received chunks on their way to the reader: pulled by `read()`, or pushed to a sink after
 * `start()` (the adapters' `startReading`). The socket pushes; when the queued bytes reach the
 * high-water mark `pause` is called, and `resume` once the reader has taken the queue below
 * half of it, so a reader that stops reading (or holds its sink) makes the sender's socket fill
 * up (TCP backpressure) instead of this process's memory.
 */
export class ReadQueue {
  #chunks: Uint8Array[] = NO_CHUNKS as Uint8Array[];
  #head = 0;
  #bytes = 0;
  #ended = false;
  #error: unknown = undefined;
  #paused = false;
  #waiter: Waiter<Uint8Array | null> | undefined;
  /** Push mode: where chunks go, and whether it asked to be held. */
  #sink: ConnSink | undefined;
  #held = false;
  #endSent = false;
  readonly #highWater: number;
  readonly #source: ReadSource;

  /**
   * @param highWater Queued bytes at which the source is paused.
   * @param source What to pause and resume: the socket itself where it has the two methods
   *   (one object per connection, no closures).
   */
  constructor(highWater: number, source: ReadSource) {
    this.#highWater = highWater;
    this.#source = source;
  }

  /** Bytes received and not yet read. */
  get length(): number {
    return this.#bytes;
  }

  /** Whether the stream has ended or failed (further `end`/`fail` calls change nothing). */
  get done(): boolean {
    return this.#ended;
  }

  /** A chunk arrived from the socket; the queue takes ownership of it. */
  push(chunk: Uint8Array): void {
    if (this.#ended || chunk.length === 0) return;
    const sink = this.#sink;
    if (sink !== undefined && !this.#held && this.#head === this.#chunks.length) {
      sink.onData(chunk);
      return;
    }
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      waiter.resolve(chunk);
      return;
    }
    if (this.#chunks === NO_CHUNKS) this.#chunks = [chunk];
    else this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    if (!this.#paused && this.#bytes >= this.#highWater) {
      this.#paused = true;
      this.#source.pause();
    }
  }

  /** The peer finished sending (EOF). Queued chunks are still delivered first. */
  end(): void {
    this.#finish(undefined);
  }

  /** The stream broke; queued chunks are still delivered, then `read()` throws `error`. */
  fail(error: unknown): void {
    this.#finish(error);
  }

  #finish(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      if (error === undefined) waiter.resolve(null);
      else waiter.reject(error);
    }
    this.#deliver();
  }

  /** Drops everything queued and ends the stream with `error` (local close). */
  discard(error: unknown): void {
    this.#chunks = NO_CHUNKS as Uint8Array[];
    this.#head = 0;
    this.#bytes = 0;
    this.#finish(error);
  }

  read(): Promise<Uint8Array | null> {
    if (this.#sink !== undefined) {
      return Promise.reject(new TypeError("Conn.read() called after startReading()"));
    }
    if (this.#head < this.#chunks.length) return Promise.resolve(this.#take());
    if (this.#ended) {
      return this.#error === undefined ? Promise.resolve(null) : Promise.reject(this.#error);
    }
    this.#resumeSource();
    if (this.#waiter !== undefined) {
      return Promise.reject(
        new TypeError("Conn.read() called again before the last read resolved"),
      );
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /**
   * Push mode from now on: what is queued, then every chunk as it arrives, goes to `sink`.
   * @throws {TypeError} when already started or while a `read()` is pending.
   */
  start(sink: ConnSink): void {
    if (this.#sink !== undefined || this.#waiter !== undefined) {
      throw new TypeError("Conn.startReading() called twice or while a read() is pending");
    }
    this.#sink = sink;
    this.#deliver();
  }

  /** Push mode: holds chunks back from the sink (`true`) or hands them over again. */
  hold(held: boolean): void {
    this.#held = held;
    if (!held) this.#deliver();
  }

  /** Hands the sink what is queued, then the end, while it is not held. */
  #deliver(): void {
    const sink = this.#sink;
    if (sink === undefined) return;
    while (!this.#held && this.#head < this.#chunks.length) sink.onData(this.#take());
    if (this.#held || this.#head < this.#chunks.length) return;
    if (!this.#ended) this.#resumeSource();
    else if (!this.#endSent) {
      this.#endSent = true;
      sink.onEnd(this.#error);
    }
  }

  /** The oldest queued chunk, taken off the queue (the source resumes below half). */
  #take(): Uint8Array {
    const chunk = this.#chunks[this.#head]!;
    this.#chunks[this.#head++] = EMPTY;
    if (this.#head === this.#chunks.length) {
      this.#chunks = NO_CHUNKS as Uint8Array[];
      this.#head = 0;
    }
    this.#bytes -= chunk.length;
    if (this.#bytes < this.#highWater / 2) this.#resumeSource();
    return chunk;
  }

  #resumeSource(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#source.resume();
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Push mode ({@link Conn.startReading}) over a connection that can only be pulled from (Deno's
 * sockets, wrappers): one `read()` at a time while the sink is not paused, its result handed
 * on from the promise's callbacks, so no function stays suspended while the peer is quiet. A
 * paused sink leaves the socket unread (TCP backpressure); a read that completes after the
 * sink paused is kept until it resumes.
 */
export class PullReader {
  readonly #conn: { read(): Promise<Uint8Array | null> };
  readonly #sink: ConnSink;
  #paused = false;
  #reading = false;
  #ended = false;
  /** A chunk read while the sink was paused (`null`: the end, with `#error`). */
  #held: Uint8Array | null | undefined;
  #error: unknown;

  /**
   * @param conn What to pull from; starts reading at once.
   * @param sink Where the chunks and the end go.
   */
  constructor(conn: { read(): Promise<Uint8Array | null> }, sink: ConnSink) {
    this.#conn = conn;
    this.#sink = sink;
    this.#next();
  }

  /** Hands the sink nothing until {@link resume}. */
  pause(): void {
    this.#paused = true;
  }

  /** Hands over what was held, then reads on. */
  resume(): void {
    this.#paused = false;
    this.#next();
  }

  #next(): void {
    while (!this.#paused && !this.#ended) {
      const held = this.#held;
      if (held === undefined) break;
      this.#held = undefined;
      if (held === null) {
        this.#ended = true;
        this.#sink.onEnd(this.#error);
        return;
      }
      this.#sink.onData(held);
    }
    if (this.#paused || this.#ended || this.#reading) return;
    this.#reading = true;
    this.#conn.read().then((chunk) => {
      this.#reading = false;
      this.#held = chunk;
      this.#next();
    }, (e) => {
      this.#reading = false;
      this.#held = null;
      this.#error = e;
      this.#next();
    });
  }
}

/**
 * Writers parked until the outgoing queue drains below the high-water mark. Adapters call
 * `release()` on drain and `fail()` when the connection dies.
 */
export class WriteGate {
  /** Made when a writer first parks: most connections never fill their write queue. */
  #waiters: Waiter<void>[] | undefined;

  /** A promise that settles on the next `release()` or `fail()`. */
  wait(): Promise<void> {
    return new Promise((resolve, reject) => (this.#waiters ??= []).push({ resolve, reject }));
  }

  /** Wakes every parked writer. */
  release(): void {
    const waiters = this.#waiters;
    if (waiters === undefined) return;
    this.#waiters = undefined;
    for (const w of waiters) w.resolve();
  }

  /** Rejects every parked writer. */
  fail(error: unknown): void {
    const waiters = this.#waiters;
    if (waiters === undefined) return;
    this.#waiters = undefined;
    for (const w of waiters) w.reject(error);
  }
}

/** The error every adapter uses for operations on a locally closed connection. */
export function closedError(): RelayError {
  return new RelayError("closed", "connection is closed");
}

/**
 * Maps a runtime's socket error to a `RelayError`.
 *
 * @param cause The runtime's error.
 * @param context What was being done, e.g. `connect to 127.0.0.1:4222`.
 * @returns The error to throw.
 */
export function socketError(cause: unknown, context: string): RelayError {
  const code = errorCode(cause);
  if (code === "EADDRINUSE" || code === "AddrInUse") {
    return new RelayError("addr-in-use", `${context}: address already in use`, { cause });
  }
  if (
    code === "ECONNREFUSED" || code === "ENOENT" || code === "ConnectionRefused" ||
    code === "NotFound" || code === "EHOSTUNREACH" || code === "ENETUNREACH"
  ) {
    return new RelayError("connect-failed", `${context}: connection refused`, { cause });
  }
  return new RelayError("connection-lost", `${context}: ${describe(cause)}`, { cause });
}

function errorCode(e: unknown): string | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const rec = e as { code?: unknown; name?: unknown };
  if (typeof rec.code === "string") return rec.code;
  if (typeof rec.name === "string") return rec.name;
  return undefined;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Formats an address for messages and logs.
 *
 * @param addr The address.
 * @returns `host:port` or the socket path.
 */
/**
 * A TCP address from what a socket API reports (missing parts as empty).
 * @param host The host, if known.
 * @param port The port, if known.
 * @returns The address.
 */
export function tcpAddr(host: string | undefined, port: number | undefined): Addr {
  return { kind: "tcp", hostname: host ?? "", port: port ?? 0 };
}

export function formatAddr(addr: Addr): string {
  return addr.kind === "tcp" ? `${addr.hostname}:${addr.port}` : `unix:${addr.path}`;
}
