/**
 * @module
 * `Consumer`: one reader of a session (docs/PROTOCOL.md §5, §6.5). It verifies the
 * producer's signed STREAM-START, derives the stream's data key, checks that every frame has
 * exactly the next seq, decrypts (pipelined: several frames may be in flight while the
 * application reads) and delivers messages in order. Anything the relay or the network did
 * to the stream — tampering, reordering, replays, drops, truncation — becomes a typed error
 * or event; no altered byte is ever delivered.
 */

import { RelayError } from "../errors.ts";
import type { JoinOptions, PolicyName } from "../protocol/control.ts";
import { DataFlag, decodeBatch } from "../protocol/data_frame.ts";
import { Role } from "../protocol/join.ts";
import { ReadCapability, type ReaderKeys } from "../protocol/capability.ts";
import { equals, readU32BE } from "../bytes.ts";
import { Keyring } from "./_keyring.ts";
import type { Session, SessionKeys } from "../protocol/session.ts";
import type { Codec } from "./codec.ts";
import type { ConnectOptions } from "./_handshake.ts";
import { type Home, homeOf, reconnectHome, type RelayAddrs, withOwnConnection } from "./_home.ts";
import type { RelayLink } from "./link.ts";
import {
  type Item,
  type StreamEvents,
  StreamGuard,
  type StreamInfo,
  tampered,
} from "./_stream_guard.ts";
import type { Subscriber } from "./subscriber.ts";
import { Emitter, type EventHandler } from "./_emitter.ts";
import {
  isTransient,
  type ReconnectEvents,
  type ReconnectOptions,
  withBackoff,
} from "./_reconnect.ts";

export type { StreamEvents, StreamInfo } from "./_stream_guard.ts";

/** Options of a consumer. */
export interface ConsumerOptions<T = Uint8Array> extends ConnectOptions {
  /** Decodes messages for {@link Consumer.recv}. Default: raw bytes. */
  readonly codec?: Codec<T>;
  /** Ask the relay for a stricter slow-consumer policy than its default. */
  readonly policy?: PolicyName;
  /**
   * Reconnection of a consumer made by `connect` (one on a shared `RelayConnection` never
   * reconnects): `false` to fail instead. After reconnecting it resumes the stream at the next
   * frame it needs; what the relay no longer holds arrives as a `lagged` gap. Default `{}`.
   */
  readonly reconnect?: ReconnectOptions | false;
}

/**
 * Events of a consumer. Stream events are delivered in stream order as `recv()` passes them;
 * `reconnecting` and `reconnected` when they happen.
 */
export interface ConsumerEvents extends ReconnectEvents, StreamEvents {
  /** The stream ended cleanly (END). */
  end: StreamInfo;
}

/**
 * A reader of one session.
 *
 * @example
 * ```ts
 * import { Consumer } from "./consumer.ts";
 * import { Producer } from "./producer.ts";
 * import { RelayServer } from "../server/relay.ts";
 * import { Session } from "../protocol/session.ts";
 * import { memoryTransport } from "../transport/memory.ts";
 * import { nativeCrypto } from "../crypto/native.ts";
 * import { textCodec } from "./codec.ts";
 * const transport = memoryTransport();
 * const relay = await RelayServer.listen({ transport, port: 0 });
 * const session = Session.generate(nativeCrypto());
 * const consumer = await Consumer.connect(relay.addr, session, { transport, codec: textCodec });
 * const producer = await Producer.connect(relay.addr, session, { transport, codec: textCodec });
 * await producer.send("hello");
 * console.log(await consumer.recv()); // "hello"
 * await producer.close();
 * await consumer.close();
 * await relay.close();
 * ```
 */
export class Consumer<T = Uint8Array> implements AsyncIterable<T> {
  #conn: RelayLink;
  /** The keys joins prove: the session's, or the newest read capability's. */
  #keys: SessionKeys | ReaderKeys;
  /** The session, or the read capabilities held (the newest few). */
  readonly #keyring: Keyring;
  /** Grants go to the relay one at a time. */
  #granting: Promise<unknown> = Promise.resolve();
  /** The relay ended this subscription (`revoked`, `slow-consumer`, …): nothing can rejoin it. */
  #refused: RelayError | undefined;
  /** Set when this opened its own connection: where to reconnect; it closes it on close(). */
  readonly #home: Home | undefined;
  readonly #codec: Codec<T> | undefined;
  readonly #events = new Emitter<ConsumerEvents>();
  readonly #queue: Item[] = [];
  #head = 0;
  readonly #ready: Uint8Array[] = [];
  #readyHead = 0;
  readonly #guard: StreamGuard;
  #arrival: (() => void) | undefined;
  /** A `recv()` call is opening the frame at the head of the queue. */
  #opening = false;
  #terminal: RelayError | undefined;
  #ended = false;
  #closing: Promise<void> | undefined;
  readonly #policy: PolicyName | undefined;
  readonly #reconnectOptions: ReconnectOptions | false;
  #reconnecting = false;

