/**
 * @module
 * The relay's driver for one client connection (docs/PROTOCOL.md §3, §6): the Noise NX
 * handshake as responder (_handshake.ts), then a read loop that verifies joins, checks and
 * appends producer frames, answers pings; and one writer ("pump") that seals control messages
 * in order and forwards each consumer's ring entries as frame-aligned runs. Every failure here
 * ends this connection only. It stays one file: every part reads and writes the same
 * connection state (issue 23 reworks it into one callback-driven state machine).
 */

import { Signal } from "../_signal.ts";
import { equalsAt, readU32BE, readU64, toHex } from "../bytes.ts";
import { RelayError } from "../errors.ts";
import {
  CloseReason,
  CONNECTION_TAG,
  ControlKind,
  type ControlMessage,
  decodeControl,
  decodeJoinOptions,
  encodeControl,
  MAX_CONTROL,
  verifyStreamStart,
} from "../protocol/control.ts";
import {
  checkDataBody,
  DATA_HEADER,
  DATA_SEQ_AT,
  DATA_TAG_AT,
  DataFlag,
} from "../protocol/data_frame.ts";
import {
  encodeFrame,
  type Frame,
  FRAME_HEADER,
  FrameDecoder,
  FrameType,
} from "../protocol/framer.ts";
import { verifyGrant } from "../protocol/capability.ts";
import { Role, verifyJoin } from "../protocol/join.ts";
import type { CipherState } from "../protocol/noise.ts";
import { STREAM_TAG_LENGTH, streamTag } from "../protocol/session.ts";
import { formatAddr } from "../transport/_queues.ts";
import type { Conn, ConnSink } from "../transport/types.ts";
import { type ConnRole, countBy, type RelayContext } from "./context.ts";
import { acceptHandshake, HANDSHAKE_MAX } from "./_handshake.ts";
import type { Outbound } from "./_tamper.ts";
import type { ConsumerSub, RelaySession, SubscriberConn } from "./session.ts";

const EMPTY = new Uint8Array(0);
/** Limit on frame bodies until a producer joins: sealed control messages only. */
const CONTROL_FRAME_MAX = MAX_CONTROL + 16;
/**
 * Control messages queued for a client that does not read them (pongs, join answers)
 * before it is disconnected: the queue is the one thing a client can grow by asking.
 */
const MAX_QUEUED_CONTROL = 1024;
/** Bytes a consumer's turn may take from the ring before others get theirs. */
const TAKE_BUDGET = 256 * 1024;
/** Failed joins tolerated per connection before it is closed. */
const MAX_FAILED_JOINS = 8;
/**
 * How long a disconnected slow consumer gets to read what is queued, so that the ERROR
 * telling it why arrives behind the data it has not read yet (ms).
 */
export const SLOW_DRAIN_MS = 5000;
/** How long ACKs may be held back to be coalesced (ms). */
const ACK_DELAY = 20;

/**
 * The producer map of a connection that never produced: shared, always empty (only deleted
 * from, which changes nothing), so a consumer connection does not allocate a table it never
 * uses.
 */
const NO_PRODUCERS = new Map<string, never>();

interface QueuedControl {
  message: ControlMessage;
  close?: boolean;
}

/** The control queue of a connection that has queued nothing yet: shared, never written. */
const NO_CONTROL: readonly QueuedControl[] = Object.freeze([]);

interface ProducerSub {
  readonly session: RelaySession;
  started: boolean;
  unacked: boolean;
  /** The last appended seq (`readU64`'s forms: a number below 2^53, else a bigint). */
  lastSeq: number | bigint;
}

