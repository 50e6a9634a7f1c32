/**
 * @module
 * A relay session's state, shared by the files that act on it (consumers.ts, producer.ts,
 * mirror.ts, eviction.ts, lifetime.ts); `RelaySession` (src/server/session.ts) owns one and is
 * the only way in. The session handle is opaque here (`unknown`): these files pass it on to
 * subscriptions and observers, never call it.
 */

import { RelayError } from "../../errors.ts";
import type { ControlMessage, StreamStart } from "../../protocol/control.ts";
import { ControlKind } from "../../protocol/control.ts";
import type { Ring } from "../ring.ts";
import type { Context, Cursor, Floor, Origin, SubscriberConn } from "./types.ts";
import { REMOTE_ORIGIN } from "./types.ts";

/** One producer stream, as this relay knows it. */
export interface Stream {
  readonly id: number;
  readonly start: StreamStart;
  ended: boolean;
  /** Started by a cluster peer (mirrored here). */
  readonly remote: boolean;
}

/** A consumer cursor, its session handle opaque. */
export type Sub = Cursor<unknown>;

/** Everything a session holds. */
export interface SessionState {
  /** The `RelaySession` this is the state of: handed to subscriptions and observers. */
  readonly self: unknown;
  readonly routeId: Uint8Array;
  readonly tag: Uint8Array;
  readonly name: string;
  readonly ctx: Context<unknown>;
  readonly ring: Ring;
  /** The connection holding the producer slot. */
  producer: SubscriberConn | undefined;
  readonly consumers: Set<Sub>;
  /** Readers of the ring that are not consumers (a cluster's uplink): not counted, never
   * blocking, never keeping the session alive. */
  readonly uplinks: Set<Sub>;
  /** Where the current (or last) stream came from: a local producer or a cluster peer. */
  origin: Origin;
  stream: Stream | undefined;
  streams: number;
  /**
   * The highest read-capability generation a stream of this session was started for: readers
   * of older generations are refused and ended (docs/CAPABILITIES.md "Rotation").
   */
  generation: number;
  /** The next seq while it is at most 2^53 - 1 (always, in practice), else NaN. */
  nextNum: number;
  /** The next seq once it is above 2^53 - 1. */
  nextBig: bigint;
  /** Frames below this seq are duplicates a resuming producer may resend; dropped. */
  resumeFloor: bigint;
  /** Log index of the END frame of the last ended stream. */
  endIndex: number;
  blockers: number;
  /**
   * At most the lowest cursor of a blocking consumer (Infinity: none yet). Cursors only move
   * forward, except that a resuming consumer may be placed behind the others (then lowered),
   * so the exact minimum, O(consumers), is computed only when this bound says "maybe".
   */
  blockBound: number;
  roomWaiters: (() => void)[];
  /** What blocking consumers on other relays of a cluster still need (origin side). */
  remoteFloor: Floor | undefined;
  graceTimer: ReturnType<typeof setTimeout> | undefined;
  waitTimer: ReturnType<typeof setTimeout> | undefined;
  lingerTimer: ReturnType<typeof setTimeout> | undefined;
  closed: boolean;
  wakeQueued: boolean;
  /** Connections that took (borrowed) views of ring memory and may hold them still. */
  readonly borrowers: Set<SubscriberConn>;
}

/**
 * Whether a reader holding `sub`'s generations is cut off by a stream of `generation`: it holds
 * none as new. A write-token consumer (no generations) reads every generation; a reader holding
 * only later generations waits for their stream.
 * @param sub The consumer.
 * @param generation The stream's generation.
 * @returns Whether it is revoked.
 */
export function revokedBy(sub: Sub, generation: number): boolean {
  const held = sub.generations;
  if (held === undefined) return false;
  for (const g of held) if (g >= generation) return false;
  return true;
}

/**
 * The error a revoked reader is ended with.
 * @param generation The generation it lacks.
 * @returns The error.
 */
export function revoked(generation: number): RelayError {
  return new RelayError(
    "revoked",
    `this session rotated to read tokens of generation ${generation}: ask the producer for one`,
  );
}

/** The largest seq kept as a double. */
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * The seq the producer must send next. It is kept as a double below 2^53 so that appending a
 * frame makes no BigInt (`appendData`'s fast path reads and advances `nextNum` itself).
 * @param st The session.
 * @returns The next seq.
 */
export function nextSeq(st: SessionState): bigint {
  return st.nextNum >= 0 ? BigInt(st.nextNum) : st.nextBig;
}

/**
 * Sets the next seq.
 * @param st The session.
 * @param next The seq.
 */
export function setNextSeq(st: SessionState, next: bigint): void {
  if (next <= MAX_SAFE) st.nextNum = Number(next);
  else {
    st.nextNum = NaN; // equal to no number: appendData's fast path never matches
    st.nextBig = next;
  }
}

/**
 * A producer on this relay holds the slot.
 * @param st The session.
 * @returns Whether it does.
 */
export function isLocalProducer(st: SessionState): boolean {
  return st.producer !== undefined && st.producer !== REMOTE_ORIGIN;
}

/**
 * A LAGGED notice.
 * @param tag The stream tag.
 * @param from The first seq missed.
 * @param to The next seq delivered.
 * @returns The message.
 */
export function lagged(tag: Uint8Array, from: bigint, to: bigint): ControlMessage {
  return { kind: ControlKind.Lagged, tag, from, to };
}

/**
 * Wakes every consumer's connection once per burst, not once per frame: a read chunk of
 * many small frames is appended in one synchronous run, and the wake-up follows it.
 */
export function wakeConsumers(st: SessionState): void {
  if (st.wakeQueued) return;
  st.wakeQueued = true;
  queueMicrotask(() => {
    st.wakeQueued = false;
    for (const c of st.consumers) c.conn.wake();
    for (const u of st.uplinks) u.conn.wake();
  });
}
