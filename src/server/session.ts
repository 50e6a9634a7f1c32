/**
 * @module
 * One session at the relay (docs/PROTOCOL.md §6.4): the producer slot, the consumers (each a
 * cursor into the ring), the current stream, and the timers for the producer's grace period
 * and the consumers' wait for a producer. The relay cannot read anything here: it sees the
 * route id, stream tags, sequence numbers and sealed bytes.
 */

import { RelayError } from "../errors.ts";
import {
  ControlKind,
  type ControlMessage,
  LeftReason,
  type PolicyName,
  type StreamStart,
} from "../protocol/control.ts";
import { DataFlag } from "../protocol/data_frame.ts";
import { equals } from "../bytes.ts";
import { Role } from "../protocol/join.ts";
import { EPOCH_LENGTH } from "../protocol/session.ts";
import { fingerprint, type Logger } from "./log.ts";
import type { RelayLimits } from "./options.ts";
import { type EventEntry, type MemoryAccount, Ring } from "./ring.ts";

/** What a session needs from the connection a subscription lives on. */
export interface SubscriberConn {
  /** Connection number for logs. */
  readonly id: number;
  /** The connection has something new to send. */
  wake(): void;
  /**
   * Whether the connection may still hold a view of ring memory: runs taken and not yet
   * written, or written and not yet handed to the OS (`writableLength` > 0). The ring reuses
   * its slabs only while no connection that took from it says so (src/server/ring.ts).
   */
  readonly holding: boolean;
}

/**
 * The producer slot's holder when the session's producer is on another relay of a cluster
 * (src/server/cluster/): this relay mirrors a stream it receives over NATS.
 */
export const REMOTE_ORIGIN: SubscriberConn = { id: 0, wake() {}, holding: false };

/** Where the session's current stream comes from. */
export type Origin = "none" | "local" | "remote";

/** Told when the producer slot changes hands (a cluster claims and releases slots). */
export interface SessionObserver {
  /** A producer joined or left, or its grace period ran out. */
  producerChanged(session: RelaySession): void;
  /**
   * A consumer with policy `block` joined, took frames or left while no local producer holds
   * the slot (the stream comes, or will come, from another relay):
   * {@link RelaySession.blockingFloor} may have moved.
   */
  blockersMoved?(session: RelaySession): void;
}

/** A consumer: a cursor into the session's ring. */
export interface ConsumerSub {
  readonly conn: SubscriberConn;
  readonly session: RelaySession;
  readonly policy: PolicyName;
  /** Log index of the next entry to send. */
  cursor: number;
  /** Seq of the next data frame this consumer expects (for LAGGED). */
  nextSeq: bigint;
  /** Relay-local number of the stream whose start this consumer has received (0 = none). */
  stream: number;
  /** Data frames below this seq are not sent (a resumed consumer already has them). */
  skipBelow: bigint;
  /** A resume point for a stream this relay did not know at join time (it restarted). */
  resume?: { readonly epoch: Uint8Array; readonly nextSeq: bigint } | undefined;
  /** Removed from the session. */
  done: boolean;
}

/** What {@link RelaySession.take} hands a connection to send, in order. */
export type Outgoing =
  | { readonly kind: "bytes"; readonly bytes: Uint8Array; readonly frames: number }
  | { readonly kind: "control"; readonly message: ControlMessage }
  | { readonly kind: "end"; readonly error?: RelayError };

/** Counters the relay aggregates into `stats()`. */
export interface SessionCounters {
  lagged: number;
  slowDisconnects: number;
  /** Gaps in mirrored streams: frames that never arrived from the cluster. */
  mirrorGaps?: number;
}

interface Stream {
  readonly id: number;
  readonly start: StreamStart;
  ended: boolean;
  /** Started by a cluster peer (mirrored here). */
  readonly remote: boolean;
}

/** The relay-wide context a session reports to. */
export interface SessionContext {
  readonly limits: RelayLimits;
  readonly log: Logger;
  readonly counters: SessionCounters;
  /** Called when the session has neither producer nor consumers nor pending grace. */
  readonly onIdle: (session: RelaySession) => void;
  /** The relay-wide ring memory account (default: unbounded, for standalone use). */
  readonly memory?: MemoryAccount;
  /** Told about producer slot changes (cluster mode). */
  readonly observer?: SessionObserver;
}

