/**
 * @module
 * `RelaySession`: the relay's state for one route id (docs/PROTOCOL.md §6.4) — one ring of
 * recent frames, the producer slot and every consumer's cursor into the ring. This class is the
 * session's only door; what it does lives in src/server/session/ by concern: consumers.ts
 * (joining, policies, reading the ring), producer.ts (admission, streams, appending, a lost
 * producer), mirror.ts (a stream from another relay of a cluster), eviction.ts (what the ring
 * may evict, room for the producer), lifetime.ts (grace, waiting, linger) and types.ts (the
 * contracts with connections, the relay and a cluster).
 */

import type { ControlMessage, PolicyName, StreamStart } from "../protocol/control.ts";
import { fingerprint } from "./log.ts";
import { Ring } from "./ring.ts";
import { isLocalProducer, nextSeq, type SessionState } from "./session/_state.ts";
import {
  addConsumer,
  addUplink,
  grantConsumer,
  released,
  removeConsumer,
  removeUplink,
  take,
} from "./session/consumers.ts";
import { blockingFloor, hasRoom, notifyRoom } from "./session/eviction.ts";
import { closeSession } from "./session/lifetime.ts";
import { mirrorData, mirrorLeft, mirrorStart } from "./session/mirror.ts";
import { appendData, releaseProducer, setProducer, startStream } from "./session/producer.ts";
import type {
  Context,
  Cursor,
  Floor,
  Observer,
  Origin,
  Outgoing,
  SubscriberConn,
} from "./session/types.ts";

export { REMOTE_ORIGIN } from "./session/types.ts";
export type { Floor, Origin, Outgoing, SessionCounters, SubscriberConn } from "./session/types.ts";

/** A consumer: a cursor into the session's ring. */
export type ConsumerSub = Cursor<RelaySession>;
/** Told when the producer slot changes hands (a cluster claims and releases slots). */
export type SessionObserver = Observer<RelaySession>;
/** The relay-wide context a session reports to. */
export type SessionContext = Context<RelaySession>;

/**
 * The relay's state for one route id.
 *
 * @example
 * ```ts
 * import { RelaySession } from "./session.ts";
 * import { Logger } from "./log.ts";
 * import { DEFAULT_LIMITS } from "./options.ts";
 * const s = new RelaySession(new Uint8Array(32), new Uint8Array(8), {
 *   limits: DEFAULT_LIMITS, log: new Logger("off", () => {}),
 *   counters: { lagged: 0, slowDisconnects: 0 }, onIdle: () => {},
 * });
 * s.consumers.size; // 0
 * ```
 */
export class RelaySession {
  /** The session's route id (Ed25519 public key). */
  readonly routeId: Uint8Array;
  /** The 8-byte stream tag. */
  readonly tag: Uint8Array;
  /** Route id fingerprint for logs. */
  readonly name: string;
  readonly #st: SessionState;

  /**
   * @param routeId The route id.
   * @param tag Its stream tag.
   * @param ctx Limits, logger, counters, idle callback.
   */
  constructor(routeId: Uint8Array, tag: Uint8Array, ctx: SessionContext) {
    this.routeId = routeId;
    this.tag = tag;
    this.name = fingerprint(routeId);
    const st: SessionState = {
      self: this,
      routeId,
      tag,
      name: this.name,
      ctx: ctx as Context<unknown>,
      ring: new Ring(ctx.memory, () => released(st)),
      producer: undefined,
      consumers: new Set(),
      uplinks: new Set(),
      origin: "none",
      stream: undefined,
      streams: 0,
      generation: 0,
      nextNum: 0,
      nextBig: 0n,
      resumeFloor: 0n,
      endIndex: -1,
      blockers: 0,
      blockBound: Infinity,
      roomWaiters: [],
      remoteFloor: undefined,
      graceTimer: undefined,
      waitTimer: undefined,
      lingerTimer: undefined,
      closed: false,
      wakeQueued: false,
      borrowers: new Set(),
    };
    this.#st = st;
  }

  /** The connection holding the producer slot. */
  get producer(): SubscriberConn | undefined {
    return this.#st.producer;
  }

  /** Joined consumers. */
  get consumers(): ReadonlySet<ConsumerSub> {
    return this.#st.consumers as Set<ConsumerSub>;
  }

  /** Where the current (or last) stream came from: a local producer or a cluster peer. */
  get origin(): Origin {
    return this.#st.origin;
  }

  /** Entries held in the ring. */
  get ringFrames(): number {
    return this.#st.ring.size;
  }

