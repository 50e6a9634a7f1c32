/**
 * @module
 * The relay's side of opening a connection (docs/PROTOCOL.md §3, §3.1): Noise NX as
 * responder, the version check, and the hello with the relay's limits — or, for a connection
 * the relay refuses (its cap), a hello that says why. The pure handshake is
 * protocol/noise.ts; this is its driver.
 */

import type { CryptoProvider, KeyPair } from "../crypto/types.ts";
import { RelayError } from "../errors.ts";
import {
  encodeHello,
  Policy,
  PROLOGUE,
  PROTOCOL_VERSION,
  type RelayHello,
  wireErrorOf,
} from "../protocol/control.ts";
import { encodeFrame, type Frame, FrameType } from "../protocol/framer.ts";
import { type CipherState, NoiseHandshake } from "../protocol/noise.ts";
import type { RelayLimits } from "./options.ts";

/**
 * Limit on the first frame's body: hydra/1's handshake message 1 is 33 bytes (an ephemeral
 * key and the version byte); the slack is for later versions' payloads, answered with
 * `unsupported`. Unauthenticated peers can make the relay hold no more than this.
 */
export const HANDSHAKE_MAX = 1024;
/** How the handshake reads frames from, and writes them to, its connection. */
export interface HandshakeIo {
  /** The next frame (`null`: the peer closed); `pending` holds frames read ahead. */
  next(pending: Frame[]): Promise<Frame | null>;
  /** Writes bytes. */
  write(bytes: Uint8Array): Promise<void>;
}

/**
 * Runs the handshake as responder.
 * @param ctx The relay's crypto, static key and limits.
 * @param refuse When set, the handshake completes only to tell the client why it is refused.
 * @param io The connection.
 * @returns The transport ciphers and the handshake hash; `undefined` for a refused client,
 *   which has been told.
 * @throws {RelayError} on a malformed or unsupported handshake (the client was told
 *   `unsupported` where it could be).
 */
export async function acceptHandshake(
  ctx: {
    readonly crypto: CryptoProvider;
    readonly staticKey: KeyPair;
    readonly limits: RelayLimits;
  },
  refuse: RelayError | undefined,
  io: HandshakeIo,
): Promise<{ send: CipherState; recv: CipherState; hash: Uint8Array } | undefined> {
  const { crypto, staticKey, limits } = ctx;
  const noise = new NoiseHandshake(crypto, {
    pattern: "NX",
    initiator: false,
    prologue: PROLOGUE,
    staticKey,
  });
  const pending: Frame[] = [];
  const first = await io.next(pending);
  if (first === null) throw new RelayError("connection-lost", "closed during the handshake");
  if (first.type !== FrameType.Handshake || pending.length > 0) {
    throw new RelayError("protocol-error", "expected one handshake frame");
  }
  const payload = await noise.readMessage(first.body);
  let status = refuse;
  if (status === undefined && (payload.length < 1 || payload[0] !== PROTOCOL_VERSION)) {
    status = new RelayError("unsupported", `this relay speaks hydra/${PROTOCOL_VERSION} only`);
  }
  const hello: RelayHello = {
    version: PROTOCOL_VERSION,
    status: status === undefined ? 0 : wireErrorOf(status.code),
    maxFrame: limits.maxFrameBytes,
    heartbeatMs: limits.heartbeatMs,
    ringFrames: limits.ringFrames,
    ringBytes: Math.min(limits.ringBytes, 0xffffffff),
    policy: Policy[limits.policy],
    message: status?.message ?? "",
  };
  const reply = await noise.writeMessage(encodeHello(hello));
  await io.write(encodeFrame(FrameType.Handshake, reply));
  if (status !== undefined) {
    if (refuse === undefined) throw status;
    return undefined;
  }
  const { send, recv, handshakeHash } = await noise.result();
  return { send, recv, hash: handshakeHash };
}
