/**
 * @module
 * Mirroring (docs/SCALING.md): a session whose producer is on another relay of the cluster is
 * fed from what that origin publishes on the session's subject — frame runs, stream starts
 * (their signature verified here again), departures and beats — into this relay's own ring, in
 * order. A mirror with blocking consumers announces what they still need (flow control).
 */

import { equals, readU64BE } from "../../bytes.ts";
import type { CryptoProvider } from "../../crypto/types.ts";
import { RelayError } from "../../errors.ts";
import {
  ControlKind,
  decodeControl,
  LeftReason,
  type StreamStart,
  verifyStreamStart,
} from "../../protocol/control.ts";
import { parseDataHeader } from "../../protocol/data_frame.ts";
import { FRAME_HEADER, FrameType } from "../../protocol/framer.ts";
import type { Logger } from "../log.ts";
import type { Floor, RelaySession } from "../session.ts";
import type { NatsConnection, NatsSub } from "./nats.ts";
import { BEAT_LIVE, BEAT_PRODUCER, encodeHold, ENVELOPE, Kind } from "./wire.ts";

/** A moved floor is announced after at most this long (ms), or at once when it moved by an
 * eighth of a ring and no announcement is pending. */
const ACK_DELAY_MS = 2;

/** What the mirrors need of the cluster. */
export interface MirrorLink {
  /** This relay's id in the cluster. */
  readonly id: Uint8Array;
  readonly nc: NatsConnection;
  readonly crypto: CryptoProvider;
  readonly log: Logger;
  /** The cluster's counters this side adds to. */
  readonly counters: { published: number; received: number; rejected: number };
  /** Whether NATS is reachable now. */
  connected(): boolean;
  /** The flow-control subject of a session: heard by every relay, or by those with it. */
  ackSubject(session: RelaySession, toAll: boolean): string;
}

interface Mirror {
  readonly sub: NatsSub | undefined;
  /** Floors other relays announce between beats (this relay may be, or become, the origin). */
  readonly ackSub: NatsSub | undefined;
  /** The floor last announced (blocking consumers here), if holding. */
  acked: Floor | undefined;
  ackTimer: ReturnType<typeof setTimeout> | undefined;
  lastHeard: number;
  /** Signature of the last verified stream start (beats repeat it). */
  verified: Uint8Array | undefined;
  /** Messages waiting while a stream start is verified (they must keep their order). */
  queue: Uint8Array[];
  busy: boolean;
}

/** The mirrored side of every session on this relay, by session. */
export class Mirrors {
  readonly #link: MirrorLink;
  readonly #m = new Map<RelaySession, Mirror>();

  /** @param link What the mirrors need of the cluster. */
  constructor(link: MirrorLink) {
    this.#link = link;
  }

  /**
   * Whether a session is followed.
   * @param session The session.
   * @returns Whether it is.
   */
  has(session: RelaySession): boolean {
    return this.#m.has(session);
  }

