/**
 * @module
 * Control messages and the handshake payloads (docs/PROTOCOL.md §3.1 and §6). Each control
 * message travels alone in one CONTROL frame, sealed with the connection's Noise transport
 * cipher; this file only maps plaintext bytes to typed values and back. Every decoder checks
 * lengths before reading and rejects trailing bytes, so a malformed message is one
 * `protocol-error` and never an out-of-bounds read or a large allocation.
 */

import { abytes, concat, readU32BE, readU64BE, writeU32BE, writeU64BE } from "../bytes.ts";
import type { CryptoProvider, Signer } from "../crypto/types.ts";
import { type ErrorCode, RelayError } from "../errors.ts";
import { Role } from "./join.ts";
import { EPOCH_LENGTH, STREAM_TAG_LENGTH } from "./session.ts";

/** Protocol version carried by both handshake payloads. */
export const PROTOCOL_VERSION = 1;
/** The Noise prologue: binds the protocol name into the handshake hash. */
export const PROLOGUE: Uint8Array = new TextEncoder().encode("hydra/1");
/** Largest control message plaintext (bytes). */
export const MAX_CONTROL = 4096;
/** Largest join options block (bytes). */
export const MAX_JOIN_OPTIONS = 1024;
/** Largest human-readable message in ERROR, CLOSE and the hello (UTF-8 bytes). */
export const MAX_REASON = 512;

/** Control message kinds (first plaintext byte). */
export const ControlKind = {
  /** Client → relay: join a session with a proof. */
  Join: 0x01,
  /** Relay → client: the join succeeded. */
  Joined: 0x02,
  /** Either way: a join or the connection failed. */
  Error: 0x03,
  /** Producer → relay → consumers: a producer stream begins (epoch, start time, signature). */
  StreamStart: 0x04,
  /** Relay → consumer: frames `[from, to)` were skipped (policy `drop`). */
  Lagged: 0x05,
  /** Relay → consumer: the producer is gone without END. */
  ProducerLeft: 0x06,
  /** Either way: liveness probe. */
  Ping: 0x07,
  /** Either way: answer to PING with the same nonce. */
  Pong: 0x08,
  /** Relay → producer: every frame up to `seq` is in the relay's ring. */
  Ack: 0x09,
  /** Either way: the sender is closing the connection on purpose. */
  Close: 0x0a,
  /** Client → relay: leave one joined session. */
  Leave: 0x0b,
} as const;

/** Wire error codes of ERROR and the hello status, and their {@link RelayError} codes. */
export const WireError: Readonly<Record<number, ErrorCode>> = {
  1: "auth-failed",
  2: "producer-exists",
  3: "protocol-error",
  4: "frame-too-large",
  5: "limit-exceeded",
  6: "timeout",
  7: "slow-consumer",
  8: "unsupported",
  9: "going-away",
};

/**
 * The wire number of an error code (`protocol-error` for codes that never travel).
 * @param code A {@link RelayError} code.
 * @returns 1..9.
 * @example
 * ```ts
 * import { wireErrorOf } from "./control.ts";
 * wireErrorOf("producer-exists"); // 2
 * ```
 */
export function wireErrorOf(code: ErrorCode): number {
  for (const [n, c] of Object.entries(WireError)) if (c === code) return Number(n);
  return 3;
}

/** Why a producer left, in PRODUCER-LEFT. */
export const LeftReason = {
  /** Its connection broke; the grace period runs and it may resume the same stream. */
  Lost: 1,
  /** The grace period ended: the stream is over without END (truncated). */
  Gone: 2,
} as const;

/** Why a connection is closed, in CLOSE. */
export const CloseReason = {
  /** The sender is done. */
  Normal: 1,
  /** The relay is shutting down: reconnect later or elsewhere. */
  GoingAway: 2,
  /** No traffic within the idle timeout. */
  Idle: 3,
} as const;

/** Slow-consumer policies; the numbers are the wire values of the `policy` join option. */
export const Policy = {
  /** Close a consumer that falls a full ring behind (hydra-sync's behaviour). */
  disconnect: 1,
  /** Skip the consumer ahead and tell it `LAGGED {from, to}`. */
  drop: 2,
  /** Lossless: pause the producer while the slowest consumer is a full ring behind. */
  block: 3,
} as const;

/** The name of a slow-consumer policy. */
export type PolicyName = keyof typeof Policy;

