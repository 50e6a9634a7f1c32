/**
 * @module
 * Control messages (docs/PROTOCOL.md §6). Each control message travels alone in one CONTROL
 * frame, sealed with the connection's Noise transport cipher; this file only maps plaintext
 * bytes to typed values and back. The hello, join options and STREAM-START have files of their
 * own (hello.ts, join_options.ts, stream_start.ts), re-exported here. Every decoder checks
 * lengths before reading and rejects trailing bytes, so a malformed message is one
 * `protocol-error` and never an out-of-bounds read or a large allocation.
 */

import { abytes, concat } from "../bytes.ts";
import { type ErrorCode, RelayError } from "../errors.ts";
import { bad, MAX_REASON, Reader, text, u16, u32, u64, u8 } from "./_codec.ts";
import { Role } from "./join.ts";
import { MAX_JOIN_OPTIONS } from "./join_options.ts";
import { EPOCH_LENGTH, STREAM_TAG_LENGTH } from "./session.ts";
import type { StreamStart } from "./stream_start.ts";

// The control plane's vocabulary in one import: what the other message files define.
export { MAX_REASON } from "./_codec.ts";
export { decodeHello, encodeHello, type RelayHello } from "./hello.ts";
export {
  decodeJoinOptions,
  encodeJoinOptions,
  type JoinOptions,
  MAX_JOIN_OPTIONS,
  Policy,
  type PolicyName,
} from "./join_options.ts";
export {
  signStreamStart,
  type StreamStart,
  streamStartMessage,
  verifyStreamStart,
} from "./stream_start.ts";

const ZERO_TAG = new Uint8Array(STREAM_TAG_LENGTH);

function role(r: number, what: string): Role {
  if (r !== Role.Producer && r !== Role.Consumer) throw bad(what);
  return r;
}

/** Protocol version carried by both handshake payloads. */
export const PROTOCOL_VERSION = 2;
/** The Noise prologue: binds the protocol name into the handshake hash. */
export const PROLOGUE: Uint8Array = new TextEncoder().encode("hydra/2");
/** Largest control message plaintext (bytes). */
export const MAX_CONTROL = 4096;

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
  /**
   * Client → relay: a joined reader proves one more generation (laid out like JOIN); the relay
   * answers JOINED, or ERROR for that session without ending the subscription.
   */
  Grant: 0x0c,
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
  10: "revoked",
};

/**
 * The wire number of an error code (`protocol-error` for codes that never travel).
 * @param code A {@link RelayError} code.
 * @returns 1..10.
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

/** Every control message, discriminated by `kind`. */
export type ControlMessage =
  | {
    readonly kind: typeof ControlKind.Join;
    readonly role: Role;
    readonly routeId: Uint8Array;
    readonly options: Uint8Array;
    readonly proof: Uint8Array;
  }
  | {
    /** As JOIN: a joined reader proving one more generation. */
    readonly kind: typeof ControlKind.Grant;
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
    case ControlKind.Grant:
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
        u32(m.generation),
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
    case ControlKind.Join:
    case ControlKind.Grant: {
      const rl = role(r.u8(), "JOIN");
      const routeId = r.take(32);
      const len = r.u16();
      if (len > MAX_JOIN_OPTIONS) throw bad("JOIN");
      const fields = { role: rl, routeId, options: r.take(len), proof: r.take(64) };
      m = kind === ControlKind.Join ? { kind, ...fields } : { kind, ...fields };
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
        generation: r.u32(),
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