/** One client connection, as the relay sees it. */
export class ServerConnection implements SubscriberConn, ConnSink {
  /** Connection number (logs). */
  readonly id: number;
  readonly #conn: Conn;
  readonly #ctx: RelayContext;
  readonly #decoder = new FrameDecoder(HANDSHAKE_MAX);
  readonly #remote: string;
  #send: CipherState | undefined;
  #recv: CipherState | undefined;
  #hash: Uint8Array | undefined;
  /** Control messages to send; {@link NO_CONTROL} until the first (an idle connection's). */
  #control: QueuedControl[] = NO_CONTROL as QueuedControl[];
  readonly #consumers = new Map<string, ConsumerSub>();
  /** {@link NO_PRODUCERS} until this connection first joins as a producer (most never do). */
  #producers: Map<string, ProducerSub> = NO_PRODUCERS;
  /** The writer is running; it returns as soon as it has nothing to write. */
  #pumping = false;
  /** The running writer, for the teardown to wait on. */
  #pumped: Promise<void> | undefined;
  /** The writer sent the final CLOSE/ERROR and half-closed: it never runs again. */
  #pumpOver = false;
  /** Ring runs are taken and not all written yet (the pump is between take and write). */
  #taking = false;
  #dirty = false;
  /** A frame's handling is awaited: reading is paused and the decoder holds the rest. */
  #busy = false;
  #closing = false;
  #closed = false;
  /** The read side ended (end of stream, an error, or a local close). */
  #readEnded = false;
  #tornDown = false;
  #failedJoins = 0;
  #handshakeTimedOut = false;
  /** The relay refuses this client (its cap): the handshake only tells it why. */
  readonly #refused: boolean;
  #hsTimer: ReturnType<typeof setTimeout> | undefined;
  /** Why the connection ends: the first error that ended it (unset: the client left). */
  #closeCode: string | undefined;
  /** The error that ended the connection, for the closing log line. */
  #reason: RelayError | undefined;
  #lastRecv: number;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #lastProducer: { key: string; sub: ProducerSub } | undefined;
  /** Wakes the teardown once the read side ended. */
  #onReadEnd: (() => void) | undefined;
  readonly #done = new Signal();

