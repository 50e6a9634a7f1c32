/**
 * @module
 * Read capabilities (docs/CAPABILITIES.md "Keys"; hydra/2, being built): what a producer hands
 * to consumers who may read but never write. A read capability of generation `g` holds the
 * session id, the writer's public key (the route id), the generation secret `G_g` derived one
 * way from the session key, and the writer's grant for this generation's reader key. It lets a
 * consumer join (the grant proves the writer minted it), derive the generation's data keys and
 * verify the producer's signatures; it cannot sign as the writer, and it tells nothing of other
 * generations. Pure derivations and the token codec: no I/O.
 */

import { abytes, aint, concat, readU32BE, writeU32BE } from "../bytes.ts";
import type { CryptoProvider, Signer } from "../crypto/types.ts";
import {
  generationSecret,
  MAX_GENERATION,
  SESSION_ID_LENGTH,
  type SessionKeys,
  streamDataKey,
  streamTag,
  type WriteSecret,
} from "./keys.ts";

export {
  FRAMES_PER_KEY,
  generationSecret,
  keyIndexOf,
  MAX_GENERATION,
  streamDataKey,
  type WriteSecret,
} from "./keys.ts";
import { decodeToken, encodeToken } from "./_token.ts";

/** Prefix of a read token. */
export const READ_TOKEN_PREFIX = "hydra2r_";

const enc = new TextEncoder();
const READER_INFO = enc.encode("hydra/2 reader");
const GRANT_LABEL = enc.encode("hydra/2 grant\0");
const SECRET_LENGTH = 32;
const KEY_LENGTH = 32;
const SIGNATURE_LENGTH = 64;
const TOKEN_BODY = SESSION_ID_LENGTH + 4 + KEY_LENGTH + SECRET_LENGTH + SIGNATURE_LENGTH;

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  writeU32BE(b, 0, n);
  return b;
}

/**
 * The bytes a grant signs: `"hydra/2 grant\0" ‖ route id ‖ u32 g ‖ reader public key`.
 * @param routeId The writer's public key.
 * @param generation The generation.
 * @param readerKey The generation's reader public key.
 * @returns The message.
 * @example
 * ```ts
 * import { grantMessage } from "./capability.ts";
 * grantMessage(new Uint8Array(32), 0, new Uint8Array(32)).length; // 14 + 32 + 4 + 32
 * ```
 */
export function grantMessage(
  routeId: Uint8Array,
  generation: number,
  readerKey: Uint8Array,
): Uint8Array {
  aint(generation, 0, MAX_GENERATION, "generation");
  return concat([
    GRANT_LABEL,
    abytes(routeId, KEY_LENGTH, "routeId"),
    u32(generation),
    abytes(readerKey, KEY_LENGTH, "readerKey"),
  ]);
}

/**
 * Verifies a grant: the writer (route id) authorized this reader key for this generation.
 * @param crypto The primitives.
 * @param routeId The writer's public key.
 * @param generation The generation.
 * @param readerKey The reader public key.
 * @param grant The 64-byte signature.
 * @returns Whether the writer signed it; malformed input is `false`, never a throw.
 * @example
 * ```ts
 * import { verifyGrant } from "./capability.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * await verifyGrant(nobleCrypto, new Uint8Array(32), 0, new Uint8Array(32), new Uint8Array(64)); // false
 * ```
 */
export async function verifyGrant(
  crypto: CryptoProvider,
  routeId: Uint8Array,
  generation: number,
  readerKey: Uint8Array,
  grant: Uint8Array,
): Promise<boolean> {
  try {
    return await crypto.ed25519Verify(
      routeId,
      grantMessage(routeId, generation, readerKey),
      abytes(grant, SIGNATURE_LENGTH, "grant"),
    );
  } catch {
    return false;
  }
}

/** What a reader derives from its capability: its join identity and the session's public one. */
export interface ReaderKeys extends SessionKeys {
  /** The generation this capability reads. */
  readonly generation: number;
  /** The reader public key the grant names (the signer's public key). */
  readonly readerKey: Uint8Array;
  /** The writer's signature over the reader key. */
  readonly grant: Uint8Array;
}

/**
 * A read capability: joins as consumer, decrypts and verifies one generation of a session's
 * streams; never writes. Like `Session`, it never prints its secret.
 *
 * @example
 * ```ts
 * import { ReadCapability, verifyGrant } from "./capability.ts";
 * import { Session } from "./session.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const session = Session.generate(nobleCrypto);
 * const read = await ReadCapability.mint(nobleCrypto, session);
 * const again = ReadCapability.fromToken(read.token());
 * const k = await again.keys(nobleCrypto);
 * await verifyGrant(nobleCrypto, k.routeId, k.generation, k.readerKey, k.grant); // true
 * ```
 */
export class ReadCapability {
  readonly #id: Uint8Array;
  readonly #generation: number;
  readonly #routeId: Uint8Array;
  readonly #secret: Uint8Array;
  readonly #grant: Uint8Array;

