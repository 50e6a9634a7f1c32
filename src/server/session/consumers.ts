/**
 * @module
 * Consumers of a relay session (docs/PROTOCOL.md §6.4, §6.5): joining at the live head or at a
 * resume point, the slow-consumer policies, and reading the ring — runs of whole frames exactly
 * as received, and control events — whatever the number of consumers.
 */

import { equals } from "../../bytes.ts";
import { RelayError } from "../../errors.ts";
import { ControlKind, type ControlMessage, type PolicyName } from "../../protocol/control.ts";
import {
  lagged,
  nextSeq,
  revoked,
  revokedBy,
  type SessionState,
  type Stream,
  type Sub,
} from "./_state.ts";
import { blockersMoved, notifyRoom } from "./eviction.ts";
import { checkWait, inUse, maybeIdle } from "./lifetime.ts";
import { MAX_GRANTS, type Outgoing, type SubscriberConn } from "./types.ts";

const STRICTNESS: Record<PolicyName, number> = { drop: 0, disconnect: 1, block: 2 };

function slowConsumer(): RelayError {
  return new RelayError("slow-consumer", "consumer fell a full ring behind (policy disconnect)");
}

/**
 * Adds a consumer. Normally at the live head: if a stream is live, the caller sends the
 * returned STREAM-START (after JOINED) before anything from the ring. A consumer resuming
 * the current stream (`resume` names its epoch) continues at `resume.nextSeq` from the ring,
 * after a LAGGED notice if part of what it needs was evicted.
 * @param generation The read-capability generation it proved (`undefined`: a write token).
 * @returns The subscription and the control messages to send right after JOINED.
 * @throws {RelayError} `revoked` for a reader of a generation older than the session's.
 */
export function addConsumer(
  st: SessionState,
  conn: SubscriberConn,
  requested: PolicyName | undefined,
  resume?: { readonly epoch: Uint8Array; readonly nextSeq: bigint },
  generation?: number,
): { sub: Sub; first: ControlMessage[] } {
  if (generation !== undefined && generation < st.generation) throw revoked(st.generation);
  const relayPolicy = st.ctx.limits.policy;
  const policy = requested !== undefined && STRICTNESS[requested] > STRICTNESS[relayPolicy]
    ? requested
    : relayPolicy;
  const s = st.stream;
  const live = s !== undefined && !s.ended ? s : undefined;
  const sub: Sub = {
    conn,
    session: st.self,
    policy,
    cursor: st.ring.end,
    nextSeq: nextSeq(st),
    stream: live?.id ?? 0,
    skipBelow: 0n,
    done: false,
    generations: generation === undefined ? undefined : [generation],
  };
  const first: ControlMessage[] = [];
  if (resume !== undefined && s !== undefined && equals(s.start.epoch, resume.epoch)) {
    resumeAt(st, sub, s, resume.nextSeq, first);
  } else if (live !== undefined) {
    first.push({ kind: ControlKind.StreamStart, ...live.start, firstSeq: nextSeq(st) });
  } else if (resume !== undefined) {
    // The stream may come back (its producer resuming here): then skip what it has.
    sub.resume = { epoch: resume.epoch.slice(), nextSeq: resume.nextSeq };
  }
  st.consumers.add(sub);
  inUse(st);
  if (policy === "block") {
    st.blockers++;
    st.blockBound = Math.min(st.blockBound, sub.cursor);
    blockersMoved(st);
  }
  checkWait(st);
  return { sub, first };
}

/** Places a resuming consumer's cursor at `next` of stream `s`, or says what is gone. */
export function resumeAt(
  st: SessionState,
  sub: Sub,
  s: Stream,
  next: bigint,
  first: ControlMessage[],
): void {
  sub.stream = s.id;
  sub.nextSeq = next;
  const ring = st.ring;
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
  if (next >= nextSeq(st)) {
    // Caught up (or ahead of a relay that restarted): live frames it already has are skipped.
    sub.skipBelow = next;
    return;
  }
  const to = oldest !== undefined && oldest.seq > next ? oldest.seq : nextSeq(st);
  if (oldest !== undefined && oldest.seq > next) sub.cursor = oldest.index;
  first.push(lagged(st.tag, next, to));
  sub.nextSeq = to;
  st.ctx.counters.lagged++;
}

/**
 * A joined reader proved one more generation (a GRANT): it keeps reading when the producer
 * rotates to it. Only the newest {@link MAX_GRANTS} are kept.
 * @throws {RelayError} `revoked` for a generation older than the session's; `protocol-error`
 *   for a write-token consumer (it reads every generation already).
 */
