/**
 * @module
 * `RelayLink`: one client connection to a relay after its handshake (docs/PROTOCOL.md §3, §6).
 * It carries any number of producers and consumers of different sessions: it joins them with
 * key proofs, routes incoming data frames by stream tag to their {@link Subscriber}, answers
 * pings and watches the relay's liveness. It knows subscriptions only by the subscriber
 * contract (subscriber.ts); `RelayConnection` (connection.ts) adds opening producers and
 * consumers on it.
 */

import { equalsAt, toHex } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/types.ts";
import { RelayError } from "../errors.ts";
import {
  CloseReason,
  ControlKind,
  type ControlMessage,
  decodeControl,
  encodeControl,
  encodeJoinOptions,
  isConnectionTag,
  type JoinOptions,
  type RelayHello,
} from "../protocol/control.ts";
import { encodeFrame, type Frame, FrameDecoder, FrameType } from "../protocol/framer.ts";
import { type Role, signJoin } from "../protocol/join.ts";
import { type CipherState, MAX_NOISE_MESSAGE } from "../protocol/noise.ts";
import type { SessionKeys } from "../protocol/session.ts";
import type { ReaderKeys } from "../protocol/capability.ts";
import type { Addr, Conn } from "../transport/types.ts";
import { type ConnectOptions, handshake, type Handshaken } from "./_handshake.ts";
import type { Subscriber } from "./subscriber.ts";

const EMPTY = new Uint8Array(0);

function keyOf(tag: Uint8Array, role: number): string {
  return toHex(tag) + role;
}

/**
 * A handshaken connection to a relay that can carry several producers and consumers. Producers
 * and consumers made by `connect` ride on one of these; `RelayConnection` is the one to open
 * by hand.
 *
 * @example
 * ```ts
 * import { RelayLink } from "./link.ts";
 * import { RelayServer } from "../server/relay.ts";
 * import { memoryTransport } from "../transport/memory.ts";
 * const transport = memoryTransport();
 * const relay = await RelayServer.listen({ transport, port: 0 });
 * const link = await RelayLink.connect(relay.addr, { transport, relayKey: relay.publicKey });
 * console.log(link.hello.maxFrame, link.subscriptions); // the relay's limits, 0
 * await link.close();
 * await relay.close();
 * ```
 */
export class RelayLink {
  /** The relay's static public key, as proven in the handshake. */
  readonly relayKey: Uint8Array;
  /** The relay's announced version and limits. */
  readonly hello: RelayHello;
  /** The crypto adapter in use. */
  readonly crypto: CryptoProvider;
  /** Resolves when the connection is over, with the reason (`undefined` after `close()`). */
  readonly closed: Promise<RelayError | undefined>;
  readonly #conn: Conn;
  readonly #send: CipherState;
  readonly #recv: CipherState;
  readonly #hash: Uint8Array;
  readonly #timeoutMs: number;
  readonly #maxBuffered: number;
  readonly #decoder: FrameDecoder;
  readonly #subs = new Map<string, Subscriber>();
  readonly #dataSubs = new Map<string, Subscriber>();
  /** The subscriber the last data frame went to, and its tag. */
  #lastData: { key: string; tag: Uint8Array; sub: Subscriber } | undefined;
  /** Joins (and grants: `keep`, a refusal leaves the subscription) waiting for an answer. */
  readonly #pending = new Map<
    string,
    { resolve: () => void; reject: (e: RelayError) => void; keep?: boolean }
  >();
  #tail: Promise<void> = Promise.resolve();
  #failure: RelayError | undefined;
  #resolveClosed!: (e: RelayError | undefined) => void;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lastRecv = Date.now();
  #lastPing = Date.now();
  #tickMs = 0;
  #buffered = 0;
  #spaceWaiter: (() => void) | undefined;
  #pingNonce = 0n;
  #readDone: Promise<void> = Promise.resolve();
  #closingLocally = false;

