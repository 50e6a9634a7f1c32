/**
 * @module
 * What a process remembers of the producer signatures it checked (docs/CAPABILITIES.md "Signed
 * frames"): every consumer of a stream in one process receives the same signed frames, so a
 * segment is verified once for all of them. Entries answer only for the same key, message and
 * signature — or, for a small signed frame, the same bytes in a stream of the same route id and
 * epoch — never for a signature alone.
 */

import { aint, equals } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/types.ts";

/** Bytes of an Ed25519 signature (the last bytes of a signed frame). */
const SIGNATURE_LENGTH = 64;

/**
 * A signature check's outcome: known now, or still being checked. Once a check settles its
 * entry holds the plain boolean, so the other consumers of the process (which receive the frame
 * in later turns of the event loop) get the verdict without a promise.
 */
export type Verdict = boolean | Promise<boolean>;

/** Replaces an entry's running check by its outcome once that is known. */
function settle(entry: { valid: Verdict }): void {
  const running = entry.valid as Promise<boolean>;
  running.then((ok) => {
    if (entry.valid === running) entry.valid = ok;
  }, () => {});
}

/**
 * Remembers signature checks, so a process verifies each segment once however many of its
 * consumers follow the stream — also while the first check is still running, since every
 * consumer receives the frame in the same turn. An entry answers only for the same public key,
 * signed message and signature — never the signature alone, or a valid signature could be paired
 * with other frames.
 */
export class SignatureCache {
  readonly #max: number;
  readonly #checks = new Map<
    number,
    {
      publicKey: Uint8Array;
      message: Uint8Array;
      signature: Uint8Array;
      valid: Verdict;
    }
  >();
  /**
   * Small signed frames by their bytes: the consumers of one process receive the same signed
   * frame, and a byte comparison spares each of them the hash, the signed message and the
   * lookup above (at 1,000 msg/s every frame is its own segment).
   */
  readonly #frames = new Map<
    number,
    { routeId: Uint8Array; epoch: Uint8Array; frame: Uint8Array; valid: Verdict }
  >();

  /** @param max Entries kept (the oldest go first). Default 1,024. */
  constructor(max = 1024) {
    this.#max = aint(max, 1, 1 << 20, "max");
  }

  /**
   * Verifies an Ed25519 signature, or recalls that it verified.
   * @param crypto The primitives.
   * @param publicKey The signer's public key.
   * @param message The signed bytes.
   * @param signature The signature.
   * @returns Whether it is valid: a boolean when an earlier check already settled, else a
   *   promise.
   */
  verify(
    crypto: CryptoProvider,
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
  ): Verdict {
    const key = signatureKey(signature, 0);
    const seen = this.#checks.get(key);
    if (
      seen !== undefined && equals(seen.signature, signature) &&
      equals(seen.publicKey, publicKey) && equals(seen.message, message)
    ) {
      return seen.valid;
    }
    const valid = crypto.ed25519Verify(publicKey, message, signature).catch(() => false);
    if (this.#checks.size >= this.#max) this.#checks.delete(this.#checks.keys().next().value!);
    const entry = {
      publicKey: publicKey.slice(),
      message: message.slice(),
      signature: signature.slice(),
      valid: valid as Verdict,
    };
    this.#checks.set(key, entry);
    settle(entry);
    return valid;
  }

  /**
   * The verdict on a signed frame byte-identical to this one, in a stream of the same route id
   * and epoch: then its signed message is the same (the message is made of those, the frame's
   * seq, its trailer and its own bytes), and so is the verdict. The caller still checks its own
   * held frames against the trailer.
   * @param routeId The writer's public key.
   * @param epoch The stream's epoch.
   * @param frame The whole signed frame as on the wire.
   * @returns The verdict (a promise while the check still runs), or `undefined` when not known.
   */
  recall(routeId: Uint8Array, epoch: Uint8Array, frame: Uint8Array): Verdict | undefined {
    if (frame.length > RECALL_MAX_FRAME) return undefined;
    const seen = this.#frames.get(signatureKey(frame, frame.length - SIGNATURE_LENGTH));
    if (
      seen === undefined || !equals(seen.frame, frame) || !equals(seen.epoch, epoch) ||
      !equals(seen.routeId, routeId)
    ) {
      return undefined;
    }
    return seen.valid;
  }

  /**
   * Remembers the verdict on a signed frame for {@link SignatureCache.recall} (small frames only).
   * @param routeId The writer's public key.
   * @param epoch The stream's epoch.
   * @param frame The whole signed frame as on the wire (copied).
   * @param valid Its verdict.
   */
  remember(
    routeId: Uint8Array,
    epoch: Uint8Array,
    frame: Uint8Array,
    valid: Verdict,
  ): void {
    if (frame.length > RECALL_MAX_FRAME) return;
    if (this.#frames.size >= this.#max) this.#frames.delete(this.#frames.keys().next().value!);
    const entry = { routeId, epoch, frame: frame.slice(), valid };
    this.#frames.set(signatureKey(frame, frame.length - SIGNATURE_LENGTH), entry);
    if (typeof valid !== "boolean") settle(entry);
  }
}

/** Signed frames up to this size are recalled by their bytes (larger ones hash faster). */
const RECALL_MAX_FRAME = 2048;

/**
 * 48 bits of a signature at `at` of `bytes`: a map key (no string per lookup); entries are
 * compared in full, so a collision only costs a verification.
 */
function signatureKey(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 16) | (bytes[at + 1]! << 8) | bytes[at + 2]!) * 0x1000000 +
    ((bytes[at + 3]! << 16) | (bytes[at + 4]! << 8) | bytes[at + 5]!);
}

/** The cache shared by the consumers of this process. */
export const sharedSignatureCache: SignatureCache = new SignatureCache();
