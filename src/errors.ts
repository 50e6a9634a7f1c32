/**
 * @module
 * The one error class of the project. Callers branch on `code`, never on the message.
 * Every authentication or decryption failure uses the single code `auth-failed` with the
 * same message, so an attacker learns nothing from which check failed.
 */

/** Every code a {@link RelayError} can carry. */
export const ErrorCode = {
  /** A connection could not be established (refused, unreachable, no such socket path). */
  ConnectFailed: "connect-failed",
  /** The address is taken (listen) or malformed. */
  AddrInUse: "addr-in-use",
  /** The operation needs an open connection or listener, and it was closed locally. */
  Closed: "closed",
  /** The peer went away abruptly (reset, broken pipe) while data was in flight. */
  ConnectionLost: "connection-lost",
  /** Any authentication, decryption or key-agreement failure. Deliberately uninformative. */
  AuthFailed: "auth-failed",
  /** The peer broke the protocol (malformed frame, out-of-turn message, oversize length). */
  ProtocolError: "protocol-error",
  /** A frame's length prefix exceeds the negotiated limit (checked before allocating). */
  FrameTooLarge: "frame-too-large",
  /** The running runtime lacks a capability the chosen adapter needs, or the peer speaks
   * a protocol version this one does not. */
  Unsupported: "unsupported",
  /** The session already has a producer (one producer per session). */
  ProducerExists: "producer-exists",
  /** A relay limit was reached (connections, sessions per connection, message size). */
  LimitExceeded: "limit-exceeded",
  /** A deadline passed (handshake, wait for producer, heartbeat). */
  Timeout: "timeout",
  /** The relay disconnected this consumer because it fell behind the ring buffer. */
  SlowConsumer: "slow-consumer",
  /** A data frame failed authentication, or arrived out of order, replayed or cut short:
   * someone between producer and consumer (the relay, the network) altered the stream. */
  Tampered: "tampered",
  /** The relay's static key differs from the pinned one. */
  RelayKeyMismatch: "relay-key-mismatch",
  /** The producer vanished without END and did not come back within the grace period. */
  ProducerLeft: "producer-left",
  /** The relay is shutting down (a reason to reconnect elsewhere, not a failure). */
  GoingAway: "going-away",
  /** The stream is for another read-capability generation than this consumer's token. */
  Revoked: "revoked",
} as const;

/** The union of the values of {@link ErrorCode}. */
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode];

/**
 * The error thrown by every part of `@hydra/relay` for conditions that are not
 * programming mistakes (those throw `TypeError` / `RangeError`).
 *
 * @example
 * ```ts
 * import { RelayError } from "./errors.ts";
 * try {
 *   throw new RelayError("closed", "connection closed");
 * } catch (e) {
 *   if (e instanceof RelayError && e.code === "closed") console.log("closed");
 * }
 * ```
 */
export class RelayError extends Error {
  /** The machine-readable reason. */
  readonly code: ErrorCode;

  /**
   * Creates the error.
   *
   * @param code The machine-readable reason.
   * @param message A sentence for humans; never contains key material.
   * @param options `cause`: the underlying error, if any.
   */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RelayError";
    this.code = code;
  }
}

/**
 * The single error for every authentication failure (bad tag, low-order point, bad proof).
 *
 * @returns A fresh `RelayError` with code `auth-failed`.
 * @example
 * ```ts
 * import { authFailed } from "./errors.ts";
 * const err = authFailed(); // err.code === "auth-failed"
 * ```
 */
export function authFailed(): RelayError {
  return new RelayError("auth-failed", "authentication failed");
}
