/**
 * @module
 * Cluster mode (docs/SCALING.md): relays federated over NATS, so one session fans out across
 * many relays. NATS only ever carries what a relay sees — route tags, seqs and sealed frames.
 *
 * - **Uplink.** The relay whose local producer holds a session's slot (the *origin*) reads its
 *   own ring through an uplink (a reader that is not a consumer) and publishes frame-aligned
 *   runs exactly as received, plus STREAM-START and PRODUCER-LEFT, on `<prefix>.s.<tag>`.
 *   Every `beatMs` it publishes a beat: the stream start, the next seq, whether the producer
 *   is connected.
 * - **Mirror.** Every other relay with the session subscribes to that subject and feeds its
 *   own ring through {@link RelaySession.mirrorStart} / `mirrorData` / `mirrorLeft`, so its
 *   consumers get the same ordering, resume, gap reporting and policies as local ones. It
 *   verifies the producer's signature on every stream start itself. A seq that skips ahead
 *   (NATS is at-most-once) becomes an explicit LAGGED gap; an origin silent for 3 beats is
 *   treated as a lost producer (PRODUCER-LEFT, grace period).
 * - **Flow control.** A relay with consumers of policy `block` on a mirrored session publishes
 *   what the slowest of them still needs (stream epoch, seq), at least every `beatMs` and
 *   whenever it moved by an eighth of a ring. The origin does not
 *   evict those frames from its ring, so its producer waits exactly as for a local blocking
 *   consumer and no mirror ever falls a ring behind. That a relay holds (and on which epoch)
 *   goes on `<prefix>.h.<tag>`, which every relay follows from the start, so a hold announced
 *   before the producer arrived is known when it does; only seq moves stay on the session's
 *   `<prefix>.a.<tag>`. A mirror silent for 3 beats stops holding.
 * - **Producer slot.** A producer joins only after its relay claimed the slot in a JetStream
 *   key-value bucket with compare-and-set (`create`); the holder refreshes it every third of
 *   `slotTtlMs` and deletes it when the stream ends. A relay that dies stops refreshing, the
 *   entry expires (bucket max age), and the producer, reconnecting to another relay, claims it
 *   there and resumes its stream.
 * - **Losing NATS** degrades to local-only sessions: producers are admitted without a
 *   cluster-wide claim (claimed when NATS returns), nothing is published, mirrors report the
 *   silence as a lost producer and later frames after a LAGGED gap. Nothing crashes.
 *
 * nats.js (nats.ts) is loaded only when a relay is started with `cluster`. This file is the
 * membership and the origin side; beside it: slots.ts (producer slots), mirror.ts (the mirror
 * side), holds.ts (other relays' holds), wire.ts (what relays say), nats.ts, options.ts.
 */

import { concat, toHex, writeU64BE } from "../../bytes.ts";
import type { CryptoProvider } from "../../crypto/types.ts";
import { ControlKind, encodeControl } from "../../protocol/control.ts";
import type { RelayError } from "../../errors.ts";
import { STREAM_TAG_LENGTH } from "../../protocol/session.ts";
import type { Logger } from "../log.ts";
import type { ConsumerSub, RelaySession, SessionObserver, SubscriberConn } from "../session.ts";
import { HoldTable } from "./holds.ts";
import { Mirrors } from "./mirror.ts";
import { connectNats, type Kv, type NatsConnection, type NatsMsg, type NatsSub } from "./nats.ts";
import {
  type ClusterOptions,
  type ClusterStats,
  resolveClusterOptions,
  type ResolvedClusterOptions,
} from "./options.ts";
import { ProducerSlots } from "./slots.ts";
import { BEAT_LIVE, BEAT_PRODUCER, ENVELOPE, Kind, ORIGIN_ID, RUN_BUDGET } from "./wire.ts";

