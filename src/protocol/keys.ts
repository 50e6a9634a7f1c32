/**
 * @module
 * The key schedule (docs/PROTOCOL.md §1): the lengths of a session's parts, the stream tag the
 * relay routes by, and the keys a stream is sealed with — per read-capability generation, per
 * stream epoch and per key index. Shared by `Session` (session.ts), which holds the write
 * secret, and `ReadCapability` (capability.ts), which holds one generation's secret.
 */

import { abytes, aint, concat, writeU32BE } from "../bytes.ts";
import type { CryptoProvider, Signer } from "../crypto/types.ts";

/** Session id length (bytes). */
export const SESSION_ID_LENGTH = 64;
/** Session key length (bytes). */
export const SESSION_KEY_LENGTH = 32;
/** Producer stream epoch length (bytes). */
export const EPOCH_LENGTH = 16;
/** Stream tag length (bytes). */
export const STREAM_TAG_LENGTH = 8;
/** Frames sealed under one data key before the next key index (AES-GCM usage bound). */
export const FRAMES_PER_KEY: number = 2 ** 24;
/** The highest generation number. */
export const MAX_GENERATION: number = 0xffffffff;

const enc = new TextEncoder();
const TAG_LABEL = enc.encode("hydra/1 stream tag");
const READ_INFO = enc.encode("hydra/2 read");
const DATA_INFO = enc.encode("hydra/2 data");
const SECRET_LENGTH = 32;
const KEY_LENGTH = 32;

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  writeU32BE(b, 0, n);
  return b;
}

/** What `Session.keys` derives. */
export interface SessionKeys {
  /** Ed25519 public key of the auth key pair: the session's name at the relay. */
  readonly routeId: Uint8Array;
  /** 8 bytes carried by every data frame of the session. */
  readonly streamTag: Uint8Array;
  /** Signs join proofs. */
  readonly signer: Signer;
}

/** The write secret: a session's id and key. */
export interface WriteSecret {
  /** The 64-byte session id. */
  readonly id: Uint8Array;
  /** The 32-byte session key. */
  readonly key: Uint8Array;
}

/**
 * The stream tag of a route id: what the relay computes to route data frames.
 *
 * @param crypto The primitives.
 * @param routeId The 32-byte route id.
 * @returns 8 bytes.
 * @example
 * ```ts
 * import { streamTag } from "./keys.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * streamTag(nobleCrypto, new Uint8Array(32)).length; // 8
 * ```
 */
export function streamTag(crypto: CryptoProvider, routeId: Uint8Array): Uint8Array {
  abytes(routeId, 32, "routeId");
  return crypto.sha256(concat([TAG_LABEL, routeId])).slice(0, STREAM_TAG_LENGTH);
}

/**
 * The generation secret `G_g = HKDF(key, id, "hydra/2 read" ‖ u32 g, 32)`.
 * @param crypto The primitives.
 * @param session The session's id and key.
 * @param generation The generation, 0 to 2^32 − 1.
 * @returns 32 bytes.
 * @throws {RangeError} for a generation out of range.
 * @example
 * ```ts
 * import { generationSecret } from "./keys.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const s = { id: new Uint8Array(64), key: new Uint8Array(32) };
 * generationSecret(nobleCrypto, s, 0).length; // 32
 * ```
 */
export function generationSecret(
  crypto: CryptoProvider,
  session: WriteSecret,
  generation: number,
): Uint8Array {
  aint(generation, 0, MAX_GENERATION, "generation");
  const id = abytes(session.id, SESSION_ID_LENGTH, "id");
  const key = abytes(session.key, SESSION_KEY_LENGTH, "key");
  return crypto.hkdf(key, id, concat([READ_INFO, u32(generation)]), SECRET_LENGTH);
}

/**
 * The data key of stream `epoch`, key index `k`, under generation secret `G_g`:
 * `HKDF(G_g, id ‖ epoch, "hydra/2 data" ‖ u32 k, 32)`. Frame `seq` uses key index
 * `floor(seq / FRAMES_PER_KEY)`.
 * @param crypto The primitives.
 * @param secret The generation secret.
 * @param id The 64-byte session id.
 * @param epoch The stream's 16-byte epoch.
 * @param keyIndex The key index.
 * @returns The 32-byte AES-256-GCM key.
 * @example
 * ```ts
 * import { streamDataKey } from "./keys.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * streamDataKey(nobleCrypto, new Uint8Array(32), new Uint8Array(64), new Uint8Array(16), 0).length; // 32
 * ```
 */
export function streamDataKey(
  crypto: CryptoProvider,
  secret: Uint8Array,
  id: Uint8Array,
  epoch: Uint8Array,
  keyIndex: number,
): Uint8Array {
  abytes(secret, SECRET_LENGTH, "secret");
  abytes(id, SESSION_ID_LENGTH, "id");
  abytes(epoch, EPOCH_LENGTH, "epoch");
  aint(keyIndex, 0, MAX_GENERATION, "keyIndex");
  return crypto.hkdf(secret, concat([id, epoch]), concat([DATA_INFO, u32(keyIndex)]), KEY_LENGTH);
}

/** log2 of {@link FRAMES_PER_KEY}: a shift instead of a BigInt division per frame. */
const KEY_INDEX_SHIFT = 24n;

/**
 * The key index of a frame's seq.
 * @param seq The seq.
 * @returns `floor(seq / FRAMES_PER_KEY)`.
 * @example
 * ```ts
 * import { keyIndexOf } from "./keys.ts";
 * keyIndexOf(2n ** 24n); // 1
 * ```
 */
export function keyIndexOf(seq: bigint): number {
  return Number(seq >> KEY_INDEX_SHIFT);
}
