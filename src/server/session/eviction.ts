/**
 * @module
 * What the ring may evict, and when the producer has room (docs/PROTOCOL.md §6.4): an entry a
 * blocking consumer here has not taken, or a frame a blocking consumer on another relay of a
 * cluster still needs, stays; everything else goes oldest first. Control events are never
 * lost: data is evicted around them.
 */

import { equals } from "../../bytes.ts";
import { EPOCH_LENGTH } from "../../protocol/session.ts";
import type { EventEntry } from "../ring.ts";
import { isLocalProducer, nextSeq, type SessionState, wakeConsumers } from "./_state.ts";
import type { Floor } from "./types.ts";

/** The epoch of a {@link Floor} before any stream: "all of the next stream". */
const NO_EPOCH = new Uint8Array(EPOCH_LENGTH);

/**
 * Whether the ring can take a frame of `size` bytes now; evicts what it may. Under the
 * `block` policy an entry some blocking consumer still needs is never evicted.
 */
export function hasRoom(st: SessionState, size: number): boolean {
  const { ringFrames, ringBytes } = st.ctx.limits;
  const ring = st.ring;
  while (
    ring.size >= ringFrames ||
    (ring.size > 0 && (ring.bytes + size > ringBytes || ring.overBudget(size)))
  ) {
    if (blockedAt(st, ring.base)) return false;
    if (remoteHolds(st, ring.base)) return false;
    ring.shift();
  }
  return true;
}

/**
 * Cluster, mirror side: what the local blocking consumers still need — the current stream's
 * epoch and the lowest seq one of them has not taken (the next seq when all are caught up);
 * while no stream is live, a zero epoch: all of the next one. `undefined` without blocking
 * consumers.
 */
export function blockingFloor(st: SessionState): Floor | undefined {
  if (st.blockers === 0) return undefined;
  const s = st.stream;
  if (s === undefined || s.ended) return { epoch: NO_EPOCH, seq: 0n };
  const ring = st.ring;
  for (let i = Math.max(minBlockCursor(st), ring.base); i < ring.end; i++) {
    if (ring.event(i) === undefined && ring.stream(i) === s.id) {
      return { epoch: s.start.epoch, seq: ring.seq(i) };
    }
  }
  return { epoch: s.start.epoch, seq: nextSeq(st) };
}

/** Appends a control event to the ring and wakes the readers; returns its log index. */
export function pushEvent(st: SessionState, event: EventEntry): number {
  const index = st.ring.pushEvent(event);
  // Events are small and must never be lost: evict data around them instead.
  const { ringFrames } = st.ctx.limits;
  while (st.ring.size > ringFrames + 8) {
    if (blockedAt(st, st.ring.base)) break;
    st.ring.shift();
  }
  wakeConsumers(st);
  return index;
}

/** Whether the entry at `index` is a frame a blocking consumer on another relay needs. */
export function remoteHolds(st: SessionState, index: number): boolean {
  const f = st.remoteFloor;
  const s = st.stream;
  if (f === undefined || s === undefined || s.ended) return false;
  const ring = st.ring;
  if (ring.event(index) !== undefined || ring.stream(index) !== s.id) return false;
  return !equals(s.start.epoch, f.epoch) || !ring.seqBelow(index, f.seq);
}

/** Tells a cluster that blocking consumers moved, while the stream comes from elsewhere. */
export function blockersMoved(st: SessionState): void {
  if (!isLocalProducer(st)) st.ctx.observer?.blockersMoved?.(st.self);
}

/** Whether a blocking consumer has not yet taken the entry at `index`. */
export function blockedAt(st: SessionState, index: number): boolean {
  if (st.blockers === 0 || st.blockBound > index) return false;
  st.blockBound = minBlockCursor(st);
  return st.blockBound <= index;
}

/** The lowest cursor of a blocking consumer (Infinity: none), O(consumers). */
export function minBlockCursor(st: SessionState): number {
  let min = Infinity;
  for (const c of st.consumers) if (c.policy === "block" && c.cursor < min) min = c.cursor;
  return min;
}

/** Blocking consumers advanced or left: wake a producer waiting for room. */
export function notifyRoom(st: SessionState): void {
  blockersMoved(st);
  const waiters = st.roomWaiters;
  if (waiters.length === 0) return;
  st.roomWaiters = [];
  for (const w of waiters) w();
}
