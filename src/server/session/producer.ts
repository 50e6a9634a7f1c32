/**
 * @module
 * The producer of a relay session (docs/PROTOCOL.md §6.4): admission to the one slot, stream
 * starts and resumes, appending frames in exact seq order, and what a lost producer leaves
 * behind (PRODUCER-LEFT, the grace period, gaps).
 */

import { equals } from "../../bytes.ts";
import { RelayError } from "../../errors.ts";
import { ControlKind, LeftReason, type StreamStart } from "../../protocol/control.ts";
import { DataFlag } from "../../protocol/data_frame.ts";
import {
  lagged,
  nextSeq,
  type SessionState,
  setNextSeq,
  type Stream,
  wakeConsumers,
} from "./_state.ts";
import { notifyRoom, pushEvent } from "./eviction.ts";
import { checkWait, clearGrace, inUse, maybeIdle } from "./lifetime.ts";
import { REMOTE_ORIGIN, type SubscriberConn } from "./types.ts";

/**
 * Claims the producer slot.
 * @throws {RelayError} `producer-exists` when taken.
 */
export function setProducer(st: SessionState, conn: SubscriberConn): void {
  // A remote origin gives way: in a cluster the caller claimed the slot cluster-wide first.
  if (st.producer !== undefined && st.producer !== REMOTE_ORIGIN) {
    throw new RelayError("producer-exists", "this session already has a producer");
  }
  st.producer = conn;
  st.origin = "local";
  inUse(st);
  checkWait(st);
  st.ctx.observer?.producerChanged(st.self);
}

/**
 * Starts (or resumes) a stream announced by the producer, whose signature the caller
 * verified.
 * @throws {RelayError} `protocol-error` for an impossible first seq.
 */
export function startStream(st: SessionState, start: StreamStart): void {
  if (start.generation < st.generation) {
    throw new RelayError(
      "revoked",
      `this session rotated to generation ${st.generation}: start the producer at that ` +
        `generation or later`,
    );
  }
  const s = st.stream;
  if (s !== undefined && equals(s.start.epoch, start.epoch)) {
    // The same producer stream resuming after a reconnect (within the grace period).
    if (s.ended || (start.firstSeq > nextSeq(st) && !s.remote)) {
      throw new RelayError(
        "protocol-error",
        "this stream cannot resume here (its grace period is over): start a new producer",
      );
    }
    // A producer taking over a stream this relay mirrored: what never arrived is a gap.
    if (start.firstSeq > nextSeq(st)) gap(st, s, start.firstSeq);
    st.resumeFloor = nextSeq(st);
    clearGrace(st);
    st.ctx.log.info("stream.resume", { route: st.name, seq: nextSeq(st) });
    return;
  }
  // A stream unknown here normally starts at 0; a later first seq is a producer resuming
  // its stream on a relay that restarted (consumers see firstSeq and check continuity).
  newStream(st, start);
}

/** A stream unknown here begins: the previous one, if cut, gets PRODUCER-LEFT(gone). */
export function newStream(st: SessionState, start: StreamStart): void {
  const s = st.stream;
  if (s !== undefined && !s.ended) {
    // The previous stream was cut (its producer vanished and a new one started).
    pushEvent(st, {
      stream: s.id,
      message: { kind: ControlKind.ProducerLeft, tag: st.tag, reason: LeftReason.Gone },
    });
  }
  clearGrace(st);
  if (start.generation > st.generation) st.generation = start.generation;
  const id = ++st.streams;
  st.stream = {
    id,
    start: { ...start, tag: st.tag },
    ended: false,
    remote: st.origin === "remote",
  };
  setNextSeq(st, start.firstSeq);
  st.resumeFloor = start.firstSeq;
  pushEvent(st, {
    stream: id,
    message: { kind: ControlKind.StreamStart, ...start, tag: st.tag },
  });
  st.ctx.log.info("stream.start", { route: st.name, stream: id, origin: st.origin });
  checkWait(st);
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
export function appendData(
  st: SessionState,
  buf: Uint8Array,
  seq: number | bigint,
  flags: number,
  offset = 0,
  length: number = buf.byteLength - offset,
): boolean {
  const s = st.stream;
  if (s === undefined || s.ended) {
    throw new RelayError("protocol-error", "data frame outside a stream");
  }
  if (seq === st.nextNum) {
    // A number equal to the next seq (NaN, "above 2^53", equals nothing): no BigInt made.
    if (seq < Number.MAX_SAFE_INTEGER) st.nextNum = seq + 1;
    else setNextSeq(st, BigInt(seq) + 1n);
  } else {
    const big = BigInt(seq);
    if (big !== nextSeq(st)) {
      if (big < st.resumeFloor) return false;
      throw new RelayError(
        "protocol-error",
        `data frame seq ${big}, expected ${nextSeq(st)}`,
      );
    }
    setNextSeq(st, big + 1n);
  }
  const index = st.ring.pushData(buf, seq, s.id, offset, length);
  wakeConsumers(st);
  if ((flags & DataFlag.End) !== 0) {
    s.ended = true;
    st.endIndex = index;
    st.ctx.log.info("stream.end", { route: st.name, stream: s.id, frames: nextSeq(st) });
  }
  return true;
}

/**
 * The producer's connection is gone or it left.
 * @param clean Whether its stream ended with END (no grace, no PRODUCER-LEFT).
 */
export function releaseProducer(st: SessionState, clean: boolean): void {
  st.producer = undefined;
  const s = st.stream;
  if (!clean && s !== undefined && !s.ended) {
    pushEvent(st, {
      stream: s.id,
      message: { kind: ControlKind.ProducerLeft, tag: st.tag, reason: LeftReason.Lost },
    });
    st.ctx.log.info("producer.lost", {
      route: st.name,
      graceMs: st.ctx.limits.producerGraceMs,
    });
    clearGrace(st);
    st.graceTimer = setTimeout(() => graceExpired(st), st.ctx.limits.producerGraceMs);
  }
  notifyRoom(st);
  checkWait(st);
  maybeIdle(st);
  st.ctx.observer?.producerChanged(st.self);
}

/** The lost producer did not come back in time: its stream is over (PRODUCER-LEFT gone). */
export function graceExpired(st: SessionState): void {
  st.graceTimer = undefined;
  const s = st.stream;
  if (st.producer !== undefined || s === undefined || s.ended) return;
  s.ended = true;
  pushEvent(st, {
    stream: s.id,
    message: { kind: ControlKind.ProducerLeft, tag: st.tag, reason: LeftReason.Gone },
  });
  st.ctx.log.info("producer.gone", { route: st.name });
  checkWait(st);
  maybeIdle(st);
  st.ctx.observer?.producerChanged(st.self);
}

/** Frames `nextSeq` up to `to` will never come: tell the consumers following `s`. */
export function gap(st: SessionState, s: Stream, to: bigint): void {
  pushEvent(st, { stream: s.id, message: lagged(st.tag, nextSeq(st), to) });
  st.ctx.counters.mirrorGaps = (st.ctx.counters.mirrorGaps ?? 0) + 1;
  setNextSeq(st, to);
}