const STRICTNESS: Record<PolicyName, number> = { drop: 0, disconnect: 1, block: 2 };

/** Where blocking consumers are in a stream: its epoch and the lowest seq still needed. */
export interface Floor {
  readonly epoch: Uint8Array;
  readonly seq: bigint;
}

/** The epoch of a {@link Floor} before any stream: "all of the next stream". */
const NO_EPOCH = new Uint8Array(EPOCH_LENGTH);

/** Entries a mirrored ring may hold beyond `ringFrames` for blocking consumers. */
const MIRROR_SLACK = 8;
/** The largest seq kept as a double. */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

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
  /** The connection holding the producer slot. */
  producer: SubscriberConn | undefined;
  /** Joined consumers. */
  readonly consumers: Set<ConsumerSub> = new Set();
  /** Where the current (or last) stream came from: a local producer or a cluster peer. */
  origin: Origin = "none";
  /** Readers of the ring that are not consumers (a cluster's uplink): not counted, never
   * blocking, never keeping the session alive. */
  readonly #uplinks = new Set<ConsumerSub>();
  readonly #ring: Ring;
  readonly #ctx: SessionContext;
  #stream: Stream | undefined;
  #streams = 0;
  /** The next seq while it is at most 2^53 - 1 (always, in practice), else NaN. */
  #nextNum = 0;
  /** The next seq once it is above 2^53 - 1. */
  #nextBig = 0n;
  /** Frames below this seq are duplicates a resuming producer may resend; dropped. */
  #resumeFloor = 0n;
  /** Log index of the END frame of the last ended stream. */
  #endIndex = -1;
  #blockers = 0;
  /**
   * At most the lowest cursor of a blocking consumer (Infinity: none yet). Cursors only move
   * forward, except that a resuming consumer may be placed behind the others (then lowered),
   * so the exact minimum, O(consumers), is computed only when this bound says "maybe".
   */
  #blockBound = Infinity;
  #roomWaiters: (() => void)[] = [];
  /** What blocking consumers on other relays of a cluster still need (origin side). */
  #remoteFloor: Floor | undefined;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #waitTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #wakeQueued = false;
  /** Connections that took (borrowed) views of ring memory and may hold them still. */
  readonly #borrowers = new Set<SubscriberConn>();

  /**
   * @param routeId The route id.
   * @param tag Its stream tag.
   * @param ctx Limits, logger, counters, idle callback.
   */
  constructor(routeId: Uint8Array, tag: Uint8Array, ctx: SessionContext) {
    this.routeId = routeId;
    this.tag = tag;
    this.name = fingerprint(routeId);
    this.#ctx = ctx;
    this.#ring = new Ring(ctx.memory, () => this.#released());
  }

  /** Entries held in the ring. */
  get ringFrames(): number {
    return this.#ring.size;
  }

  /** The most entries the ring holds (`ringFrames`). */
  get ringFrameLimit(): number {
    return this.#ctx.limits.ringFrames;
  }

  /** Log index of the oldest entry held: a cursor below it has been overtaken. */
  get ringBase(): number {
    return this.#ring.base;
  }

  /** Bytes held in the ring. */
  get ringBytes(): number {
    return this.#ring.bytes;
  }

  /** The seq the producer must send next. */
  get nextSeq(): bigint {
    return this.#nextSeq;
  }

  /**
   * The next seq, kept as a double below 2^53 so that appending a frame makes no BigInt
   * (`appendData`'s fast path reads and advances `#nextNum` itself).
   */
  get #nextSeq(): bigint {
    return this.#nextNum >= 0 ? BigInt(this.#nextNum) : this.#nextBig;
  }

  set #nextSeq(next: bigint) {
    if (next <= MAX_SAFE) this.#nextNum = Number(next);
    else {
      this.#nextNum = NaN; // equal to no number: appendData's fast path never matches
      this.#nextBig = next;
    }
  }

  /** A producer on this relay holds the slot. */
  get localProducer(): boolean {
    return this.producer !== undefined && this.producer !== REMOTE_ORIGIN;
  }

  /** The stream lost its producer and waits for it to come back (the grace period). */
  get inGrace(): boolean {
    return this.#graceTimer !== undefined;
  }

  /** The current stream's start, if a stream is live or in its grace period. */
  get currentStream(): StreamStart | undefined {
    return this.#stream !== undefined && !this.#stream.ended ? this.#stream.start : undefined;
  }

  // ---- consumers ----------------------------------------------------------------------

  /**
   * Adds a consumer. Normally at the live head: if a stream is live, the caller sends the
   * returned STREAM-START (after JOINED) before anything from the ring. A consumer resuming
   * the current stream (`resume` names its epoch) continues at `resume.nextSeq` from the ring,
   * after a LAGGED notice if part of what it needs was evicted.
   * @returns The subscription and the control messages to send right after JOINED.
   */
  addConsumer(
    conn: SubscriberConn,
    requested: PolicyName | undefined,
    resume?: { readonly epoch: Uint8Array; readonly nextSeq: bigint },
  ): { sub: ConsumerSub; first: ControlMessage[] } {
    const relayPolicy = this.#ctx.limits.policy;
    const policy = requested !== undefined && STRICTNESS[requested] > STRICTNESS[relayPolicy]
      ? requested
      : relayPolicy;
    const s = this.#stream;
    const live = s !== undefined && !s.ended ? s : undefined;
    const sub: ConsumerSub = {
      conn,
      session: this,
      policy,
      cursor: this.#ring.end,
      nextSeq: this.#nextSeq,
      stream: live?.id ?? 0,
      skipBelow: 0n,
      done: false,
    };
    const first: ControlMessage[] = [];
    if (resume !== undefined && s !== undefined && equals(s.start.epoch, resume.epoch)) {
      this.#resumeAt(sub, s, resume.nextSeq, first);
    } else if (live !== undefined) {
      first.push({ kind: ControlKind.StreamStart, ...live.start, firstSeq: this.#nextSeq });
    } else if (resume !== undefined) {
      // The stream may come back (its producer resuming here): then skip what it has.
      sub.resume = { epoch: resume.epoch.slice(), nextSeq: resume.nextSeq };
    }
    this.consumers.add(sub);
    this.#inUse();
    if (policy === "block") {
      this.#blockers++;
      this.#blockBound = Math.min(this.#blockBound, sub.cursor);
      this.#blockersMoved();
    }
    this.#checkWait();
    return { sub, first };
  }

  /** Places a resuming consumer's cursor at `next` of stream `s`, or says what is gone. */
  #resumeAt(sub: ConsumerSub, s: Stream, next: bigint, first: ControlMessage[]): void {
    sub.stream = s.id;
    sub.nextSeq = next;
    const ring = this.#ring;
    let oldest: { index: number; seq: bigint } | undefined;
    for (let i = ring.end - 1; i >= ring.base; i--) {
      if (ring.event(i) !== undefined || ring.stream(i) !== s.id) continue;
      const seq = ring.seq(i);
      if (seq === next) {
        sub.cursor = i;
        return;
      }
      oldest = { index: i, seq };
    }
    if (next >= this.#nextSeq) {
      // Caught up (or ahead of a relay that restarted): live frames it already has are skipped.
      sub.skipBelow = next;
      return;
    }
    const to = oldest !== undefined && oldest.seq > next ? oldest.seq : this.#nextSeq;
    if (oldest !== undefined && oldest.seq > next) sub.cursor = oldest.index;
    first.push(lagged(this.tag, next, to));
    sub.nextSeq = to;
    this.#ctx.counters.lagged++;
  }

  /** Removes a consumer (left, disconnected or failed). */
  removeConsumer(sub: ConsumerSub): void {
    if (sub.done) return;
    sub.done = true;
    this.consumers.delete(sub);
    // A departed consumer must not stay referenced until the ring next needs a slab (a ring of
    // large reads never does): forget it now unless its socket still holds views, and sweep
    // those left over once they outnumber the readers (amortised O(1) per removal).
    if (!sub.conn.holding) this.#borrowers.delete(sub.conn);
    if (this.#borrowers.size > 2 * (this.consumers.size + this.#uplinks.size) + 64) {
      this.#pruneBorrowers();
    }
    if (sub.policy === "block") {
      this.#blockers--;
      this.#notifyRoom();
    }
    this.#checkWait();
    this.#maybeIdle();
  }

  /**
   * Adds a reader of the ring that is not a consumer (the cluster's uplink): it starts at
   * the live head, follows the current stream, is skipped ahead rather than blocking, and
   * neither counts as a consumer nor keeps the session alive. Read it with {@link take}.
   */
  addUplink(conn: SubscriberConn): ConsumerSub {
    const s = this.#stream;
    const sub: ConsumerSub = {
      conn,
      session: this,
      policy: "drop",
      cursor: this.#ring.end,
      nextSeq: this.#nextSeq,
      stream: s !== undefined && !s.ended ? s.id : 0,
      skipBelow: 0n,
      done: false,
    };
    this.#uplinks.add(sub);
    return sub;
  }

  /** Removes an uplink. */
  removeUplink(sub: ConsumerSub): void {
    sub.done = true;
    this.#uplinks.delete(sub);
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
    const out: Outgoing[] = [];
    if (sub.done) return out;
    const ring = this.#ring;
    if (sub.cursor < ring.base) {
      if (sub.policy === "disconnect") {
        this.#ctx.counters.slowDisconnects++;
        return [{ kind: "end", error: slowConsumer() }];
      }
      this.#skipAhead(sub, out);
    }
    let bytes = 0;
    let last = -1; // log index of the last data frame taken
    let skip = sub.skipBelow > 0n; // set below too, by a resuming consumer's STREAM-START
    while (sub.cursor < ring.end && bytes < budget) {
      let i = sub.cursor;
      const e = ring.event(i);
      if (e === undefined) {
        // A run: frames back to back in one buffer, all of one stream. Taken as one view.
        let j = ring.runEnd(i);
        sub.cursor = j;
        if (ring.stream(i) !== sub.stream) continue; // a stream this consumer never started
        if (skip) {
          // Seqs rise within a run: skip the frames a resuming consumer already has.
          while (i < j && ring.seqBelow(i, sub.skipBelow)) i++;
          if (i === j) continue;
        }
        const from = ring.offset(i);
        if (j - i > 1 && ring.offset(j - 1) - from >= budget - bytes) {
          j = ring.runCut(i, j, from + budget - bytes); // stop at the frame reaching the budget
          sub.cursor = j;
        }
        const to = ring.offset(j - 1) + ring.length(j - 1);
        out.push({
          kind: "bytes",
          bytes: new Uint8Array(ring.buffer(i), from, to - from),
          frames: j - i,
        });
        bytes += to - from;
        last = j - 1;
        continue;
      }
      sub.cursor = i + 1;
      if (last >= 0) {
        sub.nextSeq = ring.seq(last) + 1n;
        last = -1;
      }
      let m = e.message;
      if (m.kind === ControlKind.StreamStart) {
        sub.stream = e.stream;
        sub.nextSeq = m.firstSeq;
        sub.skipBelow = 0n; // a resume point belongs to the stream it was taken in
        skip = false;
        const r = sub.resume;
        sub.resume = undefined;
        if (r !== undefined && equals(r.epoch, m.epoch) && r.nextSeq > m.firstSeq) {
          // A consumer resuming this stream: start it where it left off.
          m = { ...m, firstSeq: r.nextSeq };
          sub.skipBelow = r.nextSeq;
          skip = true;
          sub.nextSeq = r.nextSeq;
        }
      } else if (e.stream !== sub.stream && m.kind === ControlKind.ProducerLeft) {
        continue; // about a stream this consumer is not following
      }
      out.push({ kind: "control", message: m });
      if (e.terminal === true) {
        out.push({ kind: "end" });
        break;
      }
    }
    if (last >= 0) sub.nextSeq = ring.seq(last) + 1n;
    if (bytes > 0) this.#borrowers.add(sub.conn);
    if (sub.policy === "block" && out.length > 0) this.#notifyRoom();
    return out;
  }

  /** No connection holds a view of ring memory now. */
  #released(): boolean {
    this.#pruneBorrowers();
    return this.#borrowers.size === 0;
  }

  /** Forgets the borrowers that hold nothing now (they are added again when they next take). */
  #pruneBorrowers(): void {
    for (const conn of this.#borrowers) if (!conn.holding) this.#borrowers.delete(conn);
  }

  /** Policy `drop`: jump to the live head and say what was skipped. */
  #skipAhead(sub: ConsumerSub, out: Outgoing[]): void {
    this.#ctx.counters.lagged++;
    const s = this.#stream;
    if (s !== undefined && s.id === sub.stream && s.ended && this.#endIndex >= this.#ring.base) {
      // Keep the END frame deliverable: resume at it rather than past it.
      const endSeq = this.#ring.seq(this.#endIndex);
      out.push({ kind: "control", message: lagged(this.tag, sub.nextSeq, endSeq) });
      sub.cursor = this.#endIndex;
      sub.nextSeq = endSeq;
      return;
    }
    sub.cursor = this.#ring.end;
    if (s !== undefined && !s.ended && s.id !== sub.stream) {
      out.push({
        kind: "control",
        message: { kind: ControlKind.StreamStart, ...s.start, firstSeq: this.#nextSeq },
      });
      sub.stream = s.id;
      sub.skipBelow = 0n;
    } else if (s !== undefined && s.id === sub.stream && this.#nextSeq > sub.nextSeq) {
      out.push({ kind: "control", message: lagged(this.tag, sub.nextSeq, this.#nextSeq) });
    }
    sub.nextSeq = this.#nextSeq;
  }

  // ---- producer -----------------------------------------------------------------------

  /**
   * Claims the producer slot.
   * @throws {RelayError} `producer-exists` when taken.
   */
  setProducer(conn: SubscriberConn): void {
    // A remote origin gives way: in a cluster the caller claimed the slot cluster-wide first.
    if (this.producer !== undefined && this.producer !== REMOTE_ORIGIN) {
      throw new RelayError("producer-exists", "this session already has a producer");
    }
    this.producer = conn;
    this.origin = "local";
    this.#inUse();
    this.#checkWait();
    this.#ctx.observer?.producerChanged(this);
  }

  /**
   * Starts (or resumes) a stream announced by the producer, whose signature the caller
   * verified.
   * @throws {RelayError} `protocol-error` for an impossible first seq.
   */
  startStream(start: StreamStart): void {
    const s = this.#stream;
    if (s !== undefined && equals(s.start.epoch, start.epoch)) {
      // The same producer stream resuming after a reconnect (within the grace period).
      if (s.ended || (start.firstSeq > this.#nextSeq && !s.remote)) {
        throw new RelayError(
          "protocol-error",
          "this stream cannot resume here (its grace period is over): start a new producer",
        );
      }
      // A producer taking over a stream this relay mirrored: what never arrived is a gap.
      if (start.firstSeq > this.#nextSeq) this.#gap(s, start.firstSeq);
      this.#resumeFloor = this.#nextSeq;
      this.#clearGrace();
      this.#ctx.log.info("stream.resume", { route: this.name, seq: this.#nextSeq });
      return;
    }
    // A stream unknown here normally starts at 0; a later first seq is a producer resuming
    // its stream on a relay that restarted (consumers see firstSeq and check continuity).
    this.#newStream(start);
  }

  #newStream(start: StreamStart): void {
    const s = this.#stream;
    if (s !== undefined && !s.ended) {
      // The previous stream was cut (its producer vanished and a new one started).
      this.#push({
        stream: s.id,
        message: { kind: ControlKind.ProducerLeft, tag: this.tag, reason: LeftReason.Gone },
      });
    }
    this.#clearGrace();
    const id = ++this.#streams;
    this.#stream = {
      id,
      start: { ...start, tag: this.tag },
      ended: false,
      remote: this.origin === "remote",
    };
    this.#nextSeq = start.firstSeq;
    this.#resumeFloor = start.firstSeq;
    this.#push({
      stream: id,
      message: { kind: ControlKind.StreamStart, ...start, tag: this.tag },
    });
    this.#ctx.log.info("stream.start", { route: this.name, stream: id, origin: this.origin });
    this.#checkWait();
  }

  // ---- cluster mirror: a stream whose producer is on another relay ----------------------

  /**
   * A stream announced by the relay holding the producer (its signature verified by the
   * caller). `start.firstSeq` is the first frame this relay will receive. The same epoch as
   * the current stream continues it: frames in between that never arrived become a LAGGED
   * gap. Ignored while a local producer holds the slot.
   * @returns Whether it was taken.
   */
  mirrorStart(start: StreamStart): boolean {
    if (this.localProducer) return false;
    this.origin = "remote";
    this.producer = REMOTE_ORIGIN;
    const s = this.#stream;
    if (s !== undefined && !s.ended && equals(s.start.epoch, start.epoch)) {
      this.#clearGrace();
      if (start.firstSeq > this.#nextSeq) this.#gap(s, start.firstSeq);
    } else {
      this.#newStream(start);
    }
    this.#checkWait();
    return true;
  }

  /**
   * A data frame of a mirrored stream, as the origin relay received it. Never waits: the
   * ring evicts whatever it must (consumers it overtakes get LAGGED, or are disconnected under
   * policy `disconnect`), and a frame that did not arrive becomes a LAGGED gap.
   * @returns Whether it was appended (not: no mirrored stream, or a duplicate).
   */
  mirrorData(bytes: Uint8Array, seq: bigint, flags: number): boolean {
    const s = this.#stream;
    if (this.origin !== "remote" || this.localProducer || s === undefined || s.ended) {
      return false;
    }
    if (seq < this.#nextSeq) return false;
    if (seq > this.#nextSeq) this.#gap(s, seq);
    if (this.producer === undefined) {
      // Frames again after the origin went quiet (or its producer moved to another relay).
      this.producer = REMOTE_ORIGIN;
      this.#clearGrace();
    }
    const ring = this.#ring;
    const { ringFrames, ringBytes } = this.#ctx.limits;
    const size = bytes.length;
    while (
      ring.size >= ringFrames ||
      (ring.size > 0 && (ring.bytes + size > ringBytes || ring.overBudget(size)))
    ) {
      // NATS cannot be held back. The origin keeps within one ring of what blocking consumers
      // here took (cluster acks), so only control entries overshoot; allow them some slack.
      if (
        this.#blockedAt(ring.base) && ring.size < ringFrames + MIRROR_SLACK &&
        ring.bytes + size <= ringBytes &&
        !ring.overBudget(size)
      ) break;
      ring.shift();
    }
    this.#nextSeq = seq + 1n;
    const index = ring.pushData(bytes, seq, s.id);
    this.#wakeConsumers();
    if ((flags & DataFlag.End) !== 0) {
      s.ended = true;
      this.#endIndex = index;
      this.producer = undefined;
      this.#clearGrace();
      this.#checkWait();
      this.#maybeIdle();
    }
    return true;
  }

  /**
   * The origin relay says its producer was lost (`lost`: in its grace period) or is gone for
   * good; or this relay stopped hearing from the origin (`lost`). Mirrored consumers see
   * PRODUCER-LEFT as for a local producer, and the grace period runs here too.
   */
  mirrorLeft(gone: boolean): void {
    const s = this.#stream;
    if (this.origin !== "remote" || this.localProducer || s === undefined || s.ended) return;
    if (gone) {
      this.producer = undefined;
      this.#clearGrace();
      this.#graceExpired();
    } else if (this.producer === REMOTE_ORIGIN) {
      this.releaseProducer(false);
    }
  }

  /** Frames `nextSeq` up to `to` will never come: tell the consumers following `s`. */
  #gap(s: Stream, to: bigint): void {
    this.#push({ stream: s.id, message: lagged(this.tag, this.#nextSeq, to) });
    this.#ctx.counters.mirrorGaps = (this.#ctx.counters.mirrorGaps ?? 0) + 1;
    this.#nextSeq = to;
  }

  /**
   * Whether the ring can take a frame of `size` bytes now; evicts what it may. Under the
   * `block` policy an entry some blocking consumer still needs is never evicted.
   */
  hasRoom(size: number): boolean {
    const { ringFrames, ringBytes } = this.#ctx.limits;
    const ring = this.#ring;
    while (
      ring.size >= ringFrames ||
      (ring.size > 0 && (ring.bytes + size > ringBytes || ring.overBudget(size)))
    ) {
      if (this.#blockedAt(ring.base)) return false;
      if (this.#remoteHolds(ring.base)) return false;
      ring.shift();
    }
    return true;
  }

  /**
   * Cluster, origin side: blocking consumers on other relays still need frames of the live
   * stream from `floor.seq` on, so those are not evicted and the producer waits as for a local
   * blocking consumer. A floor naming another epoch (such a relay has not seen this stream's
   * start yet) holds every frame of the stream. `undefined` lifts the hold.
   */
  setRemoteFloor(floor: Floor | undefined): void {
    this.#remoteFloor = floor;
    this.#notifyRoom();
  }

  /**
   * Cluster, mirror side: what the local blocking consumers still need — the current stream's
   * epoch and the lowest seq one of them has not taken (the next seq when all are caught up);
   * while no stream is live, a zero epoch: all of the next one. `undefined` without blocking
   * consumers.
   */
  blockingFloor(): Floor | undefined {
    if (this.#blockers === 0) return undefined;
    const s = this.#stream;
    if (s === undefined || s.ended) return { epoch: NO_EPOCH, seq: 0n };
    const ring = this.#ring;
    for (let i = Math.max(this.#minBlockCursor(), ring.base); i < ring.end; i++) {
      if (ring.event(i) === undefined && ring.stream(i) === s.id) {
        return { epoch: s.start.epoch, seq: ring.seq(i) };
      }
    }
    return { epoch: s.start.epoch, seq: this.#nextSeq };
  }

  /** Resolves when a blocking consumer advanced or left. */
  roomChanged(): Promise<void> {
    return new Promise((resolve) => this.#roomWaiters.push(resolve));
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
    const s = this.#stream;
    if (s === undefined || s.ended) {
      throw new RelayError("protocol-error", "data frame outside a stream");
    }
    if (seq === this.#nextNum) {
      // A number equal to the next seq (NaN, "above 2^53", equals nothing): no BigInt made.
      if (seq < Number.MAX_SAFE_INTEGER) this.#nextNum = seq + 1;
      else this.#nextSeq = BigInt(seq) + 1n;
    } else {
      const big = BigInt(seq);
      if (big !== this.#nextSeq) {
        if (big < this.#resumeFloor) return false;
        throw new RelayError(
          "protocol-error",
          `data frame seq ${big}, expected ${this.#nextSeq}`,
        );
      }
      this.#nextSeq = big + 1n;
    }
    const index = this.#ring.pushData(buf, seq, s.id, offset, length);
    this.#wakeConsumers();
    if ((flags & DataFlag.End) !== 0) {
      s.ended = true;
      this.#endIndex = index;
      this.#ctx.log.info("stream.end", { route: this.name, stream: s.id, frames: this.#nextSeq });
    }
    return true;
  }

  /** Whether the current stream has ended (END seen). */
  get ended(): boolean {
    return this.#stream?.ended ?? false;
  }

  /**
   * The producer's connection is gone or it left.
   * @param clean Whether its stream ended with END (no grace, no PRODUCER-LEFT).
   */
  releaseProducer(clean: boolean): void {
    this.producer = undefined;
    const s = this.#stream;
    if (!clean && s !== undefined && !s.ended) {
      this.#push({
        stream: s.id,
        message: { kind: ControlKind.ProducerLeft, tag: this.tag, reason: LeftReason.Lost },
      });
      this.#ctx.log.info("producer.lost", {
        route: this.name,
        graceMs: this.#ctx.limits.producerGraceMs,
      });
      this.#clearGrace();
      this.#graceTimer = setTimeout(() => this.#graceExpired(), this.#ctx.limits.producerGraceMs);
    }
    this.#notifyRoom();
    this.#checkWait();
    this.#maybeIdle();
    this.#ctx.observer?.producerChanged(this);
  }

  #graceExpired(): void {
    this.#graceTimer = undefined;
    const s = this.#stream;
    if (this.producer !== undefined || s === undefined || s.ended) return;
    s.ended = true;
    this.#push({
      stream: s.id,
      message: { kind: ControlKind.ProducerLeft, tag: this.tag, reason: LeftReason.Gone },
    });
    this.#ctx.log.info("producer.gone", { route: this.name });
    this.#checkWait();
    this.#maybeIdle();
    this.#ctx.observer?.producerChanged(this);
  }

  // ---- internals ----------------------------------------------------------------------

  #push(event: EventEntry): number {
    const index = this.#ring.pushEvent(event);
    // Events are small and must never be lost: evict data around them instead.
    const { ringFrames } = this.#ctx.limits;
    while (this.#ring.size > ringFrames + 8) {
      if (this.#blockedAt(this.#ring.base)) break;
      this.#ring.shift();
    }
    this.#wakeConsumers();
    return index;
  }

  /**
   * Wakes every consumer's connection once per burst, not once per frame: a read chunk of
   * many small frames is appended in one synchronous run, and the wake-up follows it.
   */
  #wakeConsumers(): void {
    if (this.#wakeQueued) return;
    this.#wakeQueued = true;
    queueMicrotask(() => {
      this.#wakeQueued = false;
      for (const c of this.consumers) c.conn.wake();
      for (const u of this.#uplinks) u.conn.wake();
    });
  }

  /** Whether the entry at `index` is a frame a blocking consumer on another relay needs. */
  #remoteHolds(index: number): boolean {
    const f = this.#remoteFloor;
    const s = this.#stream;
    if (f === undefined || s === undefined || s.ended) return false;
    const ring = this.#ring;
    if (ring.event(index) !== undefined || ring.stream(index) !== s.id) return false;
    return !equals(s.start.epoch, f.epoch) || !ring.seqBelow(index, f.seq);
  }

  #blockersMoved(): void {
    if (!this.localProducer) this.#ctx.observer?.blockersMoved?.(this);
  }

  /** Whether a blocking consumer has not yet taken the entry at `index`. */
  #blockedAt(index: number): boolean {
    if (this.#blockers === 0 || this.#blockBound > index) return false;
    this.#blockBound = this.#minBlockCursor();
    return this.#blockBound <= index;
  }

  #minBlockCursor(): number {
    let min = Infinity;
    for (const c of this.consumers) if (c.policy === "block" && c.cursor < min) min = c.cursor;
    return min;
  }

  #notifyRoom(): void {
    this.#blockersMoved();
    const waiters = this.#roomWaiters;
    if (waiters.length === 0) return;
    this.#roomWaiters = [];
    for (const w of waiters) w();
  }

  #clearGrace(): void {
    if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
  }

  /** Consumers waiting with no producer in sight get a bounded wait. */
  #checkWait(): void {
    const waiting = this.producer === undefined && this.#graceTimer === undefined &&
      this.consumers.size > 0 && this.#ctx.limits.waitForProducerMs > 0;
    if (!waiting) {
      if (this.#waitTimer !== undefined) clearTimeout(this.#waitTimer);
      this.#waitTimer = undefined;
      return;
    }
    if (this.#waitTimer !== undefined) return;
    this.#waitTimer = setTimeout(() => {
      this.#waitTimer = undefined;
      if (this.producer !== undefined || this.consumers.size === 0) return;
      const seconds = this.#ctx.limits.waitForProducerMs / 1000;
      this.#ctx.log.info("session.wait_timeout", {
        route: this.name,
        consumers: this.consumers.size,
      });
      this.#ring.pushEvent({
        stream: -1,
        terminal: true,
        message: {
          kind: ControlKind.Error,
          code: "timeout",
          tag: this.tag,
          role: Role.Consumer,
          message: `no producer joined within ${seconds} s`,
        },
      });
      // Every consumer receives it, whatever stream it follows.
      for (const c of this.consumers) c.conn.wake();
    }, this.#ctx.limits.waitForProducerMs);
  }

  /** @param lingered The linger period just ran out: nobody came back, free it now. */
  #maybeIdle(lingered = false): void {
    // A mirrored stream is kept for local consumers only; its origin does not hold it here.
    if (
      this.#closed || this.localProducer || this.consumers.size > 0 ||
      (this.#graceTimer !== undefined && this.origin === "local") ||
      this.#lingerTimer !== undefined
    ) {
      return;
    }
    const linger = this.#ring.size > 0 && !lingered ? this.#ctx.limits.sessionLingerMs : 0;
    if (linger === 0) {
      this.close();
      this.#ctx.onIdle(this);
      return;
    }
    // Keep the ring a while: consumers whose connection broke come back to resume from it.
    this.#lingerTimer = setTimeout(() => {
      this.#lingerTimer = undefined;
      this.#maybeIdle(true);
    }, linger);
  }

  /** Someone joined: the session is in use again. */
  #inUse(): void {
    if (this.#lingerTimer !== undefined) clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
  }

  /** Stops the timers (relay shutdown or session idle). */
  close(): void {
    this.#closed = true;
    this.#ring.clear();
    this.#inUse();
    this.#clearGrace();
    if (this.#waitTimer !== undefined) clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    this.#notifyRoom();
  }
}

function lagged(tag: Uint8Array, from: bigint, to: bigint): ControlMessage {
  return { kind: ControlKind.Lagged, tag, from, to };
}

function slowConsumer(): RelayError {
  return new RelayError("slow-consumer", "consumer fell a full ring behind (policy disconnect)");
}
