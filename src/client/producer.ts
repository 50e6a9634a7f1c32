/**
 * @module
 * `Producer`: the one writer of a session (docs/PROTOCOL.md §5, §6.3). It announces a fresh
 * stream (random epoch, signed STREAM-START), seals every frame end to end with the stream's
 * data key, batches small messages into BATCH frames while the pipeline is busy (or for up to
 * `lingerMs`), and ends the stream with END so consumers can tell a clean end from a cut.
 */

import { abytes, aint, writeU32BE } from "../bytes.ts";
import { RelayError } from "../errors.ts";
import { ControlKind, type ControlMessage } from "../protocol/control.ts";
import { DATA_HEADER, DataFlag, encodeBatch } from "../protocol/data_frame.ts";
import { trailerLength } from "../protocol/segment.ts";
import { type Pending, SEGMENT_FRAMES } from "./_sealer.ts";
import { newStream, Retained, type StreamParts, streamStart } from "./_stream.ts";
import { MAX_GENERATION, ReadCapability } from "../protocol/capability.ts";
import { TAG_LENGTH } from "../crypto/types.ts";
import { Role } from "../protocol/join.ts";
import { Session, type SessionKeys } from "../protocol/session.ts";
import type { Codec } from "./codec.ts";
import type { ConnectOptions } from "./_handshake.ts";
import { type Home, homeOf, reconnectHome, type RelayAddrs, withOwnConnection } from "./_home.ts";
import type { RelayLink } from "./link.ts";
import type { Subscriber } from "./subscriber.ts";
import { Emitter, type EventHandler } from "./_emitter.ts";
import {
  isTransient,
  type ReconnectEvents,
  type ReconnectOptions,
  withBackoff,
} from "./_reconnect.ts";

/**
 * A frame that is the last one pending closes its segment when the one before it was taken at
 * least this long ago (ms): a stream of up to ~4,000 frames/s signs every frame (none waits for
 * a closing frame); a faster one shares signatures.
 */
const QUIET_MS = 0.25;

/** Options of a producer. */
export interface ProducerOptions<T = Uint8Array> extends ConnectOptions {
  /** Encodes values for {@link Producer.send}. */
  readonly codec?: Codec<T>;
  /**
   * How long a small message may wait for others to share its frame (ms). Default 0: frames
   * are cut as soon as the pipeline is free, so batching happens only under load.
   */
  readonly lingerMs?: number;
  /** Messages smaller than this are batched. Default 8 KiB; 0 disables batching. */
  readonly batchThreshold?: number;
  /** Largest BATCH frame plaintext. Default 64 KiB. */
  readonly maxBatchBytes?: number;
  /** Bytes accepted but not yet written before `broadcast` waits. Default 1 MiB. */
  readonly highWaterMark?: number;
  /**
   * How long `close()` waits for the relay to acknowledge END (ms). Default 5,000. Under the
   * relay's policy `block` the END is taken only once the slowest consumer has made room, so a
   * producer closing far ahead of slow consumers may get `timeout` though nothing is lost: give
   * such streams a longer wait.
   */
  readonly closeTimeoutMs?: number;
  /**
   * Reconnection of a producer made by `connect` (one on a shared `RelayConnection` never
   * reconnects): `false` to fail instead. After reconnecting it resends every frame the relay
   * had not acknowledged and continues the same stream (same epoch, next seq). Default `{}`.
   */
  readonly reconnect?: ReconnectOptions | false;
  /**
   * Acknowledged frames kept for resending too, so that consumers behind a restarted relay
   * lose less. Default 0 (only unacknowledged frames are kept).
   */
  readonly replayFrames?: number;
  /**
   * The most frames one signature covers under load (1 to 64; default 64). A segment also
   * closes whenever the producer has nothing more to send, so at moderate rates each frame is
   * signed anyway; 1 signs every frame (more CPU, and a consumer never holds a frame waiting
   * for a later one).
   */
  readonly segmentFrames?: number;
  /**
   * The read-capability generation of the first stream (default 0): a producer restarted after
   * {@link Producer.rotate} starts at the generation it rotated to, or the relay refuses it
   * (`revoked`) and readers of older tokens could read again.
   */
  readonly generation?: number;
}

/** Events of a producer. */
export interface ProducerEvents extends ReconnectEvents {
  /** The relay holds every frame up to `seq`. */
  ack: { seq: bigint };
  /** {@link Producer.rotate} ended the stream and started the next one, of `generation`. */
  rotated: { generation: number; epoch: Uint8Array };
}

