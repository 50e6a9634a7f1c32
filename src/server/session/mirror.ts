/**
 * @module
 * A mirrored stream (docs/PROTOCOL.md §6.4.1): the session's producer is on another relay of a
 * cluster, and this relay feeds its ring from what the origin publishes over NATS, so local
 * consumers get the same order, resume, gaps and policies as for a local producer.
 */

import { equals } from "../../bytes.ts";
import type { StreamStart } from "../../protocol/control.ts";
import { DataFlag } from "../../protocol/data_frame.ts";
import {
  isLocalProducer,
  nextSeq,
  type SessionState,
  setNextSeq,
  wakeConsumers,
} from "./_state.ts";
import { blockedAt } from "./eviction.ts";
import { checkWait, clearGrace, maybeIdle } from "./lifetime.ts";
import { gap, graceExpired, newStream, releaseProducer } from "./producer.ts";
import { REMOTE_ORIGIN } from "./types.ts";

/** Entries a mirrored ring may hold beyond `ringFrames` for blocking consumers. */
const MIRROR_SLACK = 8;

/**
 * A stream announced by the relay holding the producer (its signature verified by the
 * caller). `start.firstSeq` is the first frame this relay will receive. The same epoch as
 * the current stream continues it: frames in between that never arrived become a LAGGED
 * gap. Ignored while a local producer holds the slot.
 * @returns Whether it was taken.
 */
export function mirrorStart(st: SessionState, start: StreamStart): boolean {
  if (isLocalProducer(st)) return false;
  st.origin = "remote";
  st.producer = REMOTE_ORIGIN;
  const s = st.stream;
  if (s !== undefined && !s.ended && equals(s.start.epoch, start.epoch)) {
    clearGrace(st);
    if (start.firstSeq > nextSeq(st)) gap(st, s, start.firstSeq);
  } else {
    newStream(st, start);
  }
  checkWait(st);
  return true;
}

/**
 * A data frame of a mirrored stream, as the origin relay received it. Never waits: the
 * ring evicts whatever it must (consumers it overtakes get LAGGED, or are disconnected under
 * policy `disconnect`), and a frame that did not arrive becomes a LAGGED gap.
 * @returns Whether it was appended (not: no mirrored stream, or a duplicate).
 */
export function mirrorData(
  st: SessionState,
  bytes: Uint8Array,
  seq: bigint,
  flags: number,
): boolean {
  const s = st.stream;
  if (st.origin !== "remote" || isLocalProducer(st) || s === undefined || s.ended) {
    return false;
  }
  if (seq < nextSeq(st)) return false;
  if (seq > nextSeq(st)) gap(st, s, seq);
  if (st.producer === undefined) {
    // Frames again after the origin went quiet (or its producer moved to another relay).
    st.producer = REMOTE_ORIGIN;
    clearGrace(st);
  }
  const ring = st.ring;
  const { ringFrames, ringBytes } = st.ctx.limits;
  const size = bytes.length;
  while (
    ring.size >= ringFrames ||
    (ring.size > 0 && (ring.bytes + size > ringBytes || ring.overBudget(size)))
  ) {
    // NATS cannot be held back. The origin keeps within one ring of what blocking consumers
    // here took (cluster acks), so only control entries overshoot; allow them some slack.
    if (
      blockedAt(st, ring.base) && ring.size < ringFrames + MIRROR_SLACK &&
      ring.bytes + size <= ringBytes &&
      !ring.overBudget(size)
    ) break;
    ring.shift();
  }
  setNextSeq(st, seq + 1n);
  const index = ring.pushData(bytes, seq, s.id);
  wakeConsumers(st);
  if ((flags & DataFlag.End) !== 0) {
    s.ended = true;
    st.endIndex = index;
    st.producer = undefined;
    clearGrace(st);
    checkWait(st);
    maybeIdle(st);
  }
  return true;
}

/**
 * The origin relay says its producer was lost (`lost`: in its grace period) or is gone for
 * good; or this relay stopped hearing from the origin (`lost`). Mirrored consumers see
 * PRODUCER-LEFT as for a local producer, and the grace period runs here too.
 */
export function mirrorLeft(st: SessionState, gone: boolean): void {
  const s = st.stream;
  if (st.origin !== "remote" || isLocalProducer(st) || s === undefined || s.ended) return;
  if (gone) {
    st.producer = undefined;
    clearGrace(st);
    graceExpired(st);
  } else if (st.producer === REMOTE_ORIGIN) {
    releaseProducer(st, false);
  }
}
