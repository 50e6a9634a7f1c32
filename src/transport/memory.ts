/**
 * @module
 * In-process transport: connections are pairs of bounded queues, listeners live in a
 * per-transport registry keyed by address. Used by tests and for local channels inside one
 * process; same contract, same backpressure as the socket adapters.
 *
 * Buffer ownership: the peer's `read()` gets a copy of each written buffer, made in `write()`,
 * as a socket's kernel buffer would: the reader owns and may keep what it reads, and the
 * writer's loan ends as soon as `write()` returns (types.ts). Handing over the writer's own
 * memory would let the relay reuse a ring buffer a consumer still holds.
 */

import { RelayError } from "../errors.ts";
import { closedError, formatAddr, ReadQueue, WriteGate } from "./_queues.ts";
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

function peerGone(): RelayError {
  return new RelayError("connection-lost", "peer closed the connection");
}

class MemoryConn implements Conn {
  readonly localAddr: Addr;
  readonly remoteAddr: Addr;
  readonly closed: Promise<void>;
  /** What the peer wrote to us. */
  readonly inbox: ReadQueue;
  readonly gate = new WriteGate();
  peer!: MemoryConn;
  #writeClosed = false;
  #closed = false;
  #resolveClosed!: () => void;

  /** Bound on our inbox: the peer's writes wait while it is this full. */
  readonly highWater: number;

  constructor(localAddr: Addr, remoteAddr: Addr, highWater: number) {
    this.highWater = highWater;
    this.localAddr = localAddr;
    this.remoteAddr = remoteAddr;
    // Pausing a memory "socket" means: the writer's next write() waits (see write()).
    this.inbox = new ReadQueue(highWater, { pause() {}, resume: () => this.peer.gate.release() });
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  get writableLength(): number {
    return this.#closed ? 0 : this.peer.inbox.length;
  }

  read(): Promise<Uint8Array | null> {
    return this.inbox.read();
  }

  startReading(sink: ConnSink): void {
    this.inbox.start(sink);
  }

  pauseReading(): void {
    this.inbox.hold(true);
  }

  resumeReading(): void {
    this.inbox.hold(false);
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#closed || this.#writeClosed) return Promise.reject(closedError());
    if (this.peer.#closed) return Promise.reject(peerGone());
    // A copy: the reader owns what it reads and may keep it, while the writer may reuse its
    // buffer once writableLength is 0 (the relay's ring does) — as with a real socket.
    this.peer.inbox.push(data.slice());
    return this.peer.inbox.length >= this.peer.highWater ? this.gate.wait() : Promise.resolve();
  }

  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    if (!this.#writeClosed) {
      this.#writeClosed = true;
      this.peer.inbox.end();
      this.#maybeFullyClosed();
      this.peer.#maybeFullyClosed();
    }
    return Promise.resolve();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writeClosed = true;
    this.inbox.discard(closedError());
    this.gate.fail(closedError());
    const peer = this.peer;
    peer.inbox.fail(peerGone());
    peer.gate.fail(peerGone());
    this.#resolveClosed();
    peer.#resolveClosed();
  }

  #maybeFullyClosed(): void {
    if (this.#writeClosed && this.peer.#writeClosed) {
      this.#closed = true;
      this.#resolveClosed();
    }
  }

  setNoDelay(_noDelay: boolean): void {}

  /** Wires two ends together. */
  static pair(a: Addr, b: Addr, hwmA: number, hwmB: number): [MemoryConn, MemoryConn] {
    const x = new MemoryConn(a, b, hwmA);
    const y = new MemoryConn(b, a, hwmB);
    x.peer = y;
    y.peer = x;
    return [x, y];
  }
}

interface MemoryEndpoint {
  queue: AcceptQueue<MemoryConn>;
  listener: QueueListener<MemoryConn>;
  highWater: number;
}

/**
 * Creates an in-process transport. Listeners are only visible to connections made through
 * the same transport object.
 *
 * @returns The transport.
 * @example
 * ```ts
 * import { memoryTransport } from "./memory.ts";
 * const t = memoryTransport();
 * const listener = await t.listen({ kind: "unix", path: "relay" });
 * const client = await t.connect(listener.addr);
 * const server = (await listener.accept())!;
 * await client.write(new TextEncoder().encode("hi"));
 * console.log(await server.read());
 * ```
 */
export function memoryTransport(): Transport {
  const endpoints = new Map<string, MemoryEndpoint>();
  let nextPort = 1;
  let nextClient = 1;
  return {
    name: "memory",
    listen(addr: Addr, options?: ConnOptions): Promise<Listener> {
      let bound = addr;
      if (addr.kind === "tcp" && addr.port === 0) {
        while (endpoints.has(formatAddr({ ...addr, port: nextPort }))) nextPort++;
        bound = { ...addr, port: nextPort++ };
      }
      const key = formatAddr(bound);
      if (endpoints.has(key)) {
        return Promise.reject(
          new RelayError("addr-in-use", `listen on ${key}: address already in use`),
        );
      }
      const queue = new AcceptQueue<MemoryConn>();
      const listener = new QueueListener(bound, queue, () => endpoints.delete(key));
      const highWater = options?.highWaterMark ?? DEFAULT_HIGH_WATER;
      endpoints.set(key, { queue, listener, highWater });
      return Promise.resolve(listener);
    },
    connect(addr: Addr, options?: ConnOptions): Promise<Conn> {
      const key = formatAddr(addr);
      const endpoint = endpoints.get(key);
      if (endpoint === undefined || endpoint.queue.closed) {
        return Promise.reject(
          new RelayError("connect-failed", `connect to ${key}: connection refused`),
        );
      }
      const local: Addr = addr.kind === "tcp"
        ? { kind: "tcp", hostname: addr.hostname, port: 100000 + nextClient++ }
        : addr;
      const [client, server] = MemoryConn.pair(
        local,
        addr,
        options?.highWaterMark ?? DEFAULT_HIGH_WATER,
        endpoint.highWater,
      );
      // A paused listener turns the connection away as a TCP one would: connected, then closed.
      if (endpoint.listener.admit()) endpoint.queue.push(server);
      else server.close();
      return Promise.resolve(client);
    },
  };
}