/**
 * The writer of one session.
 *
 * @example
 * ```ts
 * import { Producer } from "./producer.ts";
 * import { Consumer } from "./consumer.ts";
 * import { RelayServer } from "../server/relay.ts";
 * import { Session } from "../protocol/session.ts";
 * import { memoryTransport } from "../transport/memory.ts";
 * import { nativeCrypto } from "../crypto/native.ts";
 * const transport = memoryTransport();
 * const relay = await RelayServer.listen({ transport, port: 0 });
 * const session = Session.generate(nativeCrypto());
 * const consumer = await Consumer.connect(relay.addr, session, { transport });
 * const producer = await Producer.connect(relay.addr, session, { transport });
 * await producer.broadcast(new Uint8Array([1, 2, 3]));
 * await producer.close();
 * for await (const msg of consumer) console.log(msg);
 * await relay.close();
 * ```
 */
export class Producer<T = Uint8Array> {
  #conn: RelayLink;
  readonly #session: Session;
  readonly #keys: SessionKeys;
  /** The stream: epoch, generation, signed start, and the sealer that seals and signs its
   * frames in segments (docs/CAPABILITIES.md "Signed frames"). Replaced by rotate(). */
  #stream: StreamParts;
  readonly #segmentFrames: number;
  /** Set while rotate() runs: messages broadcast meanwhile wait here for the next stream. */
  #rotating: Promise<unknown> | undefined;
  #parked: { message: Uint8Array; done: (error?: unknown) => void }[] = [];
  /** Set when this opened its own connection: where to reconnect; it closes it on close(). */
  readonly #home: Home | undefined;
  readonly #codec: Codec<T> | undefined;
  readonly #linger: number;
  readonly #threshold: number;
  readonly #maxBatch: number;
  readonly #highWater: number;
  readonly #closeTimeout: number;
  readonly #maxPlain: number;
  readonly #events = new Emitter<ProducerEvents>();
  #seq = 0n;
  #acked = -1n;
  #batch: Uint8Array[] = [];
  #batchBytes = 0;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  /** Nothing was pending when the writer last stopped: the next frame follows a quiet spell. */
  #wasIdle = true;
  /** When the writer last took a frame that was the last one pending (ms, `performance.now`). */
  #lastTaken = -Infinity;
  /**
   * Frames not yet handed to the connection, in seq order: sealed (or sealing), except the last
   * one, which waits unsealed until the next frame shows it is not the last (then it leaves its
   * segment open) or the connection is ready for it (then it closes the segment).
   */
  readonly #inflight: Pending[] = [];
  #queued = 0;
  #driving = false;
  #ackWaiters: { seq: bigint; resolve: () => void }[] = [];
  #failure: RelayError | undefined;
  #closing: Promise<void> | undefined;
  /** Frames written and not yet acknowledged (plus the replay window), for resending. */
  readonly #retained: Retained;
  readonly #reconnectOptions: ReconnectOptions | false;
  #reconnecting: Promise<void> | undefined;

  private constructor(
    connection: RelayLink,
    session: Session,
    keys: SessionKeys,
    stream: StreamParts,
    segmentFrames: number,
    options: ProducerOptions<T>,
    home: Home | undefined,
  ) {
    this.#conn = connection;
    this.#retained = new Retained(options.replayFrames ?? 0);
    this.#segmentFrames = segmentFrames;
    this.#reconnectOptions = options.reconnect ?? {};
    this.#session = session;
    this.#keys = keys;
    this.#stream = stream;
    this.#home = home;
    this.#codec = options.codec;
    this.#linger = options.lingerMs ?? 0;
    this.#threshold = options.batchThreshold ?? 8 * 1024;
    this.#maxBatch = options.maxBatchBytes ?? 64 * 1024;
    this.#highWater = options.highWaterMark ?? 1024 * 1024;
    this.#closeTimeout = options.closeTimeoutMs ?? 5000;
    // Room for the longest trailer a segment of this producer's can need.
    this.#maxPlain = connection.hello.maxFrame - (DATA_HEADER - 5) - TAG_LENGTH -
      trailerLength(SEGMENT_FRAMES);
  }

