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
 * The `nats` package is loaded only when a relay is started with `cluster`.
 */

import { concat, equals, readU64BE, toHex, writeU64BE } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/types.ts";
import {
  ControlKind,
  decodeControl,
  encodeControl,
  LeftReason,
  type StreamStart,
  verifyStreamStart,
} from "../protocol/control.ts";
import { parseDataHeader } from "../protocol/data_frame.ts";
import { FRAME_HEADER, FrameType } from "../protocol/framer.ts";
import { RelayError } from "../errors.ts";
import { EPOCH_LENGTH, STREAM_TAG_LENGTH } from "../protocol/session.ts";
import type { Logger } from "./log.ts";
import type {
  ConsumerSub,
  Floor,
  RelaySession,
  SessionObserver,
  SubscriberConn,
} from "./session.ts";

/** How a relay joins a cluster. */
export interface ClusterOptions {
  /** NATS server URL(s), e.g. `"nats://127.0.0.1:4222"`. The server needs JetStream (`-js`). */
  readonly servers: string | readonly string[];
  /** Subject prefix and key-value bucket stem, shared by the cluster. Default `"hydra"`. */
  readonly prefix?: string;
  /** A producer slot not refreshed for this long expires (ms). Default 5,000. */
  readonly slotTtlMs?: number;
  /** Interval of the origin's beats; an origin silent for 3 beats counts as lost (ms).
   * Default 1,000. */
  readonly beatMs?: number;
  /** NATS credentials, when the server asks for them. */
  readonly user?: string;
  /** NATS password. */
  readonly pass?: string;
  /** NATS token. */
  readonly token?: string;
}

/** {@link ClusterOptions} with defaults applied (credentials left out). */
export type ResolvedClusterOptions = Required<Omit<ClusterOptions, "user" | "pass" | "token">>;

/** Cluster counters, part of the relay's stats. */
export interface ClusterStats {
  /** Connected to NATS now. */
  readonly connected: boolean;
  /** Producer slots this relay holds. */
  readonly slots: number;
  /** Messages published (frame runs, starts, departures, beats). */
  readonly published: number;
  /** Messages received for mirrored sessions. */
  readonly received: number;
  /** Messages not published because NATS was unreachable or a frame exceeds its max payload. */
  readonly unpublished: number;
  /** Messages received that could not be used (malformed, unverifiable start). */
  readonly rejected: number;
  /** Producer joins refused because another relay holds the slot (or slots lost to one). */
  readonly slotConflicts: number;
  /** Gaps in mirrored streams (frames that never arrived), each told to consumers as LAGGED. */
  readonly gaps: number;
  /** Other relays whose blocking consumers hold back producers on this relay now. */
  readonly holding: number;
  /** Relays that stopped holding because they went silent (died, or NATS lost them). */
  readonly holdsExpired: number;
}

/** Envelope kinds on a session subject: `kind u8 ‖ origin relay id (8) ‖ payload`. */
const Kind = { Data: 1, Start: 2, Left: 3, Beat: 4 } as const;
const ORIGIN_ID = 8;
const ENVELOPE = 1 + ORIGIN_ID;
const BEAT_LIVE = 1;
const BEAT_PRODUCER = 2;
/** Flow-control message: `relay id (8) ‖ holding u8 ‖ seq u64 ‖ epoch (16)`. */
const ACK_LENGTH = ORIGIN_ID + 1 + 8 + EPOCH_LENGTH;
/** A moved floor is announced after at most this long (ms), or at once when it moved by an
 * eighth of a ring and no announcement is pending. */
const ACK_DELAY_MS = 2;
/** Routes with holds from other relays, and relays holding one route, at most (a bound on
 * what NATS can make this relay remember). */
const MAX_HELD_ROUTES = 65_536;
const MAX_HOLDERS = 1_024;
/** A run published at most this large (a single larger frame goes alone). */
const RUN_BUDGET = 256 * 1024;