  /** The most entries the ring holds (`ringFrames`). */
  get ringFrameLimit(): number {
    return this.#st.ctx.limits.ringFrames;
  }

  /** Log index of the oldest entry held: a cursor below it has been overtaken. */
  get ringBase(): number {
    return this.#st.ring.base;
  }

  /** Bytes held in the ring. */
  get ringBytes(): number {
    return this.#st.ring.bytes;
  }

  /** The seq the producer must send next. */
  get nextSeq(): bigint {
    return nextSeq(this.#st);
  }

  /** A producer on this relay holds the slot. */
  get localProducer(): boolean {
    return isLocalProducer(this.#st);
  }

  /** The stream lost its producer and waits for it to come back (the grace period). */
  get inGrace(): boolean {
    return this.#st.graceTimer !== undefined;
  }

  /** The current stream's start, if a stream is live or in its grace period. */
  get currentStream(): StreamStart | undefined {
    const s = this.#st.stream;
    return s !== undefined && !s.ended ? s.start : undefined;
  }

  /** Whether the current stream has ended (END seen). */
  get ended(): boolean {
    return this.#st.stream?.ended ?? false;
  }

  // ---- consumers (session/consumers.ts) ---------------------------------------------------

  /**
   * Adds a consumer. Normally at the live head: if a stream is live, the caller sends the
   * returned STREAM-START (after JOINED) before anything from the ring. A consumer resuming
   * the current stream (`resume` names its epoch) continues at `resume.nextSeq` from the ring,
   * after a LAGGED notice if part of what it needs was evicted.
   * @param conn Its connection.
   * @param requested The policy it asked for (the stricter of it and the relay's applies).
   * @param resume Its resume point, if any.
   * @param generation The read-capability generation it proved (`undefined`: a write token).
   * @returns The subscription and the control messages to send right after JOINED.
   * @throws {RelayError} `revoked` for a reader of a generation older than the session's.
   */
  addConsumer(
    conn: SubscriberConn,
    requested: PolicyName | undefined,
    resume?: { readonly epoch: Uint8Array; readonly nextSeq: bigint },
    generation?: number,
  ): { sub: ConsumerSub; first: ControlMessage[] } {
    const r = addConsumer(this.#st, conn, requested, resume, generation);
    return r as { sub: ConsumerSub; first: ControlMessage[] };
  }

  /**
   * A joined reader proved one more generation (GRANT).
   * @param sub The consumer.
   * @param generation The generation.
   * @throws {RelayError} `revoked` below the session's generation; `protocol-error` for a
   *   write-token consumer.
   */
  grantConsumer(sub: ConsumerSub, generation: number): void {
    grantConsumer(this.#st, sub, generation);
  }

  /** The newest read-capability generation a stream of this session was started for. */
  get generation(): number {
    return this.#st.generation;
  }

  /**
   * Removes a consumer (left, disconnected or failed).
   * @param sub The consumer.
   */
  removeConsumer(sub: ConsumerSub): void {
    removeConsumer(this.#st, sub);
  }

  /**
   * Adds a reader of the ring that is not a consumer (the cluster's uplink): it starts at
   * the live head, follows the current stream, is skipped ahead rather than blocking, and
   * neither counts as a consumer nor keeps the session alive. Read it with {@link take}.
   * @param conn Told when there is something to read.
   * @returns Its cursor.
   */
  addUplink(conn: SubscriberConn): ConsumerSub {
    return addUplink(this.#st, conn) as ConsumerSub;
  }

  /**
   * Removes an uplink.
   * @param sub The uplink.
   */
  removeUplink(sub: ConsumerSub): void {
    removeUplink(this.#st, sub);
  }

  /**
   * What a consumer's connection should send next: runs of whole frames exactly as
   * received (the ring's runs: frames back to back in one buffer, one view each), and
   * control events. O(runs + events) per call, whatever the number of frames.
   * @param sub The consumer.
   * @param budget Stop after about this many bytes.
   * @returns The items, in order; empty when the consumer is caught up.
   */
  take(sub: ConsumerSub, budget: number): Outgoing[] {
    return take(this.#st, sub, budget);
  }

  // ---- producer (session/producer.ts) -----------------------------------------------------

  /**
   * Claims the producer slot.
   * @param conn The producer's connection.
   * @throws {RelayError} `producer-exists` when taken.
   */
  setProducer(conn: SubscriberConn): void {
    setProducer(this.#st, conn);
  }

  /**
   * Starts (or resumes) a stream announced by the producer, whose signature the caller
   * verified.
   * @param start The announcement.
   * @throws {RelayError} `protocol-error` for an impossible first seq.
   */
  startStream(start: StreamStart): void {
    startStream(this.#st, start);
  }

  /**
   * Appends one data frame from the producer, after {@link hasRoom} said yes.
   * @param buf Holds the whole frame as received: `length` bytes at `offset` (default: all).
   * @param seq Its seq: a number up to 2^53 - 1 (the fast path), or a bigint.
   * @param flags Its flags.
   * @param offset Where the frame starts in `buf`.
   * @param length The frame's length.
   * @returns Whether the frame was appended (`false`: a resent duplicate, dropped).
   * @throws {RelayError} `protocol-error` on a wrong seq or data outside a stream.
   */
  appendData(
    buf: Uint8Array,
    seq: number | bigint,
    flags: number,
    offset = 0,
    length: number = buf.byteLength - offset,
  ): boolean {
    return appendData(this.#st, buf, seq, flags, offset, length);
  }

  /**
   * The producer's connection is gone or it left.
   * @param clean Whether its stream ended with END (no grace, no PRODUCER-LEFT).
   */
  releaseProducer(clean: boolean): void {
    releaseProducer(this.#st, clean);
  }

  // ---- room for the producer (session/eviction.ts) ----------------------------------------

  /**
   * Whether the ring can take a frame of `size` bytes now; evicts what it may. Under the
   * `block` policy an entry some blocking consumer still needs is never evicted.
   * @param size The frame's size.
   * @returns Whether it fits.
   */
  hasRoom(size: number): boolean {
    return hasRoom(this.#st, size);
  }

  /** Resolves when a blocking consumer advanced or left. */
  roomChanged(): Promise<void> {
    return new Promise((resolve) => this.#st.roomWaiters.push(resolve));
  }

  // ---- cluster (session/mirror.ts, eviction.ts) -------------------------------------------

  /**
   * A stream announced by the relay holding the producer (its signature verified by the
   * caller). `start.firstSeq` is the first frame this relay will receive. The same epoch as
   * the current stream continues it: frames in between that never arrived become a LAGGED
   * gap. Ignored while a local producer holds the slot.
   * @param start The announcement.
   * @returns Whether it was taken.
   */
  mirrorStart(start: StreamStart): boolean {
    return mirrorStart(this.#st, start);
  }

  /**
   * A data frame of a mirrored stream, as the origin relay received it. Never waits: the
   * ring evicts whatever it must (consumers it overtakes get LAGGED, or are disconnected under
   * policy `disconnect`), and a frame that did not arrive becomes a LAGGED gap.
   * @param bytes The frame.
   * @param seq Its seq.
   * @param flags Its flags.
   * @returns Whether it was appended (not: no mirrored stream, or a duplicate).
   */
  mirrorData(bytes: Uint8Array, seq: bigint, flags: number): boolean {
    return mirrorData(this.#st, bytes, seq, flags);
  }

  /**
   * The origin relay says its producer was lost (in its grace period) or is gone for good
   * (`gone`); or this relay stopped hearing from the origin. Mirrored consumers see
   * PRODUCER-LEFT as for a local producer, and the grace period runs here too.
   * @param gone Whether the producer is gone for good.
   */
  mirrorLeft(gone: boolean): void {
    mirrorLeft(this.#st, gone);
  }

  /**
   * Cluster, origin side: blocking consumers on other relays still need frames of the live
   * stream from `floor.seq` on, so those are not evicted and the producer waits as for a local
   * blocking consumer. A floor naming another epoch (such a relay has not seen this stream's
   * start yet) holds every frame of the stream. `undefined` lifts the hold.
   * @param floor The strictest hold, or `undefined`.
   */
  setRemoteFloor(floor: Floor | undefined): void {
    this.#st.remoteFloor = floor;
    notifyRoom(this.#st);
  }

  /**
   * Cluster, mirror side: what the local blocking consumers still need — the current stream's
   * epoch and the lowest seq one of them has not taken (the next seq when all are caught up);
   * while no stream is live, a zero epoch: all of the next one. `undefined` without blocking
   * consumers.
   * @returns The floor.
   */
  blockingFloor(): Floor | undefined {
    return blockingFloor(this.#st);
  }

  /** Stops the timers (relay shutdown or session idle). */
  close(): void {
    closeSession(this.#st);
  }
}
