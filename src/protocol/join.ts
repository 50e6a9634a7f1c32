/**
 * @module
 * Join proofs (docs/PROTOCOL.md §4 "Join"): a client proves it holds the session key
 * without sending it. The proof is an Ed25519 signature by the session's auth key over
 *
 *     "hydra/1 join" ‖ 0x00 ‖ handshake hash (32) ‖ role (1) ‖ u32 BE options length ‖ options
 *
 * The relay verifies it with the route id as the public key. The handshake hash is unique
 * to one Noise handshake, so a proof seen on one connection is worthless on any other.
 */

import { abytes, concat, writeU32BE } from "../bytes.ts";
import type { CryptoProvider, Signer } from "../crypto/types.ts";

/** Who joins. */
export const Role = {
  /** The one writer of a session. */
  Producer: 1,
  /** One of many readers. */
  Consumer: 2,
} as const;

/** The union of {@link Role} values. */
export type Role = typeof Role[keyof typeof Role];

const LABEL = new TextEncoder().encode("hydra/1 join\0");

/** What a join proof binds together. */
export interface JoinClaim {
  /** The connection's 32-byte Noise handshake hash. */
  readonly handshakeHash: Uint8Array;
  /** Producer or consumer. */
  readonly role: Role;
  /** The join options exactly as sent on the wire. */
  readonly options: Uint8Array;
}

/**
 * The exact bytes a join proof signs.
 *
 * @param claim Handshake hash, role and options.
 * @returns The message.
 * @throws {TypeError} on a malformed hash; {RangeError} on an unknown role.
 * @example
 * ```ts
 * import { joinMessage, Role } from "./join.ts";
 * const m = joinMessage({ handshakeHash: new Uint8Array(32), role: Role.Consumer, options: new Uint8Array(0) });
 * m.length; // 13 + 32 + 1 + 4
 * ```
 */
export function joinMessage(claim: JoinClaim): Uint8Array {
  abytes(claim.handshakeHash, 32, "handshakeHash");
  if (claim.role !== Role.Producer && claim.role !== Role.Consumer) {
    throw new RangeError(`"role" must be 1 or 2, got ${claim.role}`);
  }
  const len = new Uint8Array(4);
  writeU32BE(len, 0, abytes(claim.options, undefined, "options").length);
  return concat([LABEL, claim.handshakeHash, new Uint8Array([claim.role]), len, claim.options]);
}

/**
 * Signs a join proof.
 *
 * @param signer The session's auth signer (`(await session.keys(crypto)).signer`).
 * @param claim Handshake hash, role and options.
 * @returns The 64-byte proof.
 * @example
 * ```ts
 * import { Role, signJoin } from "./join.ts";
 * import { Session } from "./session.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const { signer } = await Session.generate(nobleCrypto).keys(nobleCrypto);
 * const proof = await signJoin(signer, { handshakeHash: new Uint8Array(32), role: Role.Producer, options: new Uint8Array(0) });
 * ```
 */
export function signJoin(signer: Signer, claim: JoinClaim): Promise<Uint8Array> {
  return signer.sign(joinMessage(claim));
}

/** A received join, as the relay verifies it. */
export interface JoinAttempt {
  /** The route id claimed (the auth public key). */
  readonly routeId: Uint8Array;
  /** This connection's handshake hash (the relay's own, never the client's word). */
  readonly handshakeHash: Uint8Array;
  /** The role byte received (not yet validated). */
  readonly role: number;
  /** The options bytes received. */
  readonly options: Uint8Array;
  /** The signature received. */
  readonly proof: Uint8Array;
}

/**
 * Verifies a join proof, as the relay does.
 *
 * @param crypto The primitives.
 * @param attempt Route id, handshake hash, role, options and proof.
 * @returns Whether the proof is valid. Malformed input is simply `false`.
 * @example
 * ```ts
 * import { verifyJoin } from "./join.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const z = new Uint8Array(32);
 * await verifyJoin(nobleCrypto, { routeId: z, handshakeHash: z, role: 2, options: new Uint8Array(0), proof: new Uint8Array(64) }); // false
 * ```
 */
export async function verifyJoin(crypto: CryptoProvider, attempt: JoinAttempt): Promise<boolean> {
  const { role } = attempt;
  if (role !== Role.Producer && role !== Role.Consumer) return false;
  if (!(attempt.handshakeHash instanceof Uint8Array) || attempt.handshakeHash.length !== 32) {
    return false;
  }
  if (!(attempt.options instanceof Uint8Array)) return false;
  return await crypto.ed25519Verify(
    attempt.routeId,
    joinMessage({ ...attempt, role }),
    attempt.proof,
  );
}