// The subset of the nats package used here.
interface NatsMsg {
  readonly subject: string;
  readonly data: Uint8Array;
}
interface NatsSub {
  unsubscribe(): void;
}
interface KvEntry {
  readonly value: Uint8Array;
  readonly revision: number;
  readonly operation: string;
}
interface Kv {
  create(k: string, v: Uint8Array): Promise<number>;
  update(k: string, v: Uint8Array, version: number): Promise<number>;
  get(k: string): Promise<KvEntry | null>;
  delete(k: string, opts?: { previousSeq?: number }): Promise<void>;
}
interface NatsConnection {
  readonly info?: { readonly max_payload: number };
  publish(subject: string, data: Uint8Array): void;
  subscribe(subject: string, opts: { callback: (err: unknown, msg: NatsMsg) => void }): NatsSub;
  jetstream(): { views: { kv(name: string, opts: object): Promise<Kv> } };
  status(): AsyncIterable<{ type: string }>;
  close(): Promise<void>;
  isClosed(): boolean;
}
interface NatsModule {
  connect(opts: object): Promise<NatsConnection>;
}

interface Held {
  /** KV revision of our entry; 0 while unclaimed (NATS was down when the producer joined). */
  revision: number;
  /** When it was claimed (ms). */
  readonly since: number;
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

/** What another relay's blocking consumers still need, and when it said so (origin side). */
interface Hold extends Floor {
  readonly at: number;
}

/** One relay's membership of a cluster. */
export class Cluster implements SessionObserver {
  readonly #o: ResolvedClusterOptions;
  readonly #log: Logger;
  readonly #crypto: CryptoProvider;
  readonly #id: Uint8Array;
  readonly #idHex: string;
  readonly #nc: NatsConnection;
  #kv: Kv | undefined;
  #connected = true;
  readonly #held = new Map<RelaySession, Held>();
  readonly #uplinks = new Map<RelaySession, ConsumerSub>();
  readonly #mirrors = new Map<RelaySession, Mirror>();
  /** Sessions on this relay by stream tag (hex), for flow-control messages. */
  readonly #byTag = new Map<string, RelaySession>();
  /**
   * Holds of other relays per stream tag (hex), then relay id. Their start, end, epoch and a
   * repeat every beat come on one wildcard subscription, so they are known before a session
   * (or its producer) shows up here; they matter while a local producer holds the slot.
   */
  readonly #holds = new Map<string, Map<string, Hold>>();
  readonly #holdSub: NatsSub | undefined;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  #closed = false;
  #s = {
    published: 0,
    received: 0,
    unpublished: 0,
    rejected: 0,
    slotConflicts: 0,
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
    this.#kv = kv;
    this.#crypto = crypto;
    this.#log = log;
    this.#id = crypto.randomBytes(ORIGIN_ID);
    this.#idHex = toHex(this.#id);
    this.#holdSub = this.#subscribe(`${o.prefix}.h.*`, (msg) => this.#receiveAck(msg));
    this.#timers.push(setInterval(() => this.#beat(), o.beatMs));
    this.#timers.push(setInterval(() => this.#refresh(), Math.max(50, o.slotTtlMs / 3)));
    void this.#watchStatus();
  }