  /**
   * Takes over a connection whose handshake is complete (see `RelayConnection.connect`).
   * @param h The handshake's result.
   * @param options Connection options (timeouts, buffering).
   */
  protected constructor(h: Handshaken, options: ConnectOptions) {
    const { hello } = h;
    this.#conn = h.conn;
    this.#send = h.send;
    this.#recv = h.recv;
    this.#hash = h.hash;
    this.relayKey = h.relayKey;
    this.hello = hello;
    this.crypto = h.crypto;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxBuffered = options.maxBuffered ?? 4 * 1024 * 1024;
    this.#decoder = new FrameDecoder(Math.max(hello.maxFrame + 64, MAX_NOISE_MESSAGE));
    this.closed = new Promise((r) => (this.#resolveClosed = r));
    // Four checks per heartbeat: a silent relay is noticed within 2 × heartbeat.
    this.#tickMs = Math.max(1, Math.floor(hello.heartbeatMs / 4));
    this.#heartbeat = setInterval(() => this.#beat(), this.#tickMs);
    this.#readDone = this.#readLoop(h.pending);
  }

  /**
   * Connects and completes the handshake.
   * @param addr Relay address (`Addr`, `"host:port"` or `"unix:/path"`).
   * @param options Transport, crypto, relay key pin, timeouts.
   * @returns The open link.
   * @throws {RelayError} `connect-failed`, `relay-key-mismatch`, `auth-failed`, `timeout`,
   *   `limit-exceeded` (relay full), `unsupported` (version).
   */
  static async connect(addr: Addr | string, options: ConnectOptions = {}): Promise<RelayLink> {
    return new RelayLink(await handshake(addr, options), options);
  }

  /** The failure that ended the connection, if any. */
  get error(): RelayError | undefined {
    return this.#failure;
  }

  /**
   * Joins a session (used by producers and consumers).
   * @returns Once the relay answered JOINED.
   * @throws {RelayError} the relay's refusal (`auth-failed`, `producer-exists`, …).
   */
  async join(
    keys: SessionKeys,
    role: Role,
    options: JoinOptions,
    subscriber: Subscriber,
  ): Promise<void> {
    this.#check();
    const key = keyOf(keys.streamTag, role);
    if (this.#subs.has(key) || this.#pending.has(key)) {
      throw new RelayError(
        "protocol-error",
        "this connection already joined that session in that role",
      );
    }
    const optionBytes = encodeJoinOptions(options);
    const proof = await signJoin(keys.signer, {
      handshakeHash: this.#hash,
      role,
      options: optionBytes,
    });
    // Registered before JOIN goes out: frames may follow JOINED immediately.
    this.#subs.set(key, subscriber);
    if (role === 2) this.#dataSubs.set(toHex(keys.streamTag), subscriber);
    try {
      await this.#ask(key, false, {
        kind: ControlKind.Join,
        role,
        routeId: keys.routeId,
        options: optionBytes,
        proof,
      });
    } catch (e) {
      this.#forget(keys.streamTag, role);
      throw e;
    }
  }

  /**
   * Proves one more read-capability generation for a session this connection consumes
   * (GRANT, docs/PROTOCOL.md §6.3): the relay then keeps the subscription when the producer
   * rotates to it. A refusal leaves the subscription as it was.
   * @param keys The reader keys of that generation.
   * @returns Once the relay answered JOINED.
   * @throws {RelayError} the relay's refusal (`revoked`, `auth-failed`), `protocol-error`
   *   when not consuming that session or while its join or another grant is pending.
   */
  async grant(keys: ReaderKeys): Promise<void> {
    this.#check();
    const key = keyOf(keys.streamTag, 2);
    if (!this.#subs.has(key) || this.#pending.has(key)) {
      throw new RelayError(
        "protocol-error",
        "a grant needs a joined consumer of that session, with no join or grant pending",
      );
    }
    const options = encodeJoinOptions({
      reader: { generation: keys.generation, readerKey: keys.readerKey, grant: keys.grant },
    });
    const proof = await signJoin(keys.signer, { handshakeHash: this.#hash, role: 2, options });
    await this.#ask(key, true, {
      kind: ControlKind.Grant,
      role: 2,
      routeId: keys.routeId,
      options,
      proof,
    });
  }