  /**
   * Connects to a relay on a connection of its own and starts a stream.
   * @param addr Relay address, or the addresses of several relays of a cluster (tried in
   *   turn, now and when reconnecting).
   * @param session The session (its key never leaves this process).
   * @param options Connection and producer options.
   * @returns The producer.
   * @throws {RelayError} `producer-exists` when the session has a producer; see
   *   {@link RelayLink.connect} for connection errors.
   */
  static async connect<T = Uint8Array>(
    addr: RelayAddrs,
    session: Session,
    options: ProducerOptions<T> = {},
  ): Promise<Producer<T>> {
    const home = homeOf(addr, options);
    return withOwnConnection(home, (conn) => Producer.open(conn, session, options, home));
  }

  /** @internal Joins on an existing connection; use `connect` or `connection.producer`. */
  static async open<T>(
    conn: RelayLink,
    session: Session,
    options: ProducerOptions<T>,
    home: Home | undefined,
  ): Promise<Producer<T>> {
    if (!(session instanceof Session)) {
      throw new TypeError(
        "a producer needs the session (a write token): a read capability can only consume",
      );
    }
    const segmentFrames = aint(
      options.segmentFrames ?? SEGMENT_FRAMES,
      1,
      SEGMENT_FRAMES,
      "segmentFrames",
    );
    const generation = aint(options.generation ?? 0, 0, MAX_GENERATION, "generation");
    const crypto = conn.crypto;
    const keys = await session.keys(crypto);
    const stream = await newStream(conn.crypto, session, keys, generation, segmentFrames);
    const producer = new Producer<T>(conn, session, keys, stream, segmentFrames, options, home);
    await conn.join(keys, Role.Producer, {}, producer.#subscriber());
    await producer.#announce(conn, 0n);
    return producer;
  }

  /** Sends this stream's STREAM-START, continuing at `firstSeq`. */
  #announce(conn: RelayLink, firstSeq: bigint): Promise<void> {
    return conn.sendControl(streamStart(this.#stream, this.#keys.streamTag, firstSeq));
  }

  /** The current stream's epoch (16 bytes; a new one after {@link Producer.rotate}). */
  get epoch(): Uint8Array {
    return this.#stream.epoch;
  }

  /** The read-capability generation of the current stream. */
  get generation(): number {
    return this.#stream.generation;
  }

  /**
   * The connection currently carrying this producer: the `RelayConnection` it was opened on, or
   * the link `connect` made for it (a new one after a reconnect).
   */
  get connection(): RelayLink {
    return this.#conn;
  }

  #subscriber(): Subscriber {
    return {
      onControl: (m: ControlMessage) => {
        if (m.kind !== ControlKind.Ack) return;
        if (m.seq >= this.#seq) {
          this.#fail(new RelayError("protocol-error", "relay acknowledged a frame never sent"));
          return;
        }
        if (m.seq <= this.#acked) return;
        this.#acked = m.seq;
        this.#retained.trim(m.seq);
        this.#ackWaiters = this.#ackWaiters.filter((w) => {
          if (w.seq > m.seq) return true;
          w.resolve();
          return false;
        });
        this.#events.emit("ack", { seq: m.seq });
      },
      onClose: (e, connection) => connection ? this.#lost(e) : this.#fail(e),
    };
  }

  /** The connection failed: reconnect if that can help, otherwise fail. */
  #lost(e: RelayError): void {
    if (this.#failure !== undefined || this.#reconnecting !== undefined) return;
    const home = this.#home;
    if (home === undefined || this.#reconnectOptions === false || !isTransient(e)) {
      this.#fail(e);
      return;
    }
    const options = this.#reconnectOptions;
    this.#reconnecting = (async () => {
      try {
        const attempt = reconnectHome(home, this.#conn.hello.heartbeatMs);
        const { value: conn, attempts } = await withBackoff(
          options,
          e,
          () => this.#rejoin(attempt),
          {
            retryable: (err) => isTransient(err) || err.code === "producer-exists",
            stopped: () => this.#failure !== undefined,
            onDelay: (attempt, delayMs, error) =>
              this.#events.emit("reconnecting", { attempt, delayMs, error }),
          },
        );
        this.#conn = conn;
        this.#reconnecting = undefined;
        this.#events.emit("reconnected", { attempts });
        if (!this.#driving) this.#drive();
      } catch (err) {
        this.#reconnecting = undefined;
        this.#fail(err as RelayError);
      }
    })();
  }