  /**
   * The connection is a state machine driven by its transport's events: the handshake (a
   * short-lived async step), then every chunk through {@link ServerConnection.onData} (the
   * connection is its own reader, so an idle connection holds no suspended function and no
   * pending promise), a writer that runs only while there is something to write, and a
   * teardown once it ends.
   * @param id Connection number.
   * @param conn The accepted socket.
   * @param ctx Relay context.
   * @param refuse When set, the handshake completes only to tell the client why it is
   *   refused (e.g. the connection cap), then the connection closes.
   */
  constructor(id: number, conn: Conn, ctx: RelayContext, refuse?: RelayError) {
    this.id = id;
    this.#conn = conn;
    this.#ctx = ctx;
    // Logged at info and debug only: below that an idle connection keeps no address string.
    this.#remote = ctx.log.enabled("info") ? formatAddr(conn.remoteAddr) : "";
    this.#lastRecv = ctx.now();
    this.#refused = refuse !== undefined;
    ctx.log.debug("conn.open", { conn: this.id, remote: this.#remote });
    // Dropped once the handshake is done, so an open connection does not keep the timer.
    this.#hsTimer = setTimeout(() => {
      if (this.#send === undefined) {
        ctx.log.info("conn.handshake_timeout", { conn: this.id, remote: this.#remote });
        this.#handshakeTimedOut = true;
        this.#closeCode ??= "timeout";
        this.#destroy();
        // Counted now: the read it interrupts fails only after the teardown has begun.
        this.#fail(new RelayError("timeout", "handshake timed out"));
      }
    }, ctx.limits.handshakeTimeoutMs);
    this.#open(refuse);
  }

  /** Resolves when the connection is fully torn down (made on first use). */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  /** Milliseconds since the last byte from the client. */
  idleFor(now: number): number {
    return now - this.#lastRecv;
  }

  /** Whether the handshake completed. */
  get open(): boolean {
    return this.#send !== undefined && !this.#closing;
  }

  /** What the connection is doing: handshaking, producing, consuming, or joined to nothing. */
  get role(): ConnRole {
    if (this.#send === undefined) return "handshake";
    if (this.#producers.size > 0) return "producer";
    return this.#consumers.size > 0 ? "consumer" : "unjoined";
  }

  /** Consumer subscriptions, for the slow-consumer sweep. */
  get consumerSubs(): Iterable<ConsumerSub> {
    return this.#consumers.values();
  }

  /** Whether ring memory may still be in use here: taken and unwritten, or not yet sent. */
  get holding(): boolean {
    return this.#taking || this.#conn.writableLength > 0;
  }

  /** The connection has something new to send: runs the writer unless it is running. */
  wake(): void {
    this.#dirty = true;
    if (this.#pumping || this.#pumpOver || this.#send === undefined || this.#closed) return;
    this.#pumping = true;
    this.#pumped = this.#pump();
  }

  /**
   * Ends the connection: tells the client why (a connection-level ERROR or CLOSE, when the
   * handshake is done), lets queued frames drain for up to `drainMs`, then closes. Its
   * subscriptions leave their sessions now.
   */
  shutdown(error: RelayError | undefined, drainMs = 1000): void {
    if (this.#closing || this.#closed) return;
    this.#closing = true;
    if (error !== undefined) this.#closeCode ??= error.code;
    if (this.#send !== undefined) {
      const message: ControlMessage = error === undefined || error.code === "going-away"
        ? {
          kind: ControlKind.Close,
          reason: error === undefined ? CloseReason.Normal : CloseReason.GoingAway,
          message: error?.message ?? "",
        }
        : {
          kind: ControlKind.Error,
          code: error.code,
          tag: CONNECTION_TAG,
          role: 0,
          message: error.message,
        };
      this.#pushControl({ message, close: true });
      this.wake();
      setTimeout(() => this.#destroy(), drainMs);
    } else {
      this.#destroy();
    }
    this.#teardown();
  }

  #destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing = true;
    this.#conn.close();
    this.#endRead();
    this.#teardown();
  }

  /** The handshake, then push-mode reading; a failure anywhere ends this connection only. */
  async #open(refuse: RelayError | undefined): Promise<void> {
    try {
      await this.#handshake(refuse);
    } catch (e) {
      this.#startReading();
      return this.#fail(e);
    } finally {
      clearTimeout(this.#hsTimer);
      this.#hsTimer = undefined;
    }
    if (refuse !== undefined) {
      this.#closeCode = "refused";
      await this.#conn.closeWrite().catch(() => {});
      this.#startReading();
      this.#teardown();
      return;
    }
    this.#ctx.log.info("conn.ready", { conn: this.id, remote: this.#remote });
    this.#startReading();
  }

  #startReading(): void {
    try {
      this.#conn.startReading(this);
    } catch {
      // Closed meanwhile: the teardown does not wait for a read side that never started.
      this.#endRead();
    }
  }

  /**
   * A chunk from the client (the transport's push-mode reader; not for other callers). Frames
   * are handled one at a time without an object per frame: a chunk may hold a thousand data
   * frames. After the goodbye, whatever still comes is dropped until the peer closes.
   */
  onData(chunk: Uint8Array): void {
    if (this.#closing) return;
    this.#lastRecv = this.#ctx.now();
    this.#ctx.stats.bytesIn += chunk.length;
    try {
      this.#decoder.feed(chunk);
    } catch (e) {
      return this.#fail(e);
    }
    this.#frames();
  }

  /** The client's side ended (the transport's push-mode reader; not for other callers). */
  onEnd(error: unknown): void {
    this.#endRead();
    if (this.#closing) return;
    if (error === undefined) this.shutdown(undefined, 1000);
    else this.#fail(error);
  }

  #endRead(): void {
    this.#readEnded = true;
    const wake = this.#onReadEnd;
    this.#onReadEnd = undefined;
    wake?.();
  }

  /**
   * Handles the frames the decoder holds until the chunk is used up, or until a frame's
   * handling must be awaited (a control message, a producer the ring makes wait): then reading
   * pauses and resumes with the decoder's next frame once it is done.
   */
  #frames(): void {
    const d = this.#decoder;
    try {
      while (d.next()) {
        if (this.#closing) break;
        const type = d.frameType;
        let wait: Promise<void> | undefined;
        if (type === FrameType.Data) {
          wait = this.#onData(d.frameBuffer, d.frameOffset, d.frameLength);
        } else if (type === FrameType.Control) {
          wait = this.#onControl(d.frame());
        } else {
          throw new RelayError("protocol-error", `unexpected frame type ${type}`);
        }
        if (wait !== undefined) {
          if (!this.#busy) {
            this.#busy = true;
            this.#conn.pauseReading();
          }
          wait.then(() => this.#frames(), (e) => {
            this.#fail(e);
            this.#unpause();
          });
          return;
        }
      }
    } catch (e) {
      this.#fail(e);
    }
    this.#unpause();
  }

  /** Reading goes on after an awaited frame (closing too: what still comes is dropped, and
   * the end is seen). */
  #unpause(): void {
    if (!this.#busy) return;
    this.#busy = false;
    this.#conn.resumeReading();
  }

  /** The connection failed (handshake, a frame, the socket): count, log, say why, end. */
  #fail(e: unknown): void {
    if (this.#reason !== undefined) return;
    const reason = e instanceof RelayError ? e : new RelayError("protocol-error", String(e));
    this.#reason = reason;
    this.#closeCode ??= this.#handshakeTimedOut ? "timeout" : reason.code;
    if (this.#send === undefined && !this.#refused) {
      this.#ctx.stats.handshakeFailures++;
      countBy(this.#ctx.stats.handshakeFailuresBy, this.#closeCode);
    }
    if (reason.code === "protocol-error" || reason.code === "frame-too-large") {
      this.#ctx.stats.protocolErrors++;
    }
    if (!this.#closed) {
      this.#ctx.log.info("conn.error", {
        conn: this.id,
        remote: this.#remote,
        code: reason.code,
        msg: reason.message,
      });
    }
    // Starts the teardown, or finds it started (a failure after the goodbye).
    this.shutdown(reason.code === "auth-failed" ? undefined : reason, 200);
  }

  /**
   * Once per connection: its subscriptions leave their sessions (producers start their grace
   * period) now, not after the drain; the writer sends the final CLOSE/ERROR and half-closes,
   * or gives up when the drain timer fires; then the client closes its side (or the timer does
   * it for it). Closing before that could discard the very message that says why.
   */
  async #teardown(): Promise<void> {
    if (this.#tornDown) return;
    this.#tornDown = true;
    clearTimeout(this.#hsTimer);
    this.#hsTimer = undefined;
    if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
    this.#release();
    if (this.#pumped !== undefined) await this.#pumped;
    if (!this.#readEnded) await new Promise<void>((resolve) => (this.#onReadEnd = resolve));
    this.#destroy();
    await this.#conn.closed;
    countBy(this.#ctx.stats.closesBy, this.#closeCode ?? "normal");
    this.#ctx.log.info("conn.close", {
      conn: this.id,
      remote: this.#remote,
      code: this.#reason?.code,
    });
    this.#done.resolve();
    this.#ctx.closed(this);
  }

  /** Detaches every subscription from its session. */
  #release(): void {
    for (const sub of this.#consumers.values()) sub.session.removeConsumer(sub);
    this.#consumers.clear();
    for (const p of this.#producers.values()) {
      if (p.session.producer === this) p.session.releaseProducer(p.session.ended);
    }
    this.#producers.clear();
  }

  /** Pull-mode reading, for the handshake only. */
  async #nextFrame(pending: Frame[]): Promise<Frame | null> {
    while (pending.length === 0) {
      const chunk = await this.#conn.read();
      if (chunk === null) return null;
      this.#lastRecv = this.#ctx.now();
      pending.push(...this.#decoder.push(chunk));
    }
    return pending.shift()!;
  }

  async #handshake(refuse: RelayError | undefined): Promise<void> {
    const keys = await acceptHandshake(this.#ctx, refuse, {
      next: (pending) => this.#nextFrame(pending),
      write: (bytes) => this.#conn.write(bytes),
    });
    if (keys === undefined) return;
    this.#send = keys.send;
    this.#recv = keys.recv;
    this.#hash = keys.hash;
    this.#decoder.maxBody = CONTROL_FRAME_MAX;
  }

  /**
   * Producer data, the frame `length` bytes at `offset` of `buf` (header included): check,
   * append, and only await when the ring is blocked.
   */
  #onData(buf: Uint8Array, offset: number, length: number): Promise<void> | undefined {
    const body = offset + FRAME_HEADER;
    const flags = checkDataBody(buf, body, length - FRAME_HEADER);
    const p = this.#producerFor(buf, body + DATA_TAG_AT);
    if (p === undefined || !p.started) {
      throw new RelayError(
        "protocol-error",
        "data frame for a session this connection does not produce",
      );
    }
    if (length > DATA_HEADER + this.#ctx.limits.maxFrameBytes) {
      throw new RelayError("frame-too-large", "data frame exceeds the limit");
    }
    // No view and no BigInt per frame: the ring keeps (buffer, offset, length), and seqs
    // below 2^53 stay doubles.
    const seq = readU64(buf, body + DATA_SEQ_AT);
    const session = p.session;
    if (!session.hasRoom(length)) {
      return (async () => {
        while (!session.hasRoom(length)) {
          if (this.#closing) return;
          await session.roomChanged();
        }
        this.#append(p, buf, offset, length, seq, flags);
      })();
    }
    this.#append(p, buf, offset, length, seq, flags);
    return undefined;
  }

  /**
   * The producer subscription of the stream tag at `at` in `buf`. Consecutive frames almost
   * always carry the same tag, so the last match is checked byte by byte before the map (which
   * would cost a hex string per frame).
   */
  #producerFor(buf: Uint8Array, at: number): ProducerSub | undefined {
    const last = this.#lastProducer;
    if (
      last !== undefined && this.#producers.get(last.key) === last.sub &&
      equalsAt(last.sub.session.tag, buf, at)
    ) {
      return last.sub;
    }
    const key = toHex(buf.subarray(at, at + STREAM_TAG_LENGTH));
    const sub = this.#producers.get(key);
    this.#lastProducer = sub === undefined ? undefined : { key, sub };
    return sub;
  }

  #append(
    p: ProducerSub,
    buf: Uint8Array,
    offset: number,
    length: number,
    seq: number | bigint,
    flags: number,
  ): void {
    if (p.session.appendData(buf, seq, flags, offset, length)) {
      this.#ctx.stats.framesIn++;
      p.lastSeq = seq;
      p.unacked = true;
      if (p.session.ended) {
        // END: acknowledge at once so the producer's close() returns promptly, and free
        // the producer slot for the session's next stream — unless the END is a rotation
        // (ROTATE): the same producer starts the next stream on this connection.
        this.#sendAcks();
        if ((flags & DataFlag.Rotate) !== 0) return;
        p.session.releaseProducer(true);
        this.#producers.delete(toHex(p.session.tag));
        return;
      }
      this.#ackTimer ??= setTimeout(() => this.#sendAcks(), ACK_DELAY);
    }
  }

  #sendAcks(): void {
    if (this.#ackTimer !== undefined) clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    for (const p of this.#producers.values()) {
      if (!p.unacked) continue;
      p.unacked = false;
      const ack: ControlMessage = {
        kind: ControlKind.Ack,
        tag: p.session.tag,
        seq: BigInt(p.lastSeq),
      };
      // An ACK still queued for this session (the client is slow to read) is moved forward
      // rather than joined by another.
      const queued = this.#control.find((c) =>
        c.message.kind === ControlKind.Ack && c.message.tag === p.session.tag
      );
      if (queued !== undefined) queued.message = ack;
      else this.#queue(ack);
    }
  }