  /**
   * Wraps existing parts (see {@link ReadCapability.mint}); the arrays are copied.
   * @param parts The session id, generation, writer public key, generation secret and grant.
   * @throws {TypeError|RangeError} on wrong lengths or an out-of-range generation.
   */
  constructor(parts: {
    readonly id: Uint8Array;
    readonly generation: number;
    readonly routeId: Uint8Array;
    readonly secret: Uint8Array;
    readonly grant: Uint8Array;
  }) {
    this.#id = abytes(parts.id, SESSION_ID_LENGTH, "id").slice();
    this.#generation = aint(parts.generation, 0, MAX_GENERATION, "generation");
    this.#routeId = abytes(parts.routeId, KEY_LENGTH, "routeId").slice();
    this.#secret = abytes(parts.secret, SECRET_LENGTH, "secret").slice();
    this.#grant = abytes(parts.grant, SIGNATURE_LENGTH, "grant").slice();
    for (const name of ["nodejs.util.inspect.custom", ["Deno", "customInspect"].join(".")]) {
      Object.defineProperty(this, Symbol.for(name), { value: () => this.toString() });
    }
  }

  /**
   * Mints the read capability of a generation; only a holder of the session key can.
   * @param crypto The primitives.
   * @param session The session (its id and key; a `Session` will do).
   * @param generation The generation (default 0).
   * @returns The capability, with the writer's grant for its reader key.
   */
  static async mint(
    crypto: CryptoProvider,
    session: WriteSecret & { keys(crypto: CryptoProvider): Promise<SessionKeys> },
    generation = 0,
  ): Promise<ReadCapability> {
    const secret = generationSecret(crypto, session, generation);
    const writer = await session.keys(crypto);
    const reader = await readerSigner(crypto, secret, session.id);
    const grant = await writer.signer.sign(
      grantMessage(writer.routeId, generation, reader.publicKey),
    );
    return new ReadCapability({
      id: session.id,
      generation,
      routeId: writer.routeId,
      secret,
      grant,
    });
  }

  /**
   * Parses the printable form made by {@link ReadCapability.token}.
   * @param token `hydra2r_` + base64url(id ‖ u32 g ‖ route id ‖ G_g ‖ grant ‖ CRC-32).
   * @returns The capability.
   * @throws {TypeError} with a message saying what is wrong (never echoing the token).
   */
  static fromToken(token: string): ReadCapability {
    const body = decodeToken(token, READ_TOKEN_PREFIX, TOKEN_BODY, "read token");
    let at = 0;
    const take = (n: number) => body.subarray(at, at += n);
    const id = take(SESSION_ID_LENGTH);
    const g = take(4);
    return new ReadCapability({
      id,
      generation: readU32BE(g, 0),
      routeId: take(KEY_LENGTH),
      secret: take(SECRET_LENGTH),
      grant: take(SIGNATURE_LENGTH),
    });
  }

  /** The generation this capability reads. */
  get generation(): number {
    return this.#generation;
  }

  /** A copy of the session's route id (the writer's public key). */
  get routeId(): Uint8Array {
    return this.#routeId.slice();
  }

  /**
   * The printable form: `hydra2r_` + base64url of the parts and a CRC-32 (a typo check, not a
   * security measure).
   * @returns The token (a secret: whoever has it can read this generation).
   */
  token(): string {
    return encodeToken(
      READ_TOKEN_PREFIX,
      concat([this.#id, u32(this.#generation), this.#routeId, this.#secret, this.#grant]),
    );
  }

  /**
   * Derives the reader's join identity.
   * @param crypto The primitives.
   * @returns The route id and stream tag (the session's), the reader signer, its grant.
   */
  async keys(crypto: CryptoProvider): Promise<ReaderKeys> {
    const signer = await readerSigner(crypto, this.#secret, this.#id);
    return {
      routeId: this.#routeId.slice(),
      streamTag: streamTag(crypto, this.#routeId),
      signer,
      generation: this.#generation,
      readerKey: signer.publicKey,
      grant: this.#grant.slice(),
    };
  }

  /**
   * Whether this capability reads streams of a generation: only its own.
   * @param generation The stream's generation.
   * @returns Whether it does.
   */
  canRead(generation: number): boolean {
    return generation === this.#generation;
  }

  /**
   * A data key of one stream of this generation.
   * @param crypto The primitives.
   * @param epoch The stream's epoch.
   * @param generation The stream's generation: this capability's own.
   * @param keyIndex The key index (see {@link keyIndexOf}).
   * @returns The 32-byte key.
   * @throws {RangeError} for another generation (its key cannot be derived from this one).
   */
  dataKey(
    crypto: CryptoProvider,
    epoch: Uint8Array,
    generation: number,
    keyIndex: number,
  ): Uint8Array {
    if (!this.canRead(generation)) {
      throw new RangeError(
        `a read capability of generation ${this.#generation} cannot read generation ${generation}`,
      );
    }
    return streamDataKey(crypto, this.#secret, this.#id, epoch, keyIndex);
  }

  /** Never the secret: `ReadCapability(generation g, <redacted>)`. */
  toString(): string {
    return `ReadCapability(generation ${this.#generation}, <redacted>)`;
  }

  /** Never the secret. */
  toJSON(): string {
    return this.toString();
  }
}

/**
 * The reader signer of a generation: Ed25519 from `HKDF(G_g, id, "hydra/2 reader", 32)`.
 * @param crypto The primitives.
 * @param secret The generation secret.
 * @param id The session id.
 * @returns The signer (its public key is the reader key grants name).
 */
export function readerSigner(
  crypto: CryptoProvider,
  secret: Uint8Array,
  id: Uint8Array,
): Promise<Signer> {
  return crypto.ed25519(crypto.hkdf(secret, id, READER_INFO, 32));
}