  /** A new connection: join, continue the stream, resend what the relay may not have. */
  #rejoin(home: Home): Promise<RelayLink> {
    return withOwnConnection(home, async (conn) => {
      await conn.join(this.#keys, Role.Producer, {}, this.#subscriber());
      await this.#announce(conn, this.#retained.firstSeq);
      for (const r of this.#retained.frames) await conn.write(r.frame);
      return conn;
    });
  }

  /** Seq of the next frame. */
  get seq(): bigint {
    return this.#seq;
  }

  /** Highest seq the relay acknowledged (-1 before the first ACK). */
  get acked(): bigint {
    return this.#acked;
  }

  /** Largest message `broadcast` accepts, from the relay's frame limit. */
  get maxMessageBytes(): number {
    return this.#maxPlain - 4;
  }

  /**
   * Subscribes to an event.
   * @returns A function that unsubscribes.
   */
  on<K extends keyof ProducerEvents>(
    event: K,
    listener: EventHandler<ProducerEvents[K]>,
  ): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * Sends one message to every consumer. The bytes are consumed (copied or sealed) before
   * this returns, so the caller may reuse the buffer at once.
   * @param message The message (0 bytes up to {@link maxMessageBytes}).
   * @returns Resolves at once while less than `highWaterMark` bytes are queued, otherwise
   *   when the queue drained (await it for backpressure).
   * @throws {RelayError} the connection's failure, or `closed` after `close()`;
   *   {RangeError} for a message over the limit.
   */
  broadcast(message: Uint8Array): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#closing !== undefined) {
      return Promise.reject(new RelayError("closed", "producer is closed"));
    }
    abytes(message, undefined, "message");
    if (message.length > this.maxMessageBytes) {
      return Promise.reject(
        new RangeError(
          `message of ${message.length} bytes exceeds the relay's limit of ${this.maxMessageBytes}`,
        ),
      );
    }
    if (this.#rotating !== undefined) return this.#park(message.slice());
    return this.#enqueue(message);
  }

