/**
 * @module
 * The part of a `Conn` over a message socket (a WebSocket) that does not depend on whose
 * WebSocket API it is: received messages become read chunks, writes wait while too much is
 * buffered, a clean close is end of stream and any other close an error. Subclasses adapt one
 * API: the standard `WebSocket` (clients, Deno and `ws` server sockets) or Bun's server
 * sockets.
 */

import { RelayError } from "../errors.ts";
import { closedError, ReadQueue, WriteGate } from "./_queues.ts";
import type { Addr, Conn, ConnSink } from "./types.ts";

/** How often a parked writer or a flush looks at the buffered amount again (ms). */
const POLL_MS = 2;
/** How long a flush, or `closed` after `close()`, waits for the peer at most (ms). */
export const CLOSE_WAIT_MS = 3000;

/** A `Conn` over one message socket; see the module doc. */
export abstract class MessageConn implements Conn {
  /** This end's address. */
  readonly localAddr: Addr;
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /** Resolves once the connection is closed. */
  readonly closed: Promise<void>;
  readonly #highWater: number;
  readonly #reads: ReadQueue;
  readonly #gate = new WriteGate();
  #resolveClosed!: () => void;
  #isClosed = false;
  #writeClosed = false;
  #error: RelayError | undefined;
  #polling = false;

  /**
   * @param localAddr This end's address.
   * @param remoteAddr The peer's address.
   * @param highWater Per-direction queue bound.
   * @param pause Stops the socket reading, where it can; `resume` undoes it.
   */
  constructor(
    localAddr: Addr,
    remoteAddr: Addr,
    highWater: number,
    pause: () => void = () => {},
    resume: () => void = () => {},
  ) {
    this.localAddr = localAddr;
    this.remoteAddr = remoteAddr;
    this.#highWater = highWater;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#reads = new ReadQueue(highWater, { pause, resume });
  }

  /** Sends one binary message; `false` when the socket dropped it (closing). */
  protected abstract send(data: Uint8Array): boolean;
  /** Bytes sent and not yet handed to the network. */
  protected abstract buffered(): number;
  /** Whether messages can be sent now. */
  protected abstract isOpen(): boolean;
  /** Whether the socket is fully closed. */
  protected abstract isGone(): boolean;
  /** Starts the closing handshake. */
  protected abstract closeSocket(code: number, reason: string): void;
  /** Closes at once (no handshake where the API allows). */
  protected abstract abortSocket(): void;

  /** Bytes queued for sending (none once the socket is gone: nothing sends them). */
  get writableLength(): number {
    return this.#isClosed && this.isGone() ? 0 : this.buffered();
  }

  /** A message arrived: binary data becomes a chunk; text ends the connection. */
  protected received(data: unknown): void {
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (ArrayBuffer.isView(data)) {
      bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } else {
      // Text frames are not part of hydra/1: a peer sending them is not a hydra peer.
      this.fail(new RelayError("protocol-error", "text WebSocket message on a hydra connection"));
      this.closeSocket(1003, "binary messages only");
      return;
    }
    this.#reads.push(bytes);
  }

  /** The socket closed: cleanly (1000, 1001, 1005) is end of stream, otherwise an error. */
  protected ended(code: number, reason: string): void {
    if (code === 1000 || code === 1001 || code === 1005) this.#reads.end();
    else {
      this.fail(
        new RelayError(
          "connection-lost",
          `WebSocket closed with code ${code}${reason === "" ? "" : ` (${reason})`}`,
        ),
      );
    }
    this.#isClosed = true;
    this.#writeClosed = true;
    this.#error ??= closedError();
    this.#gate.fail(this.#error);
    this.#resolveClosed();
  }

  /** The connection broke: readers and writers get `err`. */
  protected fail(err: RelayError): void {
    this.#error ??= err;
    this.#reads.fail(err);
    this.#gate.fail(err);
  }

  /** The socket drained: wake writers (Bun tells; the standard API must be polled). */
  protected drained(): void {
    if (this.buffered() < this.#highWater) this.#gate.release();
  }

  /** The next received chunk (one message), or `null` after a clean close. */
  read(): Promise<Uint8Array | null> {
    return this.#reads.read();
  }

  startReading(sink: ConnSink): void {
    this.#reads.start(sink);
  }

  pauseReading(): void {
    this.#reads.hold(true);
  }

  resumeReading(): void {
    this.#reads.hold(false);
  }

  /** Sends `data` as one binary message; waits while too much is buffered. */
  write(data: Uint8Array): Promise<void> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (this.#writeClosed || !this.isOpen()) return Promise.reject(closedError());
    if (data.length === 0) return Promise.resolve();
    let sent: boolean;
    try {
      sent = this.send(data);
    } catch (e) {
      sent = false;
      this.fail(new RelayError("connection-lost", `WebSocket send failed: ${String(e)}`));
    }
    if (!sent) {
      this.fail(new RelayError("connection-lost", "WebSocket closed while sending"));
      return Promise.reject(this.#error);
    }
    if (this.buffered() < this.#highWater) return Promise.resolve();
    const wait = this.#gate.wait();
    this.#poll();
    return wait;
  }

  /** Releases parked writers once the buffered amount fell below the high-water mark. */
  #poll(): void {
    if (this.#polling) return;
    this.#polling = true;
    const tick = () => {
      if (this.#isClosed || this.buffered() < this.#highWater) {
        this.#polling = false;
        this.#gate.release();
        return;
      }
      setTimeout(tick, POLL_MS);
    };
    setTimeout(tick, POLL_MS);
  }

  /** Flushes, then closes the whole connection with 1000 (WebSockets cannot half-close). */
  async closeWrite(): Promise<void> {
    if (this.#error !== undefined && this.#error.code !== "closed") throw this.#error;
    if (this.#writeClosed) return;
    this.#writeClosed = true;
    const deadline = Date.now() + CLOSE_WAIT_MS;
    while (this.isOpen() && this.buffered() > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    if (this.isOpen()) this.closeSocket(1000, "");
  }

  /** Closes now; queued bytes are discarded. */
  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#writeClosed = true;
    this.#error ??= closedError();
    this.#reads.discard(this.#error);
    this.#gate.fail(this.#error);
    if (!this.isGone()) this.abortSocket();
    if (this.isGone()) return this.#resolveClosed();
    // The closing handshake needs the peer; do not wait for it forever.
    const timer = setTimeout(() => this.#resolveClosed(), CLOSE_WAIT_MS);
    this.closed.then(() => clearTimeout(timer));
  }

  /** No-op: the runtime's WebSocket owns its TCP socket. */
  setNoDelay(_noDelay: boolean): void {
    // Nothing to set from here.
  }
}