  private constructor(
    connection: RelayLink,
    capability: Session | ReadCapability,
    keys: SessionKeys | ReaderKeys,
    options: ConsumerOptions<T>,
    home: Home | undefined,
  ) {
    this.#conn = connection;
    this.#keys = keys;
    this.#keyring = new Keyring(capability);
    this.#home = home;
    this.#codec = options.codec;
    this.#policy = options.policy;
    this.#reconnectOptions = options.reconnect ?? {};
    this.#guard = new StreamGuard(
      connection.crypto,
      keys.routeId,
      this.#keyring,
      (item) => this.#push(item),
      (name, value) => this.#events.emit(name, value as ConsumerEvents[typeof name]),
    );
  }

  /**
   * Connects to a relay on a connection of its own and joins the session. If no producer
   * is there yet, the consumer waits (up to the relay's wait-for-producer timeout) and
   * receives the stream from its start.
   * @param addr Relay address, or the addresses of several relays of a cluster (tried in
   *   turn, now and when reconnecting).
   * @param capability The session (a write token) or a read capability (a read token): either
   *   reads; neither key leaves this process.
   * @param options Connection and consumer options.
   * @returns The consumer.
   * @throws {RelayError} `auth-failed` when the relay refuses the proof; see
   *   {@link RelayLink.connect} for connection errors.
   */
  static async connect<T = Uint8Array>(
    addr: RelayAddrs,
    capability: Session | ReadCapability,
    options: ConsumerOptions<T> = {},
  ): Promise<Consumer<T>> {
    const home = homeOf(addr, options);
    return withOwnConnection(home, (conn) => Consumer.open(conn, capability, options, home));
  }

  /** @internal Joins on an existing connection; use `connect` or `connection.consumer`. */
  static async open<T>(
    conn: RelayLink,
    capability: Session | ReadCapability,
    options: ConsumerOptions<T>,
    home: Home | undefined,
  ): Promise<Consumer<T>> {
    const keys = await capability.keys(conn.crypto);
    const consumer = new Consumer<T>(conn, capability, keys, options, home);
    await conn.join(keys, Role.Consumer, consumer.#joinOptions(), consumer.#subscriber(conn));
    return consumer;
  }

  /**
   * The connection currently carrying this consumer: the `RelayConnection` it was opened on, or
   * the link `connect` made for it (a new one after a reconnect).
   */
  get connection(): RelayLink {
    return this.#conn;
  }

  /** Policy wish, and where to resume when a stream is under way. */
  #joinOptions(): JoinOptions {
    const resume = this.#guard.resume;
    const k = this.#keys;
    return {
      ...(this.#policy === undefined ? {} : { policy: this.#policy }),
      ...(resume === undefined ? {} : { resume }),
      ...("grant" in k
        ? { reader: { generation: k.generation, readerKey: k.readerKey, grant: k.grant } }
        : {}),
    };
  }

  /**
   * Hands this consumer the read capability of another generation (the one `producer.rotate()`
   * returned, or one minted ahead with `session.readOnly()`): it reads that generation's
   * streams too, and the relay keeps it joined when the producer rotates to it (a GRANT). The
   * newest four capabilities are kept. A consumer holding the session (a write token) reads
   * every generation already: then this does nothing.
   * @param capability A read capability of this consumer's session.
   * @returns Once the relay accepted it (or the connection is being replaced: the rejoin
   *   proves the newest capability).
   * @throws {TypeError} for anything but a read capability of this session; {RelayError} the
   *   relay's refusal (`revoked`: the session already rotated past that generation), or the
   *   error that ended this consumer.
   */
  async grant(capability: ReadCapability): Promise<void> {
    if (!(capability instanceof ReadCapability)) {
      throw new TypeError("grant() takes a read capability (ReadCapability.fromToken(token))");
    }
    if (!equals(capability.routeId, this.#keys.routeId)) {
      throw new TypeError("that read capability is for another session");
    }
    const over = this.#terminal ?? this.#refused;
    if (over !== undefined) throw over;
    if (!this.#keyring.add(capability)) return;
    const keys = await capability.keys(this.#conn.crypto);
    const current = this.#keys;
    if ("grant" in current && keys.generation > current.generation) this.#keys = keys;
    const conn = this.#conn;
    const sent = this.#granting.catch(() => {}).then(() => conn.grant(keys));
    this.#granting = sent;
    try {
      await sent;
    } catch (e) {
      // The connection is going: reconnecting joins with the newest capability.
      if (e instanceof RelayError && isTransient(e) && this.#home !== undefined) return;
      throw e;
    }
  }

  /** The stream being received, if one has started. */
  get stream(): StreamInfo | undefined {
    return this.#guard.info;
  }

  /**
   * Subscribes to an event.
   * @returns A function that unsubscribes.
   */
  on<K extends keyof ConsumerEvents>(
    event: K,
    listener: EventHandler<ConsumerEvents[K]>,
  ): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * The next message, in order.
   * @returns The message (decoded with the codec, if any), or `null` once the stream
   *   ended cleanly (END) or the consumer was closed.
   * @throws {RelayError} `tampered` (altered, reordered, replayed or dropped frames — the
   *   consumer stops), `producer-left` (stream cut; thrown once, later calls wait for the
   *   next stream), `timeout` (no producer came), `slow-consumer`, `connection-lost`,
   *   `going-away`.
   */
  async recv(): Promise<T | null> {
    while (true) {
      if (this.#readyHead < this.#ready.length) {
        const m = this.#ready[this.#readyHead]!;
        this.#ready[this.#readyHead++] = EMPTY;
        if (this.#readyHead === this.#ready.length) {
          this.#ready.length = 0;
          this.#readyHead = 0;
        } else {
          this.#wake(); // a batch's other messages are for the other waiting calls
        }
        return this.#decode(m);
      }
      // One call at a time opens a frame, so concurrent calls still get messages in order.
      const item = this.#opening ? undefined : this.#shift();
      if (item === undefined) {
        if (this.#terminal !== undefined) {
          if (this.#terminal.code === "closed" && this.#closing !== undefined) return null;
          throw this.#terminal;
        }
        if (this.#ended) return null;
        // Every waiting call is woken (each looks again), so concurrent recv()s all return.
        await new Promise<void>((r) => {
          const earlier = this.#arrival;
          this.#arrival = earlier === undefined ? r : () => {
            earlier();
            r();
          };
        });
        continue;
      }
      if (item.kind === "event") {
        item.emit();
        continue;
      }
      if (item.kind === "error") {
        if (item.terminal) this.#stop(item.error);
        throw item.error;
      }
      let plaintext: Uint8Array | null;
      this.#opening = true;
      try {
        plaintext = await item.open;
      } catch {
        item.conn.release(item.size);
        const e = tampered("a data frame failed authentication");
        this.#stop(e);
        throw e;
      } finally {
        this.#opening = false;
        this.#wake(); // calls that waited while this one opened look again
      }
      item.conn.release(item.size);
      // Never verified (its stream was cut before the producer signed it): not delivered.
      if (plaintext === null) continue;
      if ((item.flags & DataFlag.Batch) !== 0) {
        let messages: Uint8Array[];
        try {
          messages = decodeBatch(plaintext);
        } catch {
          const e = tampered("a batch frame is malformed");
          this.#stop(e);
          throw e;
        }
        for (const m of messages) this.#ready.push(m);
      } else if ((item.flags & DataFlag.End) === 0) {
        return this.#decode(plaintext); // one message, and nothing was ready before it
      } else if ((item.flags & DataFlag.Rotate) !== 0) {
        if (plaintext.length !== 4) {
          const e = tampered("a ROTATE frame does not name one generation");
          this.#stop(e);
          throw e;
        }
        const next = readU32BE(plaintext, 0);
        if (this.#keyring.canRead(next)) continue; // the next stream follows
        const e = new RelayError(
          "revoked",
          `the producer rotated to read tokens of generation ${next}: ask it for one`,
        );
        this.#stop(e);
        this.#leave();
        throw e;
      } else if (plaintext.length !== 0) {
        const e = tampered("an END frame without BATCH carries data");
        this.#stop(e);
        throw e;
      }
      if ((item.flags & DataFlag.End) !== 0) this.#finish();
    }
  }

  /**
   * Iterates messages until END; throws what {@link recv} throws and is finished after that,
   * as after END or a `break`. (A plain iterator over `recv()`, not an async generator: one
   * promise per message, where a generator adds its own request, resumption and await.)
   */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    let finished = false;
    const step = (m: T | null): IteratorResult<T> => {
      if (m !== null) return { value: m, done: false };
      finished = true;
      return DONE;
    };
    const fail = (e: unknown): never => {
      finished = true;
      throw e;
    };
    return {
      next: () => (finished ? Promise.resolve(DONE) : this.recv().then(step, fail)),
      return: () => {
        finished = true;
        return Promise.resolve(DONE);
      },
    };
  }

  /**
   * Leaves the session (and closes the connection if `connect` opened it). Pending
   * `recv()` calls return `null`. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stop(new RelayError("closed", "consumer is closed"));
      if (this.#home !== undefined) await this.#conn.close();
      else await this.#conn.leave(this.#keys.streamTag, Role.Consumer);
    })();
    return this.#closing;
  }

  #decode(m: Uint8Array): T {
    if (this.#codec === undefined) return m as T;
    return this.#codec.decode(m);
  }

  #shift(): Item | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const item = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as unknown as Item;
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
    return item;
  }

  #push(item: Item): void {
    this.#queue.push(item);
    this.#wake();
  }

  /** Wakes the waiting `recv()` calls. */
  #wake(): void {
    const w = this.#arrival;
    if (w !== undefined) {
      this.#arrival = undefined;
      w();
    }
  }

  /** Gives the queued frames' buffer space back to their connections. */
  #releaseQueued(): void {
    for (let i = this.#head; i < this.#queue.length; i++) {
      const it = this.#queue[i]!;
      if (it.kind === "frame") it.conn.release(it.size);
    }
  }

  /** Terminal: nothing more is delivered. */
  #stop(error: RelayError): void {
    if (this.#terminal !== undefined) return;
    this.#terminal = error;
    this.#releaseQueued();
    this.#queue.length = 0;
    this.#head = 0;
    this.#ready.length = 0;
    this.#readyHead = 0;
    this.#wake();
  }

  /** END delivered: the consumer is done with the session. */
  #finish(): void {
    this.#ended = true;
    const info = this.#guard.info!;
    this.#events.emit("end", info);
    this.#leave();
  }

  /** Done with the session: leave it (and close the connection this consumer opened). */
  #leave(): void {
    if (this.#home !== undefined) this.#conn.close().catch(() => {});
    else this.#conn.leave(this.#keys.streamTag, Role.Consumer).catch(() => {});
  }

  #subscriber(conn: RelayLink): Subscriber {
    return {
      onData: (frame) => {
        if (this.#terminal === undefined) this.#guard.data(frame, conn);
        else conn.release(frame.bytes.length);
      },
      onControl: (m) =>
        this.#terminal === undefined ? this.#guard.control(m, this.#conn.crypto) : undefined,
      onClose: (e, connection) => {
        // After END or a local close(), the connection closing is expected.
        if (this.#terminal !== undefined || this.#closing !== undefined) return;
        if (this.#ended) return;
        if (
          connection && this.#home !== undefined && this.#reconnectOptions !== false &&
          isTransient(e)
        ) {
          this.#reconnect(e);
          return;
        }
        if (!connection) this.#refused = e;
        this.#guard.cut();
        this.#push({ kind: "error", error: e, terminal: true });
      },
    };
  }

  /** A new connection, joined with the resume point; frames already queued stay queued. */
  #reconnect(error: RelayError): void {
    if (this.#reconnecting) return;
    this.#reconnecting = true;
    const options = this.#reconnectOptions as ReconnectOptions;
    const home = reconnectHome(this.#home!, this.#conn.hello.heartbeatMs);
    withBackoff(options, error, () =>
      withOwnConnection(home, async (conn) => {
        const keys = this.#keys;
        await conn.join(keys, Role.Consumer, this.#joinOptions(), this.#subscriber(conn));
        // A newer capability was granted while this join was on its way: prove it too.
        if (this.#keys !== keys && "grant" in this.#keys) await conn.grant(this.#keys);
        return conn;
      }), {
      retryable: isTransient,
      stopped: () => this.#terminal !== undefined || this.#closing !== undefined,
      onDelay: (attempt, delayMs, err) =>
        this.#events.emit("reconnecting", { attempt, delayMs, error: err }),
    }).then(({ value, attempts }) => {
      this.#reconnecting = false;
      if (this.#closing !== undefined) {
        value.close().catch(() => {});
        return;
      }
      this.#conn = value;
      this.#events.emit("reconnected", { attempts });
    }, (e: RelayError) => {
      this.#reconnecting = false;
      this.#guard.cut();
      this.#push({ kind: "error", error: e, terminal: true });
    });
  }
}

const EMPTY = new Uint8Array(0);
const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });
