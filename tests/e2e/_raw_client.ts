/**
 * @module
 * A hand-driven hydra/1 client for attacking the relay: it does the Noise handshake itself
 * and then sends whatever it is told — well-formed or not — and reports what the relay
 * answers. Used by the malicious-client, exhaustion and fuzz tests.
 */

import { nativeCrypto } from "../../src/crypto/native.ts";
import {
  type ControlMessage,
  decodeControl,
  decodeHello,
  encodeControl,
  encodeJoinOptions,
  type JoinOptions,
  PROLOGUE,
  PROTOCOL_VERSION,
  type RelayHello,
  signStreamStart,
} from "../../src/protocol/control.ts";
import { encodeFrame, type Frame, FrameDecoder, FrameType } from "../../src/protocol/framer.ts";
import { Role, signJoin } from "../../src/protocol/join.ts";
import { sealData } from "../../src/protocol/data_frame.ts";
import { type CipherState, NoiseHandshake } from "../../src/protocol/noise.ts";
import type { Session, SessionKeys } from "../../src/protocol/session.ts";
import type { Addr, Conn, Transport } from "../../src/transport/types.ts";
import { ControlKind } from "../../src/protocol/control.ts";

const EMPTY = new Uint8Array(0);
const crypto = nativeCrypto();
/** Derived once per session: many clients of one session (the join benchmark) share them. */
const derived = new WeakMap<Session, Promise<SessionKeys>>();
function keysOf(session: Session): Promise<SessionKeys> {
  let k = derived.get(session);
  if (k === undefined) derived.set(session, k = session.keys(crypto));
  return k;
}

/** What the relay sent: a decrypted control message or a raw data frame. */
export type Received =
  | { readonly kind: "control"; readonly message: ControlMessage }
  | { readonly kind: "data"; readonly frame: Frame };

/** A connection past the handshake, driven frame by frame. */
export class RawClient {
  readonly conn: Conn;
  readonly hello: RelayHello;
  /** This connection's handshake hash (what join proofs sign). */
  readonly hash: Uint8Array;
  readonly #send: CipherState;
  readonly #recv: CipherState;
  readonly #decoder: FrameDecoder;
  readonly #pending: Frame[] = [];

  private constructor(
    conn: Conn,
    hello: RelayHello,
    hash: Uint8Array,
    send: CipherState,
    recv: CipherState,
    decoder: FrameDecoder,
  ) {
    this.conn = conn;
    this.hello = hello;
    this.hash = hash;
    this.#send = send;
    this.#recv = recv;
    this.#decoder = decoder;
  }

  /** Connects and completes the handshake (version byte `version`, default the current one). */
  static async connect(
    t: Transport,
    addr: Addr,
    version: number = PROTOCOL_VERSION,
  ): Promise<RawClient> {
    const conn = await t.connect(addr);
    const noise = new NoiseHandshake(crypto, {
      pattern: "NX",
      initiator: true,
      prologue: PROLOGUE,
    });
    await conn.write(
      encodeFrame(FrameType.Handshake, await noise.writeMessage(new Uint8Array([version]))),
    );
    const decoder = new FrameDecoder(1 << 24);
    const pending: Frame[] = [];
    while (pending.length === 0) {
      const chunk = await conn.read();
      if (chunk === null) throw new Error("relay closed during the handshake");
      pending.push(...decoder.push(chunk));
    }
    const hello = decodeHello(await noise.readMessage(pending.shift()!.body));
    const { send, recv, handshakeHash } = await noise.result();
    const c = new RawClient(conn, hello, handshakeHash, send, recv, decoder);
    c.#pending.push(...pending);
    return c;
  }

  /** Seals and sends one control message. */
  async control(m: ControlMessage): Promise<void> {
    await this.sealed(encodeControl(m));
  }