/** Join options (a small TLV block, signed as part of the proof). */
export interface JoinOptions {
  /** A consumer's wish for a stricter policy than the relay's (block > disconnect > drop). */
  readonly policy?: PolicyName;
  /** A consumer's resume point: the stream's epoch and the next seq it needs. */
  readonly resume?: { readonly epoch: Uint8Array; readonly nextSeq: bigint };
}

/** Every control message, discriminated by `kind`. */
export type ControlMessage =
  | {
    readonly kind: typeof ControlKind.Join;
    readonly role: Role;
    readonly routeId: Uint8Array;
    readonly options: Uint8Array;
    readonly proof: Uint8Array;
  }
  | { readonly kind: typeof ControlKind.Joined; readonly tag: Uint8Array; readonly role: Role }
  | {
    readonly kind: typeof ControlKind.Error;
    readonly code: ErrorCode;
    /** All zeros for a connection-level error. */
    readonly tag: Uint8Array;
    /** 0 for a connection-level error. */
    readonly role: number;
    readonly message: string;
  }
  | ({ readonly kind: typeof ControlKind.StreamStart } & StreamStart)
  | {
    readonly kind: typeof ControlKind.Lagged;
    readonly tag: Uint8Array;
    readonly from: bigint;
    readonly to: bigint;
  }
  | {
    readonly kind: typeof ControlKind.ProducerLeft;
    readonly tag: Uint8Array;
    readonly reason: number;
  }
  | { readonly kind: typeof ControlKind.Ping; readonly nonce: bigint }
  | { readonly kind: typeof ControlKind.Pong; readonly nonce: bigint }
  | { readonly kind: typeof ControlKind.Ack; readonly tag: Uint8Array; readonly seq: bigint }
  | { readonly kind: typeof ControlKind.Close; readonly reason: number; readonly message: string }
  | { readonly kind: typeof ControlKind.Leave; readonly tag: Uint8Array; readonly role: Role };

/** A producer stream's announcement. */
export interface StreamStart {
  /** The session's stream tag. */
  readonly tag: Uint8Array;
  /** 16 random bytes naming the stream; the data key derives from it. */
  readonly epoch: Uint8Array;
  /** Producer's clock when the stream began (ms since the Unix epoch). */
  readonly startedAt: bigint;
  /** Producer → relay: first seq it sends. Relay → consumer: first seq it will deliver. */
  readonly firstSeq: bigint;
  /** Ed25519 signature by the session's auth key over {@link streamStartMessage}. */
  readonly signature: Uint8Array;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });
const STREAM_LABEL = enc.encode("hydra/1 stream\0");
const ZERO_TAG = new Uint8Array(STREAM_TAG_LENGTH);

function bad(what: string): RelayError {
  return new RelayError("protocol-error", `malformed ${what}`);
}