  #queue(message: ControlMessage): void {
    if (this.#closing) return;
    if (this.#control.length >= MAX_QUEUED_CONTROL) {
      // Called from timers too: never throw, end this connection.
      this.#ctx.log.info("conn.error", { conn: this.id, code: "slow-consumer" });
      this.shutdown(new RelayError("slow-consumer", "the client does not read what it is sent"));
      return;
    }
    this.#pushControl({ message });
    this.wake();
  }

  #pushControl(item: QueuedControl): void {
    if (this.#control === NO_CONTROL) this.#control = [item];
    else this.#control.push(item);
  }

  async #onControl(frame: Frame): Promise<void> {
    let plain: Uint8Array;
    try {
      plain = await this.#recv!.decryptWithAd(EMPTY, frame.body);
    } catch {
      throw new RelayError("auth-failed", "authentication failed");
    }
    const m = decodeControl(plain);
    switch (m.kind) {
      case ControlKind.Join:
        return await this.#onJoin(m);
      case ControlKind.StreamStart:
        return await this.#onStreamStart(m);
      case ControlKind.Grant:
        return await this.#onGrant(m);
      case ControlKind.Ping: {
        // One pong pending at most: a client pinging without reading grows nothing.
        const last = this.#control[this.#control.length - 1];
        if (last?.message.kind === ControlKind.Pong) {
          last.message = { kind: ControlKind.Pong, nonce: m.nonce };
        } else this.#queue({ kind: ControlKind.Pong, nonce: m.nonce });
        return;
      }
      case ControlKind.Pong:
        return;
      case ControlKind.Leave:
        return this.#onLeave(m.tag, m.role);
      case ControlKind.Close:
        this.#ctx.log.debug("conn.client_close", { conn: this.id });
        this.shutdown(undefined, 1000);
        return;
      default:
        throw new RelayError(
          "protocol-error",
          `control message ${m.kind} not allowed from a client`,
        );
    }
  }

  async #onJoin(m: Extract<ControlMessage, { kind: typeof ControlKind.Join }>): Promise<void> {
    const { crypto, log, limits } = this.#ctx;
    const tag = streamTag(crypto, m.routeId);
    const key = toHex(tag);
    const refuse = (code: RelayError["code"], message: string) => {
      this.#ctx.stats.joinFailures++;
      countBy(this.#ctx.stats.joinFailuresBy, code);
      log.info("join.refused", { conn: this.id, role: roleName(m.role), code });
      this.#queue({ kind: ControlKind.Error, code, tag, role: m.role, message });
      if (code === "auth-failed" && ++this.#failedJoins >= MAX_FAILED_JOINS) {
        throw new RelayError("protocol-error", "too many failed joins");
      }
    };
    const options = decodeJoinOptions(m.options);
    // A reader proves its own key, which the writer (the route id) granted; a writer proves the
    // route id's key. A read capability never produces (docs/CAPABILITIES.md "Joins").
    const reader = options.reader;
    if (reader !== undefined && m.role !== Role.Consumer) {
      return refuse("auth-failed", "authentication failed");
    }
    const ok = (reader === undefined ||
      await verifyGrant(crypto, m.routeId, reader.generation, reader.readerKey, reader.grant)) &&
      await verifyJoin(crypto, {
        routeId: reader?.readerKey ?? m.routeId,
        handshakeHash: this.#hash!,
        role: m.role,
        options: m.options,
        proof: m.proof,
      });
    if (!ok) return refuse("auth-failed", "authentication failed");
    if (this.#consumers.size + this.#producers.size >= limits.maxSessionsPerConnection) {
      return refuse(
        "limit-exceeded",
        `at most ${limits.maxSessionsPerConnection} joins per connection`,
      );
    }
    const joined = m.role === Role.Producer ? this.#producers : this.#consumers;
    if (joined.has(key)) return refuse("protocol-error", "already joined in this role");
    const session = this.#ctx.session(m.routeId, tag);
    if (session instanceof RelayError) return refuse(session.code, session.message);
    if (m.role === Role.Producer) {
      if (session.localProducer) {
        return refuse("producer-exists", "this session already has a producer");
      }
      const denied = await this.#ctx.claim?.(session);
      if (denied !== undefined) return refuse(denied.code, denied.message);
      if (this.#closing || this.#closed) return;
      try {
        session.setProducer(this);
      } catch (e) {
        return refuse((e as RelayError).code, (e as RelayError).message);
      }
      if (this.#producers === NO_PRODUCERS) this.#producers = new Map();
      this.#producers.set(key, { session, started: false, unacked: false, lastSeq: -1n });
      this.#decoder.maxBody = Math.max(CONTROL_FRAME_MAX, limits.maxFrameBytes);
      this.#queue({ kind: ControlKind.Joined, tag, role: m.role });
    } else {
      let joined: ReturnType<typeof session.addConsumer>;
      try {
        joined = session.addConsumer(this, options.policy, options.resume, reader?.generation);
      } catch (e) {
        return refuse((e as RelayError).code, (e as RelayError).message);
      }
      const { sub, first } = joined;
      this.#consumers.set(key, sub);
      this.#queue({ kind: ControlKind.Joined, tag, role: m.role });
      for (const message of first) this.#queue(message);
    }
    log.info("join", { conn: this.id, route: session.name, role: roleName(m.role) });
  }

  /**
   * A joined reader proves one more generation (docs/PROTOCOL.md §6.3 GRANT): the same fields
   * and checks as a reader's JOIN, for a subscription it holds. A refusal answers ERROR for
   * that session and keeps the subscription.
   */
  async #onGrant(m: Extract<ControlMessage, { kind: typeof ControlKind.Grant }>): Promise<void> {
    const { crypto, log } = this.#ctx;
    const tag = streamTag(crypto, m.routeId);
    const refuse = (code: RelayError["code"], message: string) => {
      log.info("grant.refused", { conn: this.id, code });
      this.#queue({ kind: ControlKind.Error, code, tag, role: Role.Consumer, message });
      if (code === "auth-failed" && ++this.#failedJoins >= MAX_FAILED_JOINS) {
        throw new RelayError("protocol-error", "too many failed joins");
      }
    };
    const sub = this.#consumers.get(toHex(tag));
    const reader = decodeJoinOptions(m.options).reader;
    if (m.role !== Role.Consumer || sub === undefined || reader === undefined) {
      return refuse("protocol-error", "GRANT needs a reader's credentials for a joined session");
    }
    const ok =
      await verifyGrant(crypto, m.routeId, reader.generation, reader.readerKey, reader.grant) &&
      await verifyJoin(crypto, {
        routeId: reader.readerKey,
        handshakeHash: this.#hash!,
        role: m.role,
        options: m.options,
        proof: m.proof,
      });
    if (!ok) return refuse("auth-failed", "authentication failed");
    if (sub.done) return;
    try {
      sub.session.grantConsumer(sub, reader.generation);
    } catch (e) {
      return refuse((e as RelayError).code, (e as RelayError).message);
    }
    this.#queue({ kind: ControlKind.Joined, tag, role: Role.Consumer });
    log.info("grant", { conn: this.id, route: sub.session.name, generation: reader.generation });
  }

  async #onStreamStart(
    m: Extract<ControlMessage, { kind: typeof ControlKind.StreamStart }>,
  ): Promise<void> {
    const p = this.#producers.get(toHex(m.tag));
    if (p === undefined) {
      throw new RelayError(
        "protocol-error",
        "stream start for a session this connection does not produce",
      );
    }
    if (!await verifyStreamStart(this.#ctx.crypto, p.session.routeId, m)) {
      throw new RelayError("auth-failed", "authentication failed");
    }
    p.session.startStream(m);
    p.started = true;
  }

  #onLeave(tag: Uint8Array, role: number): void {
    const key = toHex(tag);
    if (role === Role.Consumer) {
      const sub = this.#consumers.get(key);
      if (sub === undefined) return;
      this.#consumers.delete(key);
      sub.session.removeConsumer(sub);
    } else {
      const p = this.#producers.get(key);
      if (p === undefined) return;
      this.#producers.delete(key);
      if (p.session.producer === this) p.session.releaseProducer(p.session.ended);
    }
  }

  /**
   * The single writer: control messages first (sealed in order), then consumer data. It runs
   * while there is something to write and returns when there is not; {@link wake} runs it
   * again.
   */
  async #pump(): Promise<void> {
    try {
      // Start after what woke it: a producer's chunk appends all its frames first, so each
      // consumer takes them as one run and writes once (not its first frame alone).
      await undefined;
      while (!this.#closed) {
        this.#dirty = false;
        // (Never shift the shared empty queue: frozen, it would throw.)
        const next = this.#control.length > 0 ? this.#control.shift() : undefined;
        if (next !== undefined) {
          await this.#writeControl(next.message);
          if (next.close === true) {
            this.#pumpOver = true;
            await this.#conn.closeWrite().catch(() => {});
            return;
          }
          continue;
        }
        let wrote = false;
        if (!this.#closing) {
          for (const [key, sub] of this.#consumers) {
            this.#taking = true;
            const items = sub.session.take(sub, TAKE_BUDGET);
            for (const item of items) {
              wrote = true;
              if (item.kind === "bytes") {
                this.#ctx.stats.framesOut += item.frames;
                this.#ctx.stats.bytesOut += item.bytes.length;
                if (this.#ctx.tamper === undefined) await this.#conn.write(item.bytes);
                else await this.#writeTampered(item.bytes);
              } else if (item.kind === "control") {
                await this.#writeControl(item.message);
              } else {
                this.#consumers.delete(key);
                sub.session.removeConsumer(sub);
                if (item.error?.code === "revoked") {
                  // Rotated out of this session only: the connection's other joins go on.
                  this.#ctx.log.info("consumer.revoked", {
                    conn: this.id,
                    route: sub.session.name,
                  });
                  await this.#writeControl({
                    kind: ControlKind.Error,
                    code: "revoked",
                    tag: sub.session.tag,
                    role: Role.Consumer,
                    message: item.error.message,
                  });
                } else if (item.error !== undefined) {
                  this.#ctx.log.info("consumer.dropped", {
                    conn: this.id,
                    route: sub.session.name,
                    code: item.error.code,
                  });
                  this.shutdown(item.error, SLOW_DRAIN_MS);
                }
              }
            }
            this.#taking = false;
          }
        }
        if (!wrote && !this.#dirty && this.#control.length === 0) return;
      }
    } catch (e) {
      // The socket failed (the peer reset it, or it was closed): this connection is over.
      this.#closeCode ??= e instanceof RelayError ? e.code : "connection-lost";
      this.#destroy();
    } finally {
      this.#taking = false; // the socket is closed or the run written
      this.#pumping = false;
      this.#pumped = undefined;
    }
  }

  async #writeControl(message: ControlMessage): Promise<void> {
    const tamper = this.#ctx.tamper;
    if (tamper !== undefined) {
      for (const out of tamper(this.id, { kind: "control", message })) await this.#writeOut(out);
      return;
    }
    await this.#writeSealed(message);
  }

  async #writeSealed(message: ControlMessage): Promise<void> {
    const sealed = await this.#send!.encryptWithAd(EMPTY, encodeControl(message));
    await this.#conn.write(encodeFrame(FrameType.Control, sealed));
  }

  /**
   * Test hook path: splits a run into frames and writes what the hook returns. The hook gets
   * copies: it may keep frames to replay later, after the ring has reused their memory.
   */
  async #writeTampered(run: Uint8Array): Promise<void> {
    for (let at = 0; at < run.length;) {
      const end = at + FRAME_HEADER + readU32BE(run, at);
      for (
        const out of this.#ctx.tamper!(this.id, { kind: "data", bytes: run.slice(at, end) })
      ) {
        await this.#writeOut(out);
      }
      at = end;
    }
  }

  async #writeOut(out: Outbound): Promise<void> {
    if (out.kind === "data") await this.#conn.write(out.bytes);
    else await this.#writeSealed(out.message);
  }
}

function roleName(role: number): string {
  return role === Role.Producer ? "producer" : "consumer";
}