  /**
   * Follows a session.
   * @param session The session.
   * @param sub Its session subject's subscription.
   * @param ackSub Its flow-control subscription.
   */
  add(session: RelaySession, sub: NatsSub | undefined, ackSub: NatsSub | undefined): void {
    this.#m.set(session, {
      sub,
      ackSub,
      acked: undefined,
      ackTimer: undefined,
      lastHeard: Date.now(),
      verified: undefined,
      queue: [],
      busy: false,
    });
  }

  /**
   * Stops following a session, letting go of any hold first.
   * @param session The session.
   */
  remove(session: RelaySession): void {
    const m = this.#m.get(session);
    if (m !== undefined) {
      this.#ack(session, m, undefined);
      m.sub?.unsubscribe();
      m.ackSub?.unsubscribe();
    }
    this.#m.delete(session);
  }

  /**
   * A local producer took the session: its blockers are local now, so let go of the hold.
   * @param session The session.
   */
  letGo(session: RelaySession): void {
    const m = this.#m.get(session);
    if (m !== undefined) this.#ack(session, m, undefined);
  }

  /**
   * Once a beat: holding mirrors repeat their floor (the origin lets go of a silent one), and
   * a mirror whose origin went silent for 3 beats sees its producer as lost.
   * @param now The time (ms).
   * @param beatMs The beat.
   */
  beat(now: number, beatMs: number): void {
    for (const [session, m] of this.#m) {
      if (m.acked !== undefined) this.#ack(session, m, session.blockingFloor(), true);
    }
    // Mirrors whose origin went silent: its relay died or NATS is unreachable.
    for (const [session, m] of this.#m) {
      if (
        session.origin === "remote" && session.producer !== undefined &&
        !session.localProducer && now - m.lastHeard > 3 * beatMs
      ) {
        this.#link.log.info("cluster.origin_silent", { route: session.name });
        session.mirrorLeft(false);
      }
    }
  }

  /** Lets go of every hold and forgets every session (the relay leaves the cluster). */
  clear(): void {
    for (const [s, m] of this.#m) this.#ack(s, m, undefined);
    this.#m.clear();
  }

  /**
   * Blocking consumers here moved: tell the origin, coalesced.
   * @param session The session.
   */
  blockersMoved(session: RelaySession): void {
    const m = this.#m.get(session);
    // Called on every take by a blocking consumer; with an announcement pending, its timer
    // reads the floor then (one O(consumers) scan per 2 ms, not per take).
    if (m === undefined || m.ackTimer !== undefined) return;
    const floor = session.blockingFloor();
    const was = m.acked;
    if (floor === undefined || was === undefined || !equals(floor.epoch, was.epoch)) {
      if (floor !== undefined || was !== undefined) this.#ack(session, m, floor);
      return;
    }
    const step = BigInt(Math.max(1, session.ringFrameLimit >> 3));
    if (floor.seq - was.seq >= step || floor.seq < was.seq) {
      this.#ack(session, m, floor);
    } else if (floor.seq !== was.seq && m.ackTimer === undefined) {
      m.ackTimer = setTimeout(() => {
        m.ackTimer = undefined;
        if (this.#m.get(session) === m) this.#ack(session, m, session.blockingFloor());
      }, ACK_DELAY_MS);
    }
  }

  /**
   * Announces this relay's floor for the session (`undefined`: holding nothing). Starting or
   * stopping to hold, a new epoch and the beat's repeat go to every relay (`.h.`, the origin
   * may not have the session yet); a seq that moved only to relays with the session (`.a.`).
   */
  #ack(session: RelaySession, m: Mirror, floor: Floor | undefined, repeat = false): void {
    if (m.ackTimer !== undefined) clearTimeout(m.ackTimer);
    m.ackTimer = undefined;
    if (session.localProducer) floor = undefined;
    if (floor === undefined && m.acked === undefined) return;
    const msg = encodeHold(this.#link.id, floor);
    const was = m.acked;
    m.acked = floor;
    if (!this.#link.connected()) return;
    const toAll = repeat || floor === undefined || was === undefined ||
      !equals(floor.epoch, was.epoch);
    try {
      this.#link.nc.publish(this.#link.ackSubject(session, toAll), msg);
      this.#link.counters.published++;
    } catch (e) {
      this.#link.log.debug("cluster.publish_failed", { error: String(e) });
    }
  }

  /**
   * A message on the session's subject.
   * @param session The session.
   * @param data The envelope.
   */
  receive(session: RelaySession, data: Uint8Array): void {
    const m = this.#m.get(session);
    if (m === undefined || data.length < ENVELOPE) return;
    this.#link.counters.received++;
    m.lastHeard = Date.now();
    // Frames stay in the ring after this callback: own the bytes (one copy per run).
    m.queue.push(data.slice());
    if (!m.busy) void this.#drain(session, m);
  }

  /** Applies queued messages in order; only a stream start's signature check awaits. */
  async #drain(session: RelaySession, m: Mirror): Promise<void> {
    m.busy = true;
    try {
      while (m.queue.length > 0) {
        const msg = m.queue.shift()!;
        try {
          await this.#apply(session, m, msg);
        } catch (e) {
          this.#link.counters.rejected++;
          this.#link.log.warn("cluster.rejected", { route: session.name, error: String(e) });
        }
      }
    } finally {
      m.busy = false;
    }
  }

  async #apply(session: RelaySession, m: Mirror, msg: Uint8Array): Promise<void> {
    const kind = msg[0];
    const body = msg.subarray(ENVELOPE);
    if (session.localProducer) return; // this relay is the origin now
    switch (kind) {
      case Kind.Data:
        return this.#applyData(session, body);
      case Kind.Start: {
        const start = await this.#verifiedStart(session, m, body);
        session.mirrorStart(start);
        return;
      }
      case Kind.Left:
        if (body.length !== 1) throw new RelayError("protocol-error", "malformed departure");
        session.mirrorLeft(body[0] === LeftReason.Gone);
        return;
      case Kind.Beat: {
        if (body.length < 9) throw new RelayError("protocol-error", "malformed beat");
        const flags = body[0]!;
        const next = readU64BE(body, 1);
        if ((flags & BEAT_LIVE) === 0) return;
        const start = await this.#verifiedStart(session, m, body.subarray(9));
        const live = session.currentStream;
        const same = live !== undefined && equals(live.epoch, start.epoch);
        if ((flags & BEAT_PRODUCER) === 0) {
          // The origin is in its grace period: say so here too, if not yet said.
          if (same && session.producer !== undefined) session.mirrorLeft(false);
          return;
        }
        if (!same || session.producer === undefined || next > session.nextSeq) {
          // Joined mid-stream, the origin came back, or the last frames were lost.
          session.mirrorStart({
            ...start,
            firstSeq: same && next <= session.nextSeq ? session.nextSeq : next,
          });
        }
        return;
      }
      default:
        throw new RelayError("protocol-error", `unknown cluster message ${kind}`);
    }
  }

  #applyData(session: RelaySession, body: Uint8Array): void {
    let off = 0;
    while (off < body.length) {
      if (body.length - off < FRAME_HEADER) throw new RelayError("protocol-error", "cut frame");
      const len = (body[off]! * 0x1000000) + (body[off + 1]! << 16) + (body[off + 2]! << 8) +
        body[off + 3]!;
      const end = off + FRAME_HEADER + len;
      if (end > body.length) throw new RelayError("protocol-error", "cut frame");
      const bytes = body.subarray(off, end);
      const frame = { type: body[off + 4]!, body: body.subarray(off + FRAME_HEADER, end), bytes };
      if (frame.type !== FrameType.Data) throw new RelayError("protocol-error", "not a data frame");
      const h = parseDataHeader(frame);
      if (!equals(h.streamTag, session.tag)) {
        throw new RelayError("protocol-error", "frame of another session");
      }
      session.mirrorData(bytes, h.seq, h.flags);
      off = end;
    }
  }

  async #verifiedStart(session: RelaySession, m: Mirror, bytes: Uint8Array): Promise<StreamStart> {
    const c = decodeControl(bytes);
    if (c.kind !== ControlKind.StreamStart || !equals(c.tag, session.tag)) {
      throw new RelayError("protocol-error", "malformed stream start");
    }
    if (m.verified === undefined || !equals(m.verified, c.signature)) {
      if (!await verifyStreamStart(this.#link.crypto, session.routeId, c)) {
        throw new RelayError("auth-failed", "stream start with a bad signature");
      }
      m.verified = c.signature;
    }
    return c;
  }
}