  /** Seals arbitrary bytes as a CONTROL frame. */
  async sealed(plain: Uint8Array): Promise<void> {
    await this.conn.write(
      encodeFrame(FrameType.Control, await this.#send.encryptWithAd(EMPTY, plain)),
    );
  }

  /** Sends bytes as they are. */
  raw(bytes: Uint8Array): Promise<void> {
    return this.conn.write(bytes);
  }

  /** A JOIN with a valid proof for this connection (or with `proof` when given). */
  async joinMessage(
    session: Session,
    role: Role,
    options: Uint8Array = EMPTY,
  ): Promise<ControlMessage & { kind: 1 }> {
    const keys = await keysOf(session);
    const proof = await signJoin(keys.signer, { handshakeHash: this.hash, role, options });
    return { kind: ControlKind.Join, role, routeId: keys.routeId, options, proof };
  }

  /**
   * Joins with whatever keys and options are given (a proof signed by `keys.signer`, claiming
   * `keys.routeId`) and returns the relay's answer: JOINED or ERROR. `kind` GRANT sends the
   * same fields as a GRANT.
   */
  async joinWithKeys(
    keys: SessionKeys,
    role: Role,
    options: JoinOptions,
    kind: typeof ControlKind.Join | typeof ControlKind.Grant = ControlKind.Join,
  ): Promise<ControlMessage> {
    const bytes = encodeJoinOptions(options);
    const proof = await signJoin(keys.signer, { handshakeHash: this.hash, role, options: bytes });
    await this.control({
      kind,
      role,
      routeId: keys.routeId,
      options: bytes,
      proof,
    });
    for (;;) {
      const r = await this.next();
      if (r === null) throw new Error("the relay closed the connection");
      if (r.kind === "control" && r.message.kind !== ControlKind.Pong) return r.message;
    }
  }

  /**
   * Joins as the producer of `session` (without waiting for JOINED) and announces a stream.
   * @returns The session keys and a sealer for the stream's data frames.
   */
  async produce(session: Session): Promise<{
    keys: SessionKeys;
    frame: (seq: bigint, flags: number, plaintext: Uint8Array) => Promise<Uint8Array>;
  }> {
    const keys = await keysOf(session);
    await this.control(await this.joinMessage(session, Role.Producer));
    const epoch = crypto.randomBytes(16);
    const startedAt = BigInt(Date.now());
    const signature = await signStreamStart(keys.signer, keys.routeId, {
      epoch,
      startedAt,
      generation: 0,
    });
    await this.control({
      kind: ControlKind.StreamStart,
      tag: keys.streamTag,
      epoch,
      startedAt,
      generation: 0,
      firstSeq: 0n,
      signature,
    });
    const aead = await crypto.aesGcm(session.dataKey(crypto, epoch));
    const frame = (seq: bigint, flags: number, plaintext: Uint8Array) =>
      sealData(aead, { streamTag: keys.streamTag, seq, flags, plaintext });
    return { keys, frame };
  }

  /** The next frame from the relay, or `null` at EOF. */
  async next(): Promise<Received | null> {
    while (this.#pending.length === 0) {
      const chunk = await this.conn.read().catch(() => null);
      if (chunk === null) return null;
      this.#pending.push(...this.#decoder.push(chunk));
    }
    const f = this.#pending.shift()!;
    if (f.type !== FrameType.Control) return { kind: "data", frame: f };
    return {
      kind: "control",
      message: decodeControl(await this.#recv.decryptWithAd(EMPTY, f.body)),
    };
  }

  /** The next control message (data frames skipped), or `null` at EOF. */
  async nextControl(): Promise<ControlMessage | null> {
    while (true) {
      const r = await this.next();
      if (r === null) return null;
      if (r.kind === "control") return r.message;
    }
  }

  /** Reads until the relay closes; returns the control messages it sent meanwhile. */
  async untilClosed(): Promise<ControlMessage[]> {
    const seen: ControlMessage[] = [];
    for (let r = await this.next(); r !== null; r = await this.next()) {
      if (r.kind === "control") seen.push(r.message);
    }
    this.conn.close();
    return seen;
  }

  close(): void {
    this.conn.close();
  }
}

/** The code of the last ERROR in `seen`, if any. */
export function lastErrorCode(seen: readonly ControlMessage[]): string | undefined {
  for (let i = seen.length - 1; i >= 0; i--) {
    const m = seen[i]!;
    if (m.kind === ControlKind.Error) return m.code;
  }
  return undefined;
}