  /** Sends a JOIN or GRANT and waits for its answer (or the join timeout). */
  async #ask(key: string, keep: boolean, message: ControlMessage): Promise<void> {
    const answered = new Promise<void>((resolve, reject) => {
      this.#pending.set(key, { resolve, reject, keep });
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await this.sendControl(message);
      await Promise.race([
        answered,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(new RelayError("timeout", `no answer to join within ${this.#timeoutMs} ms`)),
            this.#timeoutMs,
          );
        }),
      ]);
    } catch (e) {
      this.#pending.delete(key);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Leaves a joined session (best effort; the subscription is forgotten at once).
   */
  leave(tag: Uint8Array, role: Role): Promise<void> {
    this.#forget(tag, role);
    if (this.#failure !== undefined) return Promise.resolve();
    return this.sendControl({ kind: ControlKind.Leave, tag, role }).catch(() => {});
  }

  #forget(tag: Uint8Array, role: Role): void {
    const key = keyOf(tag, role);
    const sub = this.#subs.get(key);
    this.#subs.delete(key);
    if (role === 2 && this.#dataSubs.get(toHex(tag)) === sub) this.#dataSubs.delete(toHex(tag));
  }

  /** Number of joined subscriptions. */
  get subscriptions(): number {
    return this.#subs.size;
  }

  /**
   * Seals and sends a control message, in order with every other write.
   * @returns When written (resolves under backpressure like `write`).
   */
  sendControl(m: ControlMessage): Promise<void> {
    this.#check();
    // The nonce is taken now, synchronously, so seal order = call order = write order.
    const sealed = this.#send.encryptWithAd(EMPTY, encodeControl(m));
    return this.#enqueue(async () => {
      await this.#conn.write(encodeFrame(FrameType.Control, await sealed));
    });
  }

  /**
   * Writes already-framed bytes (sealed data frames), in order with control messages.
   * @returns When the transport accepted them (backpressure).
   */
  write(frame: Uint8Array): Promise<void> {
    this.#check();
    return this.#enqueue(() => this.#conn.write(frame));
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    const p = this.#tail.then(task);
    this.#tail = p.catch(() => {});
    return p.catch((e) => {
      const err = e instanceof RelayError ? e : new RelayError("connection-lost", String(e));
      this.#fail(err);
      throw this.#failure ?? err;
    });
  }

  /** Reports consumed buffered bytes (consumers call this as they deliver). */
  release(bytes: number): void {
    this.#buffered -= bytes;
    if (this.#buffered <= this.#maxBuffered && this.#spaceWaiter !== undefined) {
      const w = this.#spaceWaiter;
      this.#spaceWaiter = undefined;
      w();
    }
  }

  /**
   * Closes the connection: says CLOSE, flushes, half-closes, waits briefly for the relay
   * to close its side. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#failure !== undefined) {
      await this.closed;
      return;
    }
    this.#closingLocally = true;
    try {
      await this.sendControl({ kind: ControlKind.Close, reason: CloseReason.Normal, message: "" });
      await this.#tail;
      await this.#conn.closeWrite();
      // The relay answers CLOSE by closing its side; give it a moment to do so cleanly.
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#readDone, new Promise((r) => (timer = setTimeout(r, 500)))]);
      clearTimeout(timer);
    } catch {
      // Already broken: closing anyway.
    }
    this.#fail(new RelayError("closed", "connection closed"), true);
    await this.closed;
  }

  /**
   * Drops the connection at once, without CLOSE (what a crash looks like to the relay:
   * producers get the grace period, not a clean end). A producer or consumer that opened this
   * connection with `connect()` treats it like a network failure and reconnects, unless it was
   * made with `reconnect: false`. Idempotent.
   */
  abort(): void {
    this.#fail(new RelayError("closed", "connection aborted"), true);
  }

  #check(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  #fail(error: RelayError, local = false): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    clearInterval(this.#heartbeat);
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    for (const sub of this.#subs.values()) sub.onClose(error, true);
    this.#subs.clear();
    this.#dataSubs.clear();
    this.#spaceWaiter?.();
    this.#conn.close();
    this.#conn.closed.then(() => this.#resolveClosed(local ? undefined : error));
  }

  #beat(): void {
    const now = Date.now();
    const silent = now - this.#lastRecv;
    const hb = this.hello.heartbeatMs;
    if (silent + this.#tickMs > 2 * hb && this.#spaceWaiter === undefined) {
      this.#fail(new RelayError("timeout", `relay silent for ${(silent / 1000).toFixed(1)} s`));
      return;
    }
    if (now - this.#lastPing + this.#tickMs > hb) {
      this.#lastPing = now;
      this.sendControl({ kind: ControlKind.Ping, nonce: this.#pingNonce++ }).catch(() => {});
    }
  }

  async #readLoop(pending: Frame[]): Promise<void> {
    try {
      for (const f of pending) await this.#onFrame(f);
      while (this.#failure === undefined) {
        const chunk = await this.#conn.read();
        if (chunk === null) {
          if (this.#closingLocally) return;
          throw new RelayError("connection-lost", "the relay closed the connection");
        }
        this.#lastRecv = Date.now();
        for (const frame of this.#decoder.push(chunk)) {
          if (this.#failure !== undefined) return;
          // Data frames are handed on synchronously: no promise and no turn per frame.
          if (frame.type === FrameType.Data) this.#onData(frame);
          else await this.#onFrame(frame);
        }
        if (this.#buffered > this.#maxBuffered && this.#failure === undefined) {
          await new Promise<void>((r) => (this.#spaceWaiter = r));
          this.#lastRecv = Date.now();
        }
      }
    } catch (e) {
      this.#fail(e instanceof RelayError ? e : new RelayError("protocol-error", String(e)));
    }
  }

  /** A data frame: to the consumer of its stream tag. */
  #onData(frame: Frame): void {
    if (frame.body.length < 9) throw new RelayError("protocol-error", "short data frame");
    // Consecutive frames nearly always carry the same tag: compare with the last one's before
    // looking up the map (a hex string per frame).
    const last = this.#lastData;
    const body = frame.body;
    let sub: Subscriber | undefined;
    if (
      last !== undefined && this.#dataSubs.get(last.key) === last.sub &&
      equalsAt(last.tag, body, 1)
    ) {
      sub = last.sub;
    }
    if (sub === undefined) {
      const key = toHex(body.subarray(1, 9));
      sub = this.#dataSubs.get(key);
      this.#lastData = sub === undefined ? undefined : { key, tag: body.slice(1, 9), sub };
    }
    // Frames for a session just left may still be in flight: ignore them.
    if (sub?.onData !== undefined) {
      this.#buffered += frame.bytes.length;
      sub.onData(frame);
    }
  }

  async #onFrame(frame: Frame): Promise<void> {
    if (frame.type === FrameType.Data) return this.#onData(frame);
    if (frame.type !== FrameType.Control) {
      throw new RelayError("protocol-error", `unexpected frame type ${frame.type}`);
    }
    let plain: Uint8Array;
    try {
      plain = await this.#recv.decryptWithAd(EMPTY, frame.body);
    } catch {
      throw new RelayError("auth-failed", "authentication failed");
    }
    const m = decodeControl(plain);
    switch (m.kind) {
      case ControlKind.Ping:
        this.sendControl({ kind: ControlKind.Pong, nonce: m.nonce }).catch(() => {});
        return;
      case ControlKind.Pong:
        return;
      case ControlKind.Close:
        if (this.#closingLocally) return;
        throw m.reason === CloseReason.GoingAway
          ? new RelayError("going-away", `relay going away${m.message ? `: ${m.message}` : ""}`)
          : new RelayError(
            "connection-lost",
            `relay closed the connection${m.message ? `: ${m.message}` : ""}`,
          );
      case ControlKind.Joined: {
        const key = keyOf(m.tag, m.role);
        const p = this.#pending.get(key);
        if (p === undefined) throw new RelayError("protocol-error", "unexpected JOINED");
        this.#pending.delete(key);
        p.resolve();
        return;
      }
      case ControlKind.Error: {
        const error = new RelayError(m.code, m.message);
        if (isConnectionTag(m.tag)) throw error;
        const key = keyOf(m.tag, m.role);
        const p = this.#pending.get(key);
        if (p !== undefined) {
          this.#pending.delete(key);
          if (p.keep !== true) this.#forget(m.tag, m.role as Role);
          p.reject(error);
          return;
        }
        const sub = this.#subs.get(key);
        if (sub !== undefined) {
          this.#forget(m.tag, m.role as Role);
          sub.onClose(error, false);
        }
        return;
      }
      case ControlKind.Ack: {
        await this.#subs.get(keyOf(m.tag, 1))?.onControl(m);
        return;
      }
      case ControlKind.StreamStart:
      case ControlKind.Lagged:
      case ControlKind.ProducerLeft: {
        await this.#subs.get(keyOf(m.tag, 2))?.onControl(m);
        return;
      }
      default:
        throw new RelayError(
          "protocol-error",
          `control message ${m.kind} not expected from the relay`,
        );
    }
  }
}
