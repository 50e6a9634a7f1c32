/**
 * @module
 * The relay's hello (docs/PROTOCOL.md §3.1): its handshake payload with the version, a status
 * (0, or why the connection is refused) and the limits clients adapt to.
 */

import { concat } from "../bytes.ts";
import { MAX_REASON, Reader, text, u32, u8 } from "./_codec.ts";

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
 * import { decodeHello, encodeHello } from "./hello.ts";
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
 * import { decodeHello } from "./hello.ts";
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
