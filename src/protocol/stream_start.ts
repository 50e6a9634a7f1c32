/**
 * @module
 * STREAM-START (docs/PROTOCOL.md §6.1): a producer's signed announcement of a stream — its
 * epoch, its generation (which read capabilities may read it), when it began and where it
 * continues. Relays and consumers verify the signature with the route id, so no one without the
 * session key — no reader, no relay — can start a stream.
 */

import { abytes, concat } from "../bytes.ts";
import type { CryptoProvider, Signer } from "../crypto/types.ts";
import { u32, u64 } from "./_codec.ts";
import { EPOCH_LENGTH } from "./session.ts";

const STREAM_LABEL = new TextEncoder().encode("hydra/2 stream\0");

/** A producer stream's announcement. */
export interface StreamStart {
  /** The session's stream tag. */
  readonly tag: Uint8Array;
  /** 16 random bytes naming the stream; the data key derives from it. */
  readonly epoch: Uint8Array;
  /** Producer's clock when the stream began (ms since the Unix epoch). */
  readonly startedAt: bigint;
  /** The read capability generation whose holders may read it (docs/CAPABILITIES.md). */
  readonly generation: number;
  /** Producer → relay: first seq it sends. Relay → consumer: first seq it will deliver. */
  readonly firstSeq: bigint;
  /** Ed25519 signature by the session's auth key over {@link streamStartMessage}. */
  readonly signature: Uint8Array;
}

/**
 * The bytes a STREAM-START signature covers:
 * `"hydra/2 stream\0" ‖ route id ‖ epoch ‖ u64 startedAt ‖ u32 generation`.
 * @param routeId The session's route id.
 * @param start Epoch, start time (ms since the Unix epoch) and generation.
 * @returns The message to sign.
 * @example
 * ```ts
 * import { streamStartMessage } from "./stream_start.ts";
 * const start = { epoch: new Uint8Array(16), startedAt: 0n, generation: 0 };
 * streamStartMessage(new Uint8Array(32), start).length; // 15 + 32 + 16 + 8 + 4
 * ```
 */
export function streamStartMessage(
  routeId: Uint8Array,
  start: { readonly epoch: Uint8Array; readonly startedAt: bigint; readonly generation: number },
): Uint8Array {
  return concat([
    STREAM_LABEL,
    abytes(routeId, 32, "routeId"),
    abytes(start.epoch, EPOCH_LENGTH, "epoch"),
    u64(start.startedAt),
    u32(start.generation),
  ]);
}

/**
 * Signs a stream start (producer side).
 * @param signer The session's auth signer.
 * @param routeId The session's route id.
 * @param start Epoch, start time and generation.
 * @returns The signature.
 * @example
 * ```ts
 * import { signStreamStart } from "./stream_start.ts";
 * import { Session } from "./session.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const { signer, routeId } = await Session.generate(nobleCrypto).keys(nobleCrypto);
 * await signStreamStart(signer, routeId, { epoch: new Uint8Array(16), startedAt: 1n, generation: 0 });
 * ```
 */
export function signStreamStart(
  signer: Signer,
  routeId: Uint8Array,
  start: { readonly epoch: Uint8Array; readonly startedAt: bigint; readonly generation: number },
): Promise<Uint8Array> {
  return signer.sign(streamStartMessage(routeId, start));
}

/**
 * Verifies a stream start against the route id (relay and consumers both do).
 * @param crypto The primitives.
 * @param routeId The session's route id.
 * @param start The received announcement.
 * @returns Whether the producer of this session signed it.
 * @example
 * ```ts
 * import { verifyStreamStart } from "./stream_start.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const z = new Uint8Array(32);
 * await verifyStreamStart(nobleCrypto, z, { epoch: new Uint8Array(16), startedAt: 0n, generation: 0, signature: new Uint8Array(64) }); // false
 * ```
 */
export async function verifyStreamStart(
  crypto: CryptoProvider,
  routeId: Uint8Array,
  start: {
    readonly epoch: Uint8Array;
    readonly startedAt: bigint;
    readonly generation: number;
    readonly signature: Uint8Array;
  },
): Promise<boolean> {
  try {
    return await crypto.ed25519Verify(
      routeId,
      streamStartMessage(routeId, start),
      start.signature,
    );
  } catch {
    return false;
  }
}