/** One relay's membership of a cluster. */
export class Cluster implements SessionObserver {
  readonly #o: ResolvedClusterOptions;
  readonly #log: Logger;
  readonly #id: Uint8Array;
  readonly #idHex: string;
  readonly #nc: NatsConnection;
  #connected = true;
  readonly #slots: ProducerSlots;
  readonly #uplinks = new Map<RelaySession, ConsumerSub>();
  readonly #mirrors: Mirrors;
  /** Sessions on this relay by stream tag (hex), for flow-control messages. */
  readonly #byTag = new Map<string, RelaySession>();
  /**
   * Holds of other relays. Their start, end, epoch and a repeat every beat come on one
   * wildcard subscription, so they are known before a session (or its producer) shows up
   * here; they matter while a local producer holds the slot.
   */
  readonly #holds = new HoldTable();
  readonly #holdSub: NatsSub | undefined;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  #closed = false;
  #s = {
    published: 0,
    received: 0,
    unpublished: 0,
    rejected: 0,
    holdsExpired: 0,
  };

  private constructor(
    o: ResolvedClusterOptions,
    nc: NatsConnection,
    kv: Kv,
    crypto: CryptoProvider,
    log: Logger,
  ) {
    this.#o = o;
    this.#nc = nc;
    this.#log = log;
    this.#id = crypto.randomBytes(ORIGIN_ID);
    this.#slots = new ProducerSlots(kv, this.#id, log, () => this.#connected);
    this.#mirrors = new Mirrors({
      id: this.#id,
      nc,
      crypto,
      log,
      counters: this.#s,
      connected: () => this.#connected,
      ackSubject: (session, toAll) => this.#ackSubject(session, toAll),
    });
    this.#idHex = toHex(this.#id);
    this.#holdSub = this.#subscribe(`${o.prefix}.h.*`, (msg) => this.#receiveAck(msg));
    this.#timers.push(setInterval(() => this.#beat(), o.beatMs));
    this.#timers.push(setInterval(() => this.#slots.refresh(), Math.max(50, o.slotTtlMs / 3)));
    void this.#watchStatus();
  }

  /**
   * Connects to NATS and opens the producer-slot bucket.
   * @throws {RelayError} `connect-failed` when NATS is unreachable or has no JetStream;
   *   `unsupported` when the nats.js packages are missing.
   */
  static async join(
    options: ClusterOptions,
    crypto: CryptoProvider,
    log: Logger,
  ): Promise<Cluster> {
    const o = resolveClusterOptions(options);
    const { nc, kv } = await connectNats(options, o);
    return new Cluster(o, nc, kv, crypto, log);
  }

  /** This relay's id in the cluster (hex), as it appears in the slot bucket and logs. */
  get id(): string {
    return this.#idHex;
  }

  /**
   * Counters.
   * @param gaps Mirror gaps counted by the relay's sessions.
   */
  stats(gaps: number): ClusterStats {
    let holding = 0;
    for (const tag of this.#holds.tags()) {
      if (this.#byTag.get(tag)?.localProducer) holding += this.#holds.holders(tag);
    }
    return {
      connected: this.#connected,
      slots: this.#slots.size,
      ...this.#s,
      slotConflicts: this.#slots.conflicts,
      gaps,
      holding,
    };
  }

  // ---- sessions -------------------------------------------------------------------------

  /** A session appeared on this relay: follow its subject (for when its producer is elsewhere). */
  attach(session: RelaySession): void {
    if (this.#closed || this.#mirrors.has(session)) return;
    const sub = this.#subscribe(
      this.#subject(session),
      (msg) => this.#mirrors.receive(session, msg.data),
    );
    const ackSub = this.#subscribe(
      this.#ackSubject(session, false),
      (msg) => this.#receiveAck(msg),
    );
    this.#byTag.set(this.#key(session), session);
    this.#applyHolds(session);
    this.#mirrors.add(session, sub, ackSub);
  }

  /** The session is gone from this relay. */
  detach(session: RelaySession): void {
    this.#mirrors.remove(session);
    if (this.#byTag.get(this.#key(session)) === session) this.#byTag.delete(this.#key(session));
    this.#stopUplink(session);
    this.#slots.release(session);
  }

  /**
   * Claims the session's producer slot cluster-wide before a local producer joins.
   * @returns Nothing when the producer may join; a `producer-exists` error when another
   *   relay holds the slot.
   */
  claim(session: RelaySession): Promise<RelayError | undefined> {
    return this.#slots.claim(session);
  }

  /** {@link SessionObserver}: start publishing for a local producer, stop when it is done. */
  producerChanged(session: RelaySession): void {
    if (this.#closed) return;
    if (session.localProducer) {
      if (!this.#uplinks.has(session)) {
        // `holding: false`: #publish copies each run into its NATS message at once.
        const conn: SubscriberConn = {
          id: 0,
          wake: () => this.#publishFrom(session),
          holding: false,
        };
        this.#uplinks.set(session, session.addUplink(conn));
        this.#mirrors.letGo(session); // its blockers are local now
      }
      return;
    }
    if (session.origin === "local" && session.inGrace) return; // still ours: it may come back
    this.#publishFrom(session); // END or PRODUCER-LEFT(gone) goes out before the uplink stops
    this.#stopUplink(session);
    this.#slots.release(session);
  }

  /** Stops everything; frees the slots this relay holds so producers can move at once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#slots.releaseAll();
    for (const s of [...this.#uplinks.keys()]) this.#stopUplink(s);
    this.#mirrors.clear();
    this.#holdSub?.unsubscribe();
    this.#holds.clear();
    this.#byTag.clear();
    await this.#nc.close().catch(() => {});
  }

  // ---- origin side ----------------------------------------------------------------------

  /** Publishes what the uplink has not yet published. */
  #publishFrom(session: RelaySession): void {
    const up = this.#uplinks.get(session);
    if (up === undefined) return;
    const subject = this.#subject(session);
    const max = this.#maxPayload();
    for (;;) {
      const items = session.take(up, Math.min(RUN_BUDGET, max));
      if (items.length === 0) return;
      for (const item of items) {
        if (item.kind === "bytes") {
          if (item.bytes.length + ENVELOPE > max) {
            // One frame larger than NATS takes: mirrors will report the gap.
            this.#s.unpublished++;
            this.#log.warn("cluster.frame_too_large", { route: session.name, max });
            continue;
          }
          this.#publish(subject, Kind.Data, item.bytes);
        } else if (item.kind === "control") {
          const m = item.message;
          if (m.kind === ControlKind.StreamStart) {
            this.#publish(subject, Kind.Start, encodeControl(m));
          } else if (m.kind === ControlKind.ProducerLeft) {
            this.#publish(subject, Kind.Left, new Uint8Array([m.reason]));
          }
          // LAGGED (the uplink was overtaken) needs no message: mirrors see the seq jump.
        }
      }
    }
  }

  #beat(): void {
    const now = Date.now();
    for (const [session] of this.#uplinks) {
      if (session.origin !== "local") continue;
      const start = session.currentStream;
      const flags = (start !== undefined ? BEAT_LIVE : 0) |
        (session.localProducer ? BEAT_PRODUCER : 0);
      const head = new Uint8Array(9);
      head[0] = flags;
      writeU64BE(head, 1, session.nextSeq);
      this.#publish(
        this.#subject(session),
        Kind.Beat,
        start === undefined ? head : concat([
          head,
          encodeControl({ kind: ControlKind.StreamStart, ...start, firstSeq: session.nextSeq }),
        ]),
      );
    }
    // Relays whose blocking consumers held our producers but went silent stop holding.
    this.#holds.expire(now, 3 * this.#o.beatMs, (tag, peers) => {
      const session = this.#byTag.get(tag);
      if (session === undefined) return;
      if (session.localProducer) {
        this.#s.holdsExpired += peers.length;
        for (const relay of peers) {
          this.#log.warn("cluster.hold_expired", { route: session.name, relay });
        }
      }
      this.#applyHolds(session);
    });
    this.#mirrors.beat(now, this.#o.beatMs);
  }

  #publish(subject: string, kind: number, payload: Uint8Array): void {
    if (!this.#connected) {
      this.#s.unpublished++;
      return;
    }
    const msg = new Uint8Array(ENVELOPE + payload.length);
    msg[0] = kind;
    msg.set(this.#id, 1);
    msg.set(payload, ENVELOPE);
    try {
      this.#nc.publish(subject, msg);
      this.#s.published++;
    } catch (e) {
      this.#s.unpublished++;
      this.#log.debug("cluster.publish_failed", { error: String(e) });
    }
  }

  #stopUplink(session: RelaySession): void {
    const up = this.#uplinks.get(session);
    if (up === undefined) return;
    this.#uplinks.delete(session);
    session.removeUplink(up);
  }

  #subscribe(subject: string, onMsg: (msg: NatsMsg) => void): NatsSub | undefined {
    try {
      return this.#nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err === null || err === undefined) onMsg(msg);
        },
      });
    } catch (e) {
      this.#log.warn("cluster.subscribe_failed", { subject, error: String(e) });
      return undefined;
    }
  }

  /** A relay announced what its blocking consumers on a session still need (or let go). */
  #receiveAck(msg: NatsMsg): void {
    const tag = msg.subject.slice(this.#o.prefix.length + 3);
    const r = tag.length !== 2 * STREAM_TAG_LENGTH
      ? "rejected"
      : this.#holds.receive(tag, msg.data, Date.now());
    if (r === "rejected") this.#s.rejected++;
    if (r !== "changed") return;
    const session = this.#byTag.get(tag);
    if (session !== undefined) this.#applyHolds(session);
  }

  /** Hands the session the strictest hold of other relays ({@link HoldTable.strictest}). */
  #applyHolds(session: RelaySession): void {
    session.setRemoteFloor(this.#holds.strictest(this.#key(session), session.currentStream?.epoch));
  }

  async #watchStatus(): Promise<void> {
    try {
      for await (const s of this.#nc.status()) {
        if (s.type === "disconnect" && this.#connected) {
          this.#connected = false;
          this.#log.warn("cluster.disconnected", { detail: "local-only until NATS returns" });
        } else if (s.type === "reconnect" && !this.#connected) {
          this.#connected = true;
          this.#log.warn("cluster.reconnected", {});
          void this.#slots.refresh();
        }
      }
    } catch {
      // The connection was closed.
    }
  }

  /** {@link SessionObserver}: blocking consumers here moved; tell the origin, coalesced. */
  blockersMoved(session: RelaySession): void {
    if (!this.#closed) this.#mirrors.blockersMoved(session);
  }

  // ---- names ----------------------------------------------------------------------------

  #subject(session: RelaySession): string {
    return `${this.#o.prefix}.s.${toHex(session.tag)}`;
  }

  /** Flow control: `.h.` is heard by every relay, `.a.` by relays with the session. */
  #ackSubject(session: RelaySession, toAll: boolean): string {
    return `${this.#o.prefix}.${toAll ? "h" : "a"}.${toHex(session.tag)}`;
  }

  #key(session: RelaySession): string {
    return toHex(session.tag);
  }

  #maxPayload(): number {
    return this.#nc.info?.max_payload ?? 1 << 20;
  }
}
