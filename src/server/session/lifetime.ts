/**
 * @module
 * A relay session's lifetime (docs/PROTOCOL.md §6.4): the grace period a lost producer gets,
 * the bounded wait of consumers with no producer in sight, the linger that keeps an unused
 * session's ring for resuming consumers, and the end.
 */

import { ControlKind } from "../../protocol/control.ts";
import { Role } from "../../protocol/join.ts";
import { isLocalProducer, type SessionState } from "./_state.ts";
import { notifyRoom } from "./eviction.ts";

/** Stops the grace period's timer. */
export function clearGrace(st: SessionState): void {
  if (st.graceTimer !== undefined) clearTimeout(st.graceTimer);
  st.graceTimer = undefined;
}

/** Consumers waiting with no producer in sight get a bounded wait. */
export function checkWait(st: SessionState): void {
  const waiting = st.producer === undefined && st.graceTimer === undefined &&
    st.consumers.size > 0 && st.ctx.limits.waitForProducerMs > 0;
  if (!waiting) {
    if (st.waitTimer !== undefined) clearTimeout(st.waitTimer);
    st.waitTimer = undefined;
    return;
  }
  if (st.waitTimer !== undefined) return;
  st.waitTimer = setTimeout(() => {
    st.waitTimer = undefined;
    if (st.producer !== undefined || st.consumers.size === 0) return;
    const seconds = st.ctx.limits.waitForProducerMs / 1000;
    st.ctx.log.info("session.wait_timeout", {
      route: st.name,
      consumers: st.consumers.size,
    });
    st.ring.pushEvent({
      stream: -1,
      terminal: true,
      message: {
        kind: ControlKind.Error,
        code: "timeout",
        tag: st.tag,
        role: Role.Consumer,
        message: `no producer joined within ${seconds} s`,
      },
    });
    // Every consumer receives it, whatever stream it follows.
    for (const c of st.consumers) c.conn.wake();
  }, st.ctx.limits.waitForProducerMs);
}

/**
 * Frees the session once nothing holds it: at once with an empty ring, else after lingering.
 * @param lingered The linger period just ran out: nobody came back, free it now.
 */
export function maybeIdle(st: SessionState, lingered = false): void {
  // A mirrored stream is kept for local consumers only; its origin does not hold it here.
  if (
    st.closed || isLocalProducer(st) || st.consumers.size > 0 ||
    (st.graceTimer !== undefined && st.origin === "local") ||
    st.lingerTimer !== undefined
  ) {
    return;
  }
  const linger = st.ring.size > 0 && !lingered ? st.ctx.limits.sessionLingerMs : 0;
  if (linger === 0) {
    closeSession(st);
    st.ctx.onIdle(st.self);
    return;
  }
  // Keep the ring a while: consumers whose connection broke come back to resume from it.
  st.lingerTimer = setTimeout(() => {
    st.lingerTimer = undefined;
    maybeIdle(st, true);
  }, linger);
}

/** Someone joined: the session is in use again. */
export function inUse(st: SessionState): void {
  if (st.lingerTimer !== undefined) clearTimeout(st.lingerTimer);
  st.lingerTimer = undefined;
}

/** Stops the timers (relay shutdown or session idle). */
export function closeSession(st: SessionState): void {
  st.closed = true;
  st.ring.clear();
  inUse(st);
  clearGrace(st);
  if (st.waitTimer !== undefined) clearTimeout(st.waitTimer);
  st.waitTimer = undefined;
  notifyRoom(st);
}