  /** Batches or seals a checked message (see {@link Producer.broadcast}). */
  #enqueue(message: Uint8Array): Promise<void> {
    if (message.length < this.#threshold) {
      if (this.#batchBytes + 4 + message.length > this.#maxBatch) this.#cut(0);
      this.#batch.push(message.slice());
      this.#batchBytes += 4 + message.length;
      this.#queued += message.length;
      if (this.#batchBytes >= this.#maxBatch) this.#cut(0);
      else if (!this.#driving && this.#linger === 0) this.#cut(0);
      else if (this.#linger > 0) {
        this.#lingerTimer ??= setTimeout(() => {
          this.#lingerTimer = undefined;
          this.#cut(0);
        }, this.#linger);
      }
    } else {
      this.#cut(0);
      this.#seal(message, 0);
    }
    return this.#queued > this.#highWater ? this.#whenDrained() : Promise.resolve();
  }

  /**
   * Encodes a value with the `codec` option and broadcasts it.
   * @throws {TypeError} when no codec was given.
   */
  send(value: T): Promise<void> {
    if (this.#codec === undefined) {
      return Promise.reject(new TypeError('send() needs the "codec" option'));
    }
    return this.broadcast(this.#codec.encode(value));
  }

  /**
   * Seals and writes everything broadcast so far.
   * @returns When the connection accepted all of it.
   */
  async flush(): Promise<void> {
    this.#cut(0);
    if (this.#driving || this.#inflight.length > 0) await this.#whenDrained(true);
    if (this.#failure !== undefined) throw this.#failure;
  }

  /**
   * Ends the stream cleanly: seals what is pending with END, waits until the relay
   * acknowledged it, then leaves (and closes the connection if `connect` opened it).
   * Idempotent.
   * @throws {RelayError} when the stream could not be finished (connection lost, timeout).
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        // A rotation under way finishes first (its parked messages go to the new stream).
        while (this.#rotating !== undefined) await this.#rotating.catch(() => {});
        if (this.#failure !== undefined) throw this.#failure;
        this.#cut(DataFlag.End);
        await this.#endWritten(this.#seq - 1n);
      } finally {
        this.#failure ??= new RelayError("closed", "producer is closed");
        if (this.#home !== undefined) await this.#conn.close();
        else await this.#conn.leave(this.#keys.streamTag, Role.Producer);
      }
    })();
    return this.#closing;
  }

  /**
   * Waits until the relay acknowledged the stream's END (at `endSeq`), written by now or soon.
   * @throws {RelayError} the producer's failure, or `timeout` after `closeTimeoutMs`.
   */
  async #endWritten(endSeq: bigint): Promise<void> {
    await this.#whenDrained(true);
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#acked >= endSeq) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.#ackWaiters.push({ seq: endSeq, resolve })),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new RelayError("timeout", "relay did not acknowledge the end of stream"));
        }, this.#closeTimeout);
      }),
    ]).finally(() => clearTimeout(timer));
    if (this.#acked < endSeq) throw this.#failure ?? new RelayError("closed", "closed");
  }

  /**
   * Rotates the read capability (docs/CAPABILITIES.md "Rotation and revocation"): ends the
   * current stream with an END naming the next generation, waits until the relay holds it, and
   * starts a new stream of that generation on the same connection. Consumers holding the new
   * generation (the returned capability, handed over with `consumer.grant()`, or a token minted
   * ahead with `session.readOnly()`) continue without a gap and see a `rotated` event; the relay
   * ends readers holding only older generations (`revoked`), and their tokens cannot derive the
   * new stream's keys anyway. Messages broadcast while it runs go to the new stream, in order.
   * Calls queue behind each other.
   * @param generation The new generation (default: the current one + 1; must be higher).
   * @returns The read capability of the new generation.
   * @throws {RangeError} for a generation not above the current one; {RelayError} when the
   *   old stream could not be ended (connection failed, timeout): the producer has then failed.
   */
  rotate(generation?: number): Promise<ReadCapability> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#closing !== undefined) {
      return Promise.reject(new RelayError("closed", "producer is closed"));
    }
    const before = this.#rotating ?? Promise.resolve();
    const run = before.catch(() => {}).then(() => this.#rotateNow(generation));
    const mine = run.finally(() => {
      if (this.#rotating !== mine) return; // a later rotation unparks
      this.#rotating = undefined;
      this.#unpark();
    });
    mine.catch(() => {});
    this.#rotating = mine;
    return run;
  }

  async #rotateNow(requested: number | undefined): Promise<ReadCapability> {
    if (this.#failure !== undefined) throw this.#failure;
    const from = this.#stream.generation;
    const generation = aint(requested ?? from + 1, from + 1, MAX_GENERATION, "generation");
    const conn = this.#conn;
    const [capability, next] = await Promise.all([
      ReadCapability.mint(conn.crypto, this.#session, generation),
      newStream(conn.crypto, this.#session, this.#keys, generation, this.#segmentFrames),
    ]);
    if (this.#failure !== undefined) throw this.#failure;
    // What was broadcast before rotate() closes the old stream; the END names the next one.
    this.#cut(0);
    const named = new Uint8Array(4);
    writeU32BE(named, 0, generation);
    this.#seal(named, DataFlag.End | DataFlag.Rotate);
    try {
      await this.#endWritten(this.#seq - 1n);
      while (this.#reconnecting !== undefined) await this.#reconnecting;
      if (this.#failure !== undefined) throw this.#failure;
    } catch (e) {
      const err = e instanceof RelayError ? e : new RelayError("protocol-error", String(e));
      this.#fail(err);
      throw err;
    }
    // The old stream is over at the relay: the next one starts at seq 0, synchronously here
    // so that a reconnect from now on announces the new stream.
    this.#stream = next;
    this.#seq = 0n;
    this.#acked = -1n;
    this.#retained.reset();
    this.#wasIdle = true;
    await this.#announce(this.#conn, 0n);
    this.#events.emit("rotated", { generation, epoch: next.epoch });
    return capability;
  }

  /**
   * Holds a message broadcast while rotate() runs, for the next stream.
   * @returns At once while the parked bytes stay under `highWaterMark`, otherwise once the
   *   message is queued on the new stream.
   */
  #park(message: Uint8Array): Promise<void> {
    const held = this.#parked.reduce((n, p) => n + p.message.length, 0) + message.length;
    if (held <= this.#highWater) {
      this.#parked.push({ message, done: () => {} });
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      this.#parked.push({ message, done: (e) => e === undefined ? resolve() : reject(e) });
    });
  }

  /** The rotation is over: parked messages go to the new stream (or fail with the producer). */
  #unpark(): void {
    const parked = this.#parked;
    this.#parked = [];
    for (const p of parked) {
      if (this.#failure !== undefined) p.done(this.#failure);
      else this.#enqueue(p.message).then(() => p.done(), (e) => p.done(e));
    }
  }

  /** Cuts the pending batch into a frame (END adds the flag, even to an empty frame). */
  #cut(flags: number): void {
    if (this.#lingerTimer !== undefined) clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    const batch = this.#batch;
    if (batch.length === 0) {
      if (flags !== 0) this.#seal(new Uint8Array(0), flags);
      return;
    }
    this.#batch = [];
    this.#batchBytes = 0;
    this.#queued -= batch.reduce((n, m) => n + m.length, 0);
    if (batch.length === 1 && (flags & DataFlag.End) === 0) {
      this.#seal(batch[0]!, flags);
    } else {
      this.#seal(encodeBatch(batch), flags | DataFlag.Batch);
    }
  }

  /** Queues the next frame (see {@link Producer.#inflight} for when it is sealed). */
  #seal(plaintext: Uint8Array, flags: number): void {
    const tail = this.#inflight.at(-1);
    if (tail !== undefined && tail.frame === undefined) this.#stream.sealer.seal(tail, false);
    const pending: Pending = {
      frame: undefined,
      plaintext,
      flags,
      size: plaintext.length,
      seq: this.#seq++,
      trailer: 0,
    };
    this.#queued += pending.size;
    this.#inflight.push(pending);
    if ((flags & DataFlag.End) !== 0) this.#stream.sealer.seal(pending, true);
    if (!this.#driving && this.#reconnecting === undefined) this.#drive();
  }

  async #drive(): Promise<void> {
    this.#driving = true;
    // Messages that arrived while an earlier loop was writing wait in the batch for it to cut
    // them; a loop that ended on a lost connection left them there, and no later broadcast
    // may come: they form the first frame now.
    if (this.#inflight.length === 0 && this.#batch.length > 0 && this.#linger === 0) this.#cut(0);
    try {
      while (
        this.#inflight.length > 0 && this.#failure === undefined &&
        this.#reconnecting === undefined
      ) {
        const head = this.#inflight[0]!;
        // The last frame pending, and the connection is ready for it. The first one after the
        // producer was idle, or after a quiet spell (QUIET_MS), closes its segment at once (so
        // at moderate rates every frame is signed and waits for no other); while frames keep
        // coming, segments run on and close at their limit, or with an empty frame once the
        // burst is written.
        if (head.frame === undefined) {
          const now = performance.now();
          this.#stream.sealer.seal(head, this.#wasIdle || now - this.#lastTaken >= QUIET_MS);
          this.#lastTaken = now;
        }
        this.#wasIdle = false;
        const frame = await head.frame!;
        await this.#stream.sealer.finish(head, frame);
        // Retained before writing: if this write is lost with the connection, the
        // reconnect resends it.
        this.#inflight.shift();
        this.#queued -= head.size;
        this.#retained.push(frame);
        await this.#conn.write(frame);
        if (this.#queued <= this.#highWater) this.#wakeDrained(false);
        // Messages that arrived while we were busy form the next frame.
        if (this.#inflight.length === 0 && this.#batch.length > 0 && this.#linger === 0) {
          this.#cut(0);
        }
        // The burst is written and its segment still open: close it (a BATCH of no messages).
        if (
          this.#inflight.length === 0 && this.#batch.length === 0 && this.#stream.sealer.segmentOpen
        ) {
          this.#seal(encodeBatch([]), DataFlag.Batch);
          this.#stream.sealer.seal(this.#inflight[0]!, true);
        }
      }
    } catch (e) {
      const err = e instanceof RelayError ? e : new RelayError("protocol-error", String(e));
      // A lost connection already started reconnecting (or failed us) through #lost.
      if (this.#reconnecting === undefined) this.#lost(err);
    } finally {
      this.#driving = false;
      if (this.#inflight.length === 0 && this.#batch.length === 0) this.#wasIdle = true;
      this.#wakeDrained(true);
    }
  }

  #drainWaiters: { all: boolean; resolve: () => void }[] = [];

  #whenDrained(all = false): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (all ? !this.#driving && this.#inflight.length === 0 : this.#queued <= this.#highWater) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.#drainWaiters.push({ all, resolve })).then(() => {
      if (this.#failure !== undefined) throw this.#failure;
    });
  }

  #wakeDrained(finished: boolean): void {
    if (this.#drainWaiters.length === 0) return;
    const done = (finished && this.#inflight.length === 0) || this.#failure !== undefined;
    this.#drainWaiters = this.#drainWaiters.filter((w) => {
      if (w.all ? !done : !done && this.#queued > this.#highWater) return true;
      w.resolve();
      return false;
    });
  }

  #fail(e: RelayError): void {
    if (this.#failure !== undefined) return;
    this.#failure = e;
    this.#wakeDrained(true);
    for (const w of this.#ackWaiters) w.resolve();
    this.#ackWaiters = [];
  }
}