/** Bounded little cursor over a message: every read checks the remaining length first. */
class Reader {
  #off = 0;
  constructor(readonly bytes: Uint8Array, readonly what: string) {}
  take(n: number): Uint8Array {
    if (n > this.bytes.length - this.#off) throw bad(this.what);
    const out = this.bytes.subarray(this.#off, this.#off + n);
    this.#off += n;
    return out;
  }
  u8(): number {
    return this.take(1)[0]!;
  }
  u16(): number {
    const b = this.take(2);
    return (b[0]! << 8) | b[1]!;
  }
  u32(): number {
    return readU32BE(this.take(4), 0);
  }
  u64(): bigint {
    return readU64BE(this.take(8), 0);
  }
  text(max: number): string {
    const len = this.u16();
    if (len > max) throw bad(this.what);
    try {
      return dec.decode(this.take(len));
    } catch {
      throw bad(this.what);
    }
  }
  end(): void {
    if (this.#off !== this.bytes.length) throw bad(this.what);
  }
}

function u8(n: number): Uint8Array {
  return new Uint8Array([n]);
}
function u16(n: number): Uint8Array {
  return new Uint8Array([n >> 8, n & 0xff]);
}
function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  writeU32BE(b, 0, n);
  return b;
}
function u64(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  writeU64BE(b, 0, n);
  return b;
}
function text(s: string): Uint8Array {
  let b = enc.encode(s);
  if (b.length > MAX_REASON) b = enc.encode(s.slice(0, MAX_REASON / 4));
  return concat([u16(b.length), b]);
}
function role(r: number, what: string): Role {
  if (r !== Role.Producer && r !== Role.Consumer) throw bad(what);
  return r;
}

/**
 * Encodes a control message's plaintext.
 * @param m The message.
 * @returns Its bytes (to be sealed into a CONTROL frame).
 * @throws {TypeError|RangeError} on malformed fields.
 * @example
 * ```ts
 * import { ControlKind, decodeControl, encodeControl } from "./control.ts";
 * const bytes = encodeControl({ kind: ControlKind.Ping, nonce: 7n });
 * decodeControl(bytes); // { kind: 7, nonce: 7n }
 * ```
 */
export function encodeControl(m: ControlMessage): Uint8Array {
  switch (m.kind) {
    case ControlKind.Join:
      if (abytes(m.options, undefined, "options").length > MAX_JOIN_OPTIONS) {
        throw new RangeError(`join options exceed ${MAX_JOIN_OPTIONS} bytes`);
      }
      return concat([
        u8(m.kind),
        u8(role(m.role, "role")),
        abytes(m.routeId, 32, "routeId"),
        u16(m.options.length),
        m.options,
        abytes(m.proof, 64, "proof"),
      ]);
    case ControlKind.Joined:
    case ControlKind.Leave:
      return concat([u8(m.kind), tag(m.tag), u8(role(m.role, "role"))]);
    case ControlKind.Error:
      return concat([
        u8(m.kind),
        u8(wireErrorOf(m.code)),
        tag(m.tag),
        u8(m.role),
        text(m.message),
      ]);
    case ControlKind.StreamStart:
      return concat([
        u8(m.kind),
        tag(m.tag),
        abytes(m.epoch, EPOCH_LENGTH, "epoch"),
        u64(m.startedAt),
        u64(m.firstSeq),
        abytes(m.signature, 64, "signature"),
      ]);
    case ControlKind.Lagged:
      return concat([u8(m.kind), tag(m.tag), u64(m.from), u64(m.to)]);
    case ControlKind.ProducerLeft:
      return concat([u8(m.kind), tag(m.tag), u8(m.reason)]);
    case ControlKind.Ping:
    case ControlKind.Pong:
      return concat([u8(m.kind), u64(m.nonce)]);
    case ControlKind.Ack:
      return concat([u8(m.kind), tag(m.tag), u64(m.seq)]);
    case ControlKind.Close:
      return concat([u8(m.kind), u8(m.reason), text(m.message)]);
  }
}

function tag(t: Uint8Array): Uint8Array {
  return abytes(t, STREAM_TAG_LENGTH, "tag");
}

/**
 * Decodes a control message's plaintext. Fields are views into `bytes`.
 * @param bytes The opened CONTROL frame body.
 * @returns The message.
 * @throws {RelayError} `protocol-error` on any malformation (unknown kind, bad length,
 *   unknown role or error code, invalid UTF-8, trailing bytes).
 * @example
 * ```ts
 * import { decodeControl } from "./control.ts";
 * try { decodeControl(new Uint8Array([0x99])); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function decodeControl(bytes: Uint8Array): ControlMessage {
  if (bytes.length > MAX_CONTROL) throw bad("control message");
  const r = new Reader(bytes, "control message");
  const kind = r.u8();
  let m: ControlMessage;
  switch (kind) {
    case ControlKind.Join: {
      const rl = role(r.u8(), "JOIN");
      const routeId = r.take(32);
      const len = r.u16();
      if (len > MAX_JOIN_OPTIONS) throw bad("JOIN");
      m = { kind, role: rl, routeId, options: r.take(len), proof: r.take(64) };
      break;
    }
    case ControlKind.Joined:
    case ControlKind.Leave:
      m = { kind, tag: r.take(STREAM_TAG_LENGTH), role: role(r.u8(), "JOINED/LEAVE") };
      break;
    case ControlKind.Error: {
      const code = WireError[r.u8()];
      if (code === undefined) throw bad("ERROR");
      m = { kind, code, tag: r.take(STREAM_TAG_LENGTH), role: r.u8(), message: r.text(MAX_REASON) };
      if (m.role > 2) throw bad("ERROR");
      break;
    }
    case ControlKind.StreamStart:
      m = {
        kind,
        tag: r.take(STREAM_TAG_LENGTH),
        epoch: r.take(EPOCH_LENGTH),
        startedAt: r.u64(),
        firstSeq: r.u64(),
        signature: r.take(64),
      };
      break;
    case ControlKind.Lagged:
      m = { kind, tag: r.take(STREAM_TAG_LENGTH), from: r.u64(), to: r.u64() };
      if (m.to <= m.from) throw bad("LAGGED");
      break;
    case ControlKind.ProducerLeft:
      m = { kind, tag: r.take(STREAM_TAG_LENGTH), reason: r.u8() };
      if (m.reason !== LeftReason.Lost && m.reason !== LeftReason.Gone) throw bad("PRODUCER-LEFT");
      break;
    case ControlKind.Ping:
    case ControlKind.Pong:
      m = { kind, nonce: r.u64() };
      break;
    case ControlKind.Ack:
      m = { kind, tag: r.take(STREAM_TAG_LENGTH), seq: r.u64() };
      break;
    case ControlKind.Close:
      m = { kind, reason: r.u8(), message: r.text(MAX_REASON) };
      break;
    default:
      throw new RelayError("protocol-error", `unknown control message kind ${kind}`);
  }
  r.end();
  return m;
}

/** Whether a tag is the all-zero connection-level marker of ERROR. */
export function isConnectionTag(t: Uint8Array): boolean {
  return t.every((b) => b === 0);
}

/** The all-zero tag of connection-level errors. */
export const CONNECTION_TAG: Uint8Array = ZERO_TAG;

/**
 * Encodes join options as TLV: `(u8 type ‖ u8 length ‖ value)*`, type 1 = policy (u8),
 * type 2 = resume (epoch[16] ‖ u64 next seq).
 * @param o The options.
 * @returns The block.
 * @example
 * ```ts
 * import { encodeJoinOptions } from "./control.ts";
 * encodeJoinOptions({ policy: "block" }); // 01 01 03
 * ```
 */
export function encodeJoinOptions(o: JoinOptions): Uint8Array {
  const parts: Uint8Array[] = [];
  if (o.policy !== undefined) {
    const p = Policy[o.policy];
    if (p === undefined) throw new RangeError(`unknown policy "${o.policy}"`);
    parts.push(new Uint8Array([1, 1, p]));
  }
  if (o.resume !== undefined) {
    parts.push(
      new Uint8Array([2, 24]),
      abytes(o.resume.epoch, EPOCH_LENGTH, "resume.epoch"),
      u64(o.resume.nextSeq),
    );
  }
  return concat(parts);
}

/**
 * Decodes join options; unknown types are skipped (forward compatibility), known ones are
 * checked strictly.
 * @param bytes The block.
 * @returns The options.
 * @throws {RelayError} `protocol-error` when malformed.
 * @example
 * ```ts
 * import { decodeJoinOptions } from "./control.ts";
 * decodeJoinOptions(new Uint8Array([1, 1, 2])); // { policy: "drop" }
 * ```
 */
export function decodeJoinOptions(bytes: Uint8Array): JoinOptions {
  const r = new Reader(bytes, "join options");
  let policy: PolicyName | undefined;
  let resume: JoinOptions["resume"];
  let left = bytes.length;
  while (left > 0) {
    const type = r.u8();
    const value = r.take(r.u8());
    left -= 2 + value.length;
    if (type === 1) {
      const name = (Object.keys(Policy) as PolicyName[]).find((k) => Policy[k] === value[0]);
      if (value.length !== 1 || name === undefined) throw bad("join options");
      policy = name;
    } else if (type === 2) {
      if (value.length !== 24) throw bad("join options");
      resume = { epoch: value.subarray(0, 16), nextSeq: readU64BE(value, 16) };
    }
  }
  return {
    ...(policy === undefined ? {} : { policy }),
    ...(resume === undefined ? {} : { resume }),
  };
}

/**
 * The bytes a STREAM-START signature covers:
 * `"hydra/1 stream\0" ‖ route id ‖ epoch ‖ u64 startedAt`.
 * @param routeId The session's route id.
 * @param epoch The stream epoch.
 * @param startedAt Milliseconds since the Unix epoch.
 * @returns The message to sign.
 * @example
 * ```ts
 * import { streamStartMessage } from "./control.ts";
 * streamStartMessage(new Uint8Array(32), new Uint8Array(16), 0n).length; // 15 + 32 + 16 + 8
 * ```
 */
export function streamStartMessage(
  routeId: Uint8Array,
  epoch: Uint8Array,
  startedAt: bigint,
): Uint8Array {
  return concat([
    STREAM_LABEL,
    abytes(routeId, 32, "routeId"),
    abytes(epoch, EPOCH_LENGTH, "epoch"),
    u64(startedAt),
  ]);
}

/**
 * Signs a stream start (producer side).
 * @param signer The session's auth signer.
 * @param routeId The session's route id.
 * @param start Epoch and start time.
 * @returns The signature.
 * @example
 * ```ts
 * import { signStreamStart } from "./control.ts";
 * import { Session } from "./session.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const { signer, routeId } = await Session.generate(nobleCrypto).keys(nobleCrypto);
 * await signStreamStart(signer, routeId, { epoch: new Uint8Array(16), startedAt: 1n });
 * ```
 */
export function signStreamStart(
  signer: Signer,
  routeId: Uint8Array,
  start: { readonly epoch: Uint8Array; readonly startedAt: bigint },
): Promise<Uint8Array> {
  return signer.sign(streamStartMessage(routeId, start.epoch, start.startedAt));
}

/**
 * Verifies a stream start against the route id (relay and consumers both do).
 * @param crypto The primitives.
 * @param routeId The session's route id.
 * @param start The received announcement.
 * @returns Whether the producer of this session signed it.
 * @example
 * ```ts
 * import { verifyStreamStart } from "./control.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const z = new Uint8Array(32);
 * await verifyStreamStart(nobleCrypto, z, { epoch: new Uint8Array(16), startedAt: 0n, signature: new Uint8Array(64) }); // false
 * ```
 */
export async function verifyStreamStart(
  crypto: CryptoProvider,
  routeId: Uint8Array,
  start: {
    readonly epoch: Uint8Array;
    readonly startedAt: bigint;
    readonly signature: Uint8Array;
  },
): Promise<boolean> {
  try {
    return await crypto.ed25519Verify(
      routeId,
      streamStartMessage(routeId, start.epoch, start.startedAt),
      start.signature,
    );
  } catch {
    return false;
  }
}

/** The relay's handshake payload (message 2): version, status and limits. */
export interface RelayHello {
  /** Protocol version the relay speaks. */
  readonly version: number;
  /** 0 = accepted; otherwise a wire error code and the connection ends. */
  readonly status: number;
  /** Largest frame body the relay accepts. */
  readonly maxFrame: number;
  /** Interval at which clients should PING (ms); the relay drops connections silent for 2×. */
  readonly heartbeatMs: number;
  /** Ring capacity per session: frames. */
  readonly ringFrames: number;
  /** Ring capacity per session: bytes. */
  readonly ringBytes: number;
  /** The relay's default slow-consumer policy ({@link Policy} value). */
  readonly policy: number;
  /** Human-readable reason when `status` is not 0. */
  readonly message: string;
}

/**
 * Encodes the relay hello:
 * `u8 version ‖ u8 status ‖ u32 maxFrame ‖ u32 heartbeatMs ‖ u32 ringFrames ‖ u32 ringBytes ‖
 * u8 policy ‖ u16 len ‖ message`.
 * @param h The hello.
 * @returns Its bytes.
 * @example
 * ```ts
 * import { decodeHello, encodeHello } from "./control.ts";
 * const h = { version: 1, status: 0, maxFrame: 1 << 20, heartbeatMs: 10000, ringFrames: 1024, ringBytes: 1 << 24, policy: 1, message: "" };
 * decodeHello(encodeHello(h)).maxFrame; // 1048576
 * ```
 */
export function encodeHello(h: RelayHello): Uint8Array {
  return concat([
    u8(h.version),
    u8(h.status),
    u32(h.maxFrame),
    u32(h.heartbeatMs),
    u32(h.ringFrames),
    u32(h.ringBytes),
    u8(h.policy),
    text(h.message),
  ]);
}

/**
 * Decodes the relay hello. Bytes after the defined fields are ignored so later versions
 * can extend it.
 * @param bytes The handshake payload of message 2.
 * @returns The hello.
 * @throws {RelayError} `protocol-error` when too short or malformed.
 * @example
 * ```ts
 * import { decodeHello } from "./control.ts";
 * try { decodeHello(new Uint8Array(3)); } catch (e) { console.log((e as Error).message); }
 * ```
 */
export function decodeHello(bytes: Uint8Array): RelayHello {
  const r = new Reader(bytes, "relay hello");
  return {
    version: r.u8(),
    status: r.u8(),
    maxFrame: r.u32(),
    heartbeatMs: r.u32(),
    ringFrames: r.u32(),
    ringBytes: r.u32(),
    policy: r.u8(),
    message: r.text(MAX_REASON),
  };
}