  /**
   * Connects to NATS and opens the producer-slot bucket.
   * @throws {RelayError} `connect-failed` when NATS is unreachable or has no JetStream;
   *   `unsupported` when the `nats` package is missing.
   */
  static async join(
    options: ClusterOptions,
    crypto: CryptoProvider,
    log: Logger,
  ): Promise<Cluster> {
    const o = resolveClusterOptions(options);
    let nats: NatsModule;
    try {
      nats = await import("nats") as unknown as NatsModule;
    } catch (e) {
      throw new RelayError("unsupported", `cluster mode needs the nats package: ${e}`);
    }
    let nc: NatsConnection;
    try {
      nc = await nats.connect({
        servers: typeof options.servers === "string" ? [options.servers] : [...options.servers],
        name: "hydra-relay",
        noEcho: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        timeout: 5000,
        ...(options.user === undefined ? {} : { user: options.user, pass: options.pass }),
        ...(options.token === undefined ? {} : { token: options.token }),
      });
    } catch (e) {
      throw new RelayError(
        "connect-failed",
        `cannot reach NATS at ${o.servers}: ${(e as Error).message}`,
      );
    }
    let kv: Kv;
    try {
      kv = await openBucket(nc, `${o.prefix}_producers`, o.slotTtlMs);
    } catch (e) {
      await nc.close().catch(() => {});
      throw new RelayError(
        "connect-failed",
        `NATS at ${o.servers} gave no key-value bucket for producer slots (JetStream needs ` +
          `nats-server -js): ${(e as Error).message}`,
      );
    }
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
    for (const [tag, peers] of this.#holds) {
      if (this.#byTag.get(tag)?.localProducer) holding += peers.size;
    }
    return { connected: this.#connected, slots: this.#held.size, ...this.#s, gaps, holding };
  }

  // ---- sessions -------------------------------------------------------------------------

  /** A session appeared on this relay: follow its subject (for when its producer is elsewhere). */
  attach(session: RelaySession): void {
    if (this.#closed || this.#mirrors.has(session)) return;
    const sub = this.#subscribe(this.#subject(session), (msg) => this.#receive(session, msg.data));
    const ackSub = this.#subscribe(
      this.#ackSubject(session, false),
      (msg) => this.#receiveAck(msg),
    );
    this.#byTag.set(this.#key(session), session);
    this.#applyHolds(session);
    this.#mirrors.set(session, {
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

  /** The session is gone from this relay. */
  detach(session: RelaySession): void {
    const m = this.#mirrors.get(session);
    if (m !== undefined) {
      this.#ack(session, m, undefined);
      m.sub?.unsubscribe();
      m.ackSub?.unsubscribe();
    }
    this.#mirrors.delete(session);
    if (this.#byTag.get(this.#key(session)) === session) this.#byTag.delete(this.#key(session));
    this.#stopUplink(session);
    this.#release(session);
  }

  /**
   * Claims the session's producer slot cluster-wide before a local producer joins.
   * @returns Nothing when the producer may join; a `producer-exists` error when another
   *   relay holds the slot.
   */
  async claim(session: RelaySession): Promise<RelayError | undefined> {
    const kv = this.#kv;
    if (!this.#connected || kv === undefined) {
      this.#log.warn("cluster.claim_deferred", { route: session.name, reason: "nats down" });
      this.#held.set(session, { revision: 0, since: Date.now() });
      return undefined;
    }
    const key = this.#key(session);
    try {
      const revision = await kv.create(key, this.#id);
      this.#held.set(session, { revision, since: Date.now() });
      return undefined;
    } catch (e) {
      if (!isWrongSeq(e)) return this.#claimFailed(session, e);
    }
    // Taken: by this relay (a producer rejoining here), or by another.
    try {
      const entry = await kv.get(key);
      if (entry !== null && entry.operation === "PUT" && !equals(entry.value, this.#id)) {
        this.#s.slotConflicts++;
        this.#log.info("cluster.slot_taken", { route: session.name, holder: toHex(entry.value) });
        return new RelayError(
          "producer-exists",
          "this session has a producer on another relay of the cluster",
        );
      }
      const revision = entry === null || entry.operation !== "PUT"
        ? await kv.create(key, this.#id)
        : await kv.update(key, this.#id, entry.revision);
      this.#held.set(session, { revision, since: Date.now() });
      return undefined;
    } catch (e) {
      if (isWrongSeq(e)) {
        this.#s.slotConflicts++;
        return new RelayError("producer-exists", "another relay claimed the producer slot first");
      }
      return this.#claimFailed(session, e);
    }
  }

  #claimFailed(session: RelaySession, e: unknown): undefined {
    // NATS trouble is not the producer's fault: admit it locally, claim when NATS is back.
    this.#log.warn("cluster.claim_deferred", { route: session.name, error: String(e) });
    this.#held.set(session, { revision: 0, since: Date.now() });
    return undefined;
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
        const m = this.#mirrors.get(session);
        if (m !== undefined) this.#ack(session, m, undefined); // its blockers are local now
      }
      return;
    }
    if (session.origin === "local" && session.inGrace) return; // still ours: it may come back
    this.#publishFrom(session); // END or PRODUCER-LEFT(gone) goes out before the uplink stops
    this.#stopUplink(session);
    this.#release(session);
  }

  /** Stops everything; frees the slots this relay holds so producers can move at once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    const kv = this.#kv;
    const releases = [...this.#held].map(([s, h]) =>
      h.revision > 0 && kv !== undefined && this.#connected
        ? kv.delete(this.#key(s), { previousSeq: h.revision }).catch(() => {})
        : undefined
    );
    this.#held.clear();
    await Promise.all(releases);
    for (const s of [...this.#uplinks.keys()]) this.#stopUplink(s);
    for (const [s, m] of this.#mirrors) this.#ack(s, m, undefined);
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
    for (const [tag, peers] of this.#holds) {
      const session = this.#byTag.get(tag);
      let expired = false;
      for (const [peer, hold] of peers) {
        if (now - hold.at <= 3 * this.#o.beatMs) continue;
        peers.delete(peer);
        expired = true;
        if (!session?.localProducer) continue; // held nothing here
        this.#s.holdsExpired++;
        this.#log.warn("cluster.hold_expired", { route: session.name, relay: peer });
      }
      if (peers.size === 0) this.#holds.delete(tag);
      if (expired && session !== undefined) this.#applyHolds(session);
    }
    // Holding mirrors repeat their floor: the origin lets go of a silent one.
    for (const [session, m] of this.#mirrors) {
      if (m.acked !== undefined) this.#ack(session, m, session.blockingFloor(), true);
    }
    // Mirrors whose origin went silent: its relay died or NATS is unreachable.
    for (const [session, m] of this.#mirrors) {
      if (
        session.origin === "remote" && session.producer !== undefined &&
        !session.localProducer && now - m.lastHeard > 3 * this.#o.beatMs
      ) {
        this.#log.info("cluster.origin_silent", { route: session.name });
        session.mirrorLeft(false);
      }
    }
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
    const { data } = msg;
    const tag = msg.subject.slice(this.#o.prefix.length + 3);
    if (
      data.length !== ACK_LENGTH || data[ORIGIN_ID]! > 1 || tag.length !== 2 * STREAM_TAG_LENGTH
    ) {
      this.#s.rejected++;
      return;
    }
    const peer = toHex(data.subarray(0, ORIGIN_ID));
    let peers = this.#holds.get(tag);
    if (data[ORIGIN_ID] === 0) {
      if (peers?.delete(peer) !== true) return;
      if (peers.size === 0) this.#holds.delete(tag);
    } else {
      if (peers === undefined) {
        // Holds arrive for sessions this relay may never see: bounded, and they expire.
        if (this.#holds.size >= MAX_HELD_ROUTES) {
          this.#s.rejected++;
          return;
        }
        this.#holds.set(tag, peers = new Map());
      }
      if (!peers.has(peer) && peers.size >= MAX_HOLDERS) {
        this.#s.rejected++;
        return;
      }
      peers.set(peer, {
        seq: readU64BE(data, ORIGIN_ID + 1),
        epoch: data.slice(ORIGIN_ID + 9),
        at: Date.now(),
      });
    }
    const session = this.#byTag.get(tag);
    if (session !== undefined) this.#applyHolds(session);
  }

  /**
   * Hands the session the strictest hold: one from a relay that has not seen the live stream
   * start (another epoch: it holds all of the stream), else the lowest seq.
   */
  #applyHolds(session: RelaySession): void {
    const live = session.currentStream;
    let floor: Hold | undefined;
    for (const hold of this.#holds.get(this.#key(session))?.values() ?? []) {
      if (live === undefined || !equals(hold.epoch, live.epoch)) {
        floor = hold;
        break;
      }
      if (floor === undefined || hold.seq < floor.seq) floor = hold;
    }
    session.setRemoteFloor(floor);
  }

  #release(session: RelaySession): void {
    const h = this.#held.get(session);
    if (h === undefined) return;
    this.#held.delete(session);
    if (h.revision > 0 && this.#connected && this.#kv !== undefined) {
      this.#kv.delete(this.#key(session), { previousSeq: h.revision }).catch((e) =>
        this.#log.debug("cluster.release_failed", { route: session.name, error: String(e) })
      );
    }
  }

  /** Keeps held slots alive; claims those admitted while NATS was down. */
  async #refresh(): Promise<void> {
    const kv = this.#kv;
    if (!this.#connected || kv === undefined) return;
    for (const [session, h] of [...this.#held]) {
      const key = this.#key(session);
      const live = session.localProducer || (session.origin === "local" && session.inGrace);
      if (!live && Date.now() - h.since > 1000) {
        // Claimed for a producer whose connection closed before it joined.
        this.#release(session);
        continue;
      }
      try {
        h.revision = h.revision > 0
          ? await kv.update(key, this.#id, h.revision)
          : await kv.create(key, this.#id);
      } catch (e) {
        if (!isWrongSeq(e)) continue; // NATS trouble: next round
        const entry = await kv.get(key).catch(() => null);
        if (entry !== null && entry.operation === "PUT" && equals(entry.value, this.#id)) {
          h.revision = entry.revision;
        } else if (entry === null || entry.operation !== "PUT") {
          h.revision = await kv.create(key, this.#id).catch(() => 0);
        } else {
          // Our entry expired (NATS was unreachable longer than the TTL) and another relay took
          // it: two producers. Keep serving the local one; operators see it in the log/metrics.
          this.#s.slotConflicts++;
          this.#log.error("cluster.slot_lost", {
            route: session.name,
            holder: toHex(entry.value),
          });
          this.#held.delete(session);
        }
      }
    }
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
          void this.#refresh();
        }
      }
    } catch {
      // The connection was closed.
    }
  }

  // ---- mirror side ----------------------------------------------------------------------

  /** {@link SessionObserver}: blocking consumers here moved; tell the origin, coalesced. */
  blockersMoved(session: RelaySession): void {
    const m = this.#mirrors.get(session);
    // Called on every take by a blocking consumer; with an announcement pending, its timer
    // reads the floor then (one O(consumers) scan per 2 ms, not per take).
    if (m === undefined || this.#closed || m.ackTimer !== undefined) return;
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
        if (this.#mirrors.get(session) === m) this.#ack(session, m, session.blockingFloor());
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
    const msg = new Uint8Array(ACK_LENGTH);
    msg.set(this.#id, 0);
    if (floor !== undefined) {
      msg[ORIGIN_ID] = 1;
      writeU64BE(msg, ORIGIN_ID + 1, floor.seq);
      msg.set(floor.epoch, ORIGIN_ID + 9);
    }
    const was = m.acked;
    m.acked = floor;
    if (!this.#connected) return;
    const toAll = repeat || floor === undefined || was === undefined ||
      !equals(floor.epoch, was.epoch);
    try {
      this.#nc.publish(this.#ackSubject(session, toAll), msg);
      this.#s.published++;
    } catch (e) {
      this.#log.debug("cluster.publish_failed", { error: String(e) });
    }
  }

  #receive(session: RelaySession, data: Uint8Array): void {
    const m = this.#mirrors.get(session);
    if (m === undefined || data.length < ENVELOPE) return;
    this.#s.received++;
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
          this.#s.rejected++;
          this.#log.warn("cluster.rejected", { route: session.name, error: String(e) });
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
      if (!await verifyStreamStart(this.#crypto, session.routeId, c)) {
        throw new RelayError("auth-failed", "stream start with a bad signature");
      }
      m.verified = c.signature;
    }
    return c;
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

/** Opens (creating if needed) the slot bucket; relays starting together race to create it. */
async function openBucket(nc: NatsConnection, name: string, ttl: number): Promise<Kv> {
  for (let attempt = 1;; attempt++) {
    try {
      return await nc.jetstream().views.kv(name, { ttl, history: 1 });
    } catch (e) {
      if (attempt >= 5 || !/overlap|already in use|exists/i.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

function isWrongSeq(e: unknown): boolean {
  return /wrong last sequence|key exists/i.test(String((e as Error)?.message ?? e));
}

/**
 * Checks and completes cluster options.
 * @throws {RangeError} for a bad value.
 */
export function resolveClusterOptions(o: ClusterOptions): ResolvedClusterOptions {
  const servers = typeof o.servers === "string" ? [o.servers] : o.servers;
  if (!Array.isArray(servers) || servers.length === 0 || servers.some((s) => !s)) {
    throw new RangeError(`"cluster.servers" needs at least one NATS URL (nats://host:4222)`);
  }
  const prefix = o.prefix ?? "hydra";
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) {
    throw new RangeError(`"cluster.prefix" must be 1-32 letters, digits, "_" or "-"`);
  }
  const slotTtlMs = o.slotTtlMs ?? 5000;
  const beatMs = o.beatMs ?? 1000;
  if (!Number.isInteger(slotTtlMs) || slotTtlMs < 1000) {
    throw new RangeError(`"cluster.slotTtlMs" must be an integer ≥ 1000`);
  }
  if (!Number.isInteger(beatMs) || beatMs < 10 || beatMs > 60_000) {
    throw new RangeError(`"cluster.beatMs" must be an integer between 10 and 60000`);
  }
  return { servers: [...servers], prefix, slotTtlMs, beatMs };
}