export function grantConsumer(st: SessionState, sub: Sub, generation: number): void {
  const held = sub.generations;
  if (held === undefined) {
    throw new RelayError("protocol-error", "a write-token consumer reads every generation");
  }
  if (generation < st.generation) throw revoked(st.generation);
  if (held.includes(generation)) return;
  held.push(generation);
  held.sort((a, b) => a - b);
  if (held.length > MAX_GRANTS) held.shift();
}

/** Removes a consumer (left, disconnected or failed). */
export function removeConsumer(st: SessionState, sub: Sub): void {
  if (sub.done) return;
  sub.done = true;
  st.consumers.delete(sub);
  // A departed consumer must not stay referenced until the ring next needs a slab (a ring of
  // large reads never does): forget it now unless its socket still holds views, and sweep
  // those left over once they outnumber the readers (amortised O(1) per removal).
  if (!sub.conn.holding) st.borrowers.delete(sub.conn);
  if (st.borrowers.size > 2 * (st.consumers.size + st.uplinks.size) + 64) {
    pruneBorrowers(st);
  }
  if (sub.policy === "block") {
    st.blockers--;
    notifyRoom(st);
  }
  checkWait(st);
  maybeIdle(st);
}

/**
 * Adds a reader of the ring that is not a consumer (the cluster's uplink): it starts at
 * the live head, follows the current stream, is skipped ahead rather than blocking, and
 * neither counts as a consumer nor keeps the session alive. Read it with {@link take}.
 */
export function addUplink(st: SessionState, conn: SubscriberConn): Sub {
  const s = st.stream;
  const sub: Sub = {
    conn,
    session: st.self,
    policy: "drop",
    cursor: st.ring.end,
    nextSeq: nextSeq(st),
    stream: s !== undefined && !s.ended ? s.id : 0,
    skipBelow: 0n,
    done: false,
  };
  st.uplinks.add(sub);
  return sub;
}

/** Removes an uplink. */
export function removeUplink(st: SessionState, sub: Sub): void {
  sub.done = true;
  st.uplinks.delete(sub);
}

/**
 * What a consumer's connection should send next: runs of whole frames exactly as
 * received (the ring's runs: frames back to back in one buffer, one view each), and
 * control events. O(runs + events) per call, whatever the number of frames.
 * @param sub The consumer.
 * @param budget Stop after about this many bytes.
 * @returns The items, in order; empty when the consumer is caught up.
 */
export function take(st: SessionState, sub: Sub, budget: number): Outgoing[] {
  const out: Outgoing[] = [];
  if (sub.done) return out;
  const ring = st.ring;
  if (sub.cursor < ring.base) {
    if (sub.policy === "disconnect") {
      st.ctx.counters.slowDisconnects++;
      return [{ kind: "end", error: slowConsumer() }];
    }
    skipAhead(st, sub, out);
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
      if (revokedBy(sub, m.generation)) {
        // Rotated past every generation this reader holds: it ends here, after the old stream.
        out.push({ kind: "end", error: revoked(m.generation) });
        break;
      }
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
  if (bytes > 0) st.borrowers.add(sub.conn);
  if (sub.policy === "block" && out.length > 0) notifyRoom(st);
  return out;
}

/** No connection holds a view of ring memory now. */
export function released(st: SessionState): boolean {
  pruneBorrowers(st);
  return st.borrowers.size === 0;
}

/** Forgets the borrowers that hold nothing now (they are added again when they next take). */
export function pruneBorrowers(st: SessionState): void {
  for (const conn of st.borrowers) if (!conn.holding) st.borrowers.delete(conn);
}

/** Policy `drop`: jump to the live head and say what was skipped. */
export function skipAhead(st: SessionState, sub: Sub, out: Outgoing[]): void {
  st.ctx.counters.lagged++;
  const s = st.stream;
  if (s !== undefined && s.id === sub.stream && s.ended && st.endIndex >= st.ring.base) {
    // Keep the END frame deliverable: resume at it rather than past it.
    const endSeq = st.ring.seq(st.endIndex);
    out.push({ kind: "control", message: lagged(st.tag, sub.nextSeq, endSeq) });
    sub.cursor = st.endIndex;
    sub.nextSeq = endSeq;
    return;
  }
  sub.cursor = st.ring.end;
  if (s !== undefined && !s.ended && s.id !== sub.stream) {
    if (revokedBy(sub, s.start.generation)) {
      out.push({ kind: "end", error: revoked(s.start.generation) });
      return;
    }
    out.push({
      kind: "control",
      message: { kind: ControlKind.StreamStart, ...s.start, firstSeq: nextSeq(st) },
    });
    sub.stream = s.id;
    sub.skipBelow = 0n;
  } else if (s !== undefined && s.id === sub.stream && nextSeq(st) > sub.nextSeq) {
    out.push({ kind: "control", message: lagged(st.tag, sub.nextSeq, nextSeq(st)) });
  }
  sub.nextSeq = nextSeq(st);
}
