/**
 * @module
 * Producer-signed segments (docs/CAPABILITIES.md "Signed frames"; hydra/2, being built). A
 * reader knows a stream's data key, so AES-GCM alone cannot stop it forging frames; the producer
 * therefore signs runs of frames with the writer key, amortised over each run (a *segment*). A
 * segment's last frame carries the flag SIGNED and, after its AEAD output, a trailer:
 *
 *     hash[32] × (c − 1) ‖ u16 c ‖ signature[64]
 *
 * where the hashes are SHA-256 of each earlier frame of the segment as on the wire, and the
 * signature is Ed25519 by the writer over
 * `"hydra/2 segment\0" ‖ route id ‖ epoch ‖ u64 first seq ‖ u16 c ‖ hashes ‖ SHA-256(this
 * frame up to the trailer)`. The list names every frame, so any suffix of a segment verifies:
 * a consumer that joins or resumes mid-segment needs nothing from before its first frame.
 * Pure state machines over a crypto provider: no I/O.
 */

import { abytes, aint, concat, equals, writeU64BE } from "../bytes.ts";
import { sharedSignatureCache, type SignatureCache, type Verdict } from "./signature_cache.ts";

export { sharedSignatureCache, SignatureCache, type Verdict } from "./signature_cache.ts";
import type { CryptoProvider, Signer } from "../crypto/types.ts";
import { EPOCH_LENGTH } from "./session.ts";

/** The data frame flag of a segment's last frame (it carries the trailer). */
export const SIGNED_FLAG = 0x04;
/** The most frames one segment may cover: a consumer holds at most this many unverified. */
export const SEGMENT_MAX_FRAMES = 256;
/**
 * The most bytes of frames a consumer holds unverified (an honest producer closes a segment once
 * its frames carry 256 KiB of plaintext, so its unsigned frames stay below this).
 */
export const OPEN_SEGMENT_MAX_BYTES: number = 320 * 1024;
/** Bytes of an Ed25519 signature. */
export const SIGNATURE_LENGTH = 64;
/** Bytes of one frame hash in a trailer. */
export const HASH_LENGTH = 32;

const LABEL = new TextEncoder().encode("hydra/2 segment\0");

/**
 * The trailer's length for a segment of `count` frames.
 * @param count Frames in the segment, the signed one included (1 to SEGMENT_MAX_FRAMES).
 * @returns `32 × (count − 1) + 2 + 64`.
 * @example
 * ```ts
 * import { trailerLength } from "./segment.ts";
 * trailerLength(1); // 66
 * ```
 */
export function trailerLength(count: number): number {
  aint(count, 1, SEGMENT_MAX_FRAMES, "count");
  return HASH_LENGTH * (count - 1) + 2 + SIGNATURE_LENGTH;
}

/** What a segment signature covers. */
export interface SegmentClaim {
  /** The session's route id (the writer's public key). */
  readonly routeId: Uint8Array;
  /** The stream's epoch. */
  readonly epoch: Uint8Array;
  /** Seq of the segment's first frame. */
  readonly firstSeq: bigint;
  /** SHA-256 of each frame before the signed one, in order (`c − 1` of them). */
  readonly hashes: readonly Uint8Array[];
  /** SHA-256 of the signed frame up to its trailer. */
  readonly last: Uint8Array;
}

/**
 * The bytes a segment signature covers.
 * @param claim The segment.
 * @returns `"hydra/2 segment\0" ‖ route id ‖ epoch ‖ u64 first seq ‖ u16 c ‖ hashes ‖ last`.
 * @throws {TypeError|RangeError} on malformed parts.
 * @example
 * ```ts
 * import { segmentMessage } from "./segment.ts";
 * const z = (n: number) => new Uint8Array(n);
 * segmentMessage({ routeId: z(32), epoch: z(16), firstSeq: 0n, hashes: [], last: z(32) }).length; // 16 + 32 + 16 + 8 + 2 + 32
 * ```
 */
export function segmentMessage(claim: SegmentClaim): Uint8Array {
  const count = claim.hashes.length + 1;
  aint(count, 1, SEGMENT_MAX_FRAMES, "count");
  const head = new Uint8Array(10);
  writeU64BE(head, 0, claim.firstSeq);
  head[8] = count >> 8;
  head[9] = count & 0xff;
  return concat([
    LABEL,
    abytes(claim.routeId, 32, "routeId"),
    abytes(claim.epoch, EPOCH_LENGTH, "epoch"),
    head,
    ...claim.hashes.map((h) => abytes(h, HASH_LENGTH, "hash")),
    abytes(claim.last, HASH_LENGTH, "last"),
  ]);
}

/**
 * The frame count a signed frame's trailer names (`hash[32] × (c − 1) ‖ u16 c ‖ signature[64]`
 * at its end), read where it lies: no objects on every consumer's path.
 * @param frame The whole frame as on the wire.
 * @param minimum Bytes the frame must keep before its trailer.
 * @returns The count (1 to SEGMENT_MAX_FRAMES), or 0 when the frame is too short for the count
 *   it names or the count is out of range.
 * @example
 * ```ts
 * import { trailerCount } from "./segment.ts";
 * trailerCount(new Uint8Array(10), 38); // 0
 * ```
 */
export function trailerCount(frame: Uint8Array, minimum: number): number {
  const end = frame.length - SIGNATURE_LENGTH;
  if (end - 2 < minimum) return 0;
  const count = (frame[end - 2]! << 8) | frame[end - 1]!;
  if (count < 1 || count > SEGMENT_MAX_FRAMES) return 0;
  return end - 2 - HASH_LENGTH * (count - 1) < minimum ? 0 : count;
}

/**
 * Where a signed frame's trailer starts (its own bytes end there), for a count from
 * {@link trailerCount}.
 * @param frame The whole frame as on the wire.
 * @param count The trailer's count.
 * @returns The offset.
 */
export function trailerStart(frame: Uint8Array, count: number): number {
  return frame.length - SIGNATURE_LENGTH - 2 - HASH_LENGTH * (count - 1);
}

/**
 * The producer's side: collects the hashes of a segment's frames and signs it.
 *
 * @example
 * ```ts
 * import { SegmentWriter, SegmentVerifier } from "./segment.ts";
 * import { nobleCrypto as c } from "../crypto/noble.ts";
 * const signer = await c.ed25519(new Uint8Array(32));
 * const epoch = new Uint8Array(16);
 * const w = new SegmentWriter(c, signer, epoch);
 * const a = new Uint8Array(40).fill(1);
 * w.add(a, 0n);
 * const head = new Uint8Array(40).fill(2); // the signed frame up to its trailer
 * const signed = new Uint8Array([...head, ...await w.close(head, 1n)]);
 * const v = new SegmentVerifier(c, signer.publicKey, epoch);
 * v.add(a, 0n);
 * await v.close(signed, 1n, 38); // true
 * ```
 */
export class SegmentWriter {
  readonly #crypto: CryptoProvider;
  readonly #signer: Signer;
  readonly #epoch: Uint8Array;
  #hashes: Uint8Array[] = [];
  #next: bigint | undefined;
  #bytes = 0;

  /**
   * @param crypto The primitives.
   * @param signer The writer's signer (its public key is the route id).
   * @param epoch The stream's epoch.
   */
  constructor(crypto: CryptoProvider, signer: Signer, epoch: Uint8Array) {
    this.#crypto = crypto;
    this.#signer = signer;
    this.#epoch = abytes(epoch, EPOCH_LENGTH, "epoch").slice();
  }

  /** Frames in the open segment (without the one that will close it). */
  get frames(): number {
    return this.#hashes.length;
  }

  /** Bytes of the frames in the open segment. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether the next frame must close the segment (it would be its last allowed one). */
  get full(): boolean {
    return this.#hashes.length + 1 >= SEGMENT_MAX_FRAMES;
  }

  /**
   * The trailer length of the frame that would close the segment now.
   * @returns Bytes.
   */
  trailerLength(): number {
    return trailerLength(this.#hashes.length + 1);
  }

  /**
   * A frame that leaves the segment open (sent as is).
   * @param frame The frame as on the wire.
   * @param seq Its seq: the next one.
   * @throws {RangeError} out of order, or when the segment is full (close it instead).
   */
  add(frame: Uint8Array, seq: bigint): void {
    this.#check(seq);
    if (this.full) throw new RangeError("the segment is full: close it with this frame");
    this.#hashes.push(this.#crypto.sha256(frame));
    this.#bytes += frame.length;
    this.#next = seq + 1n;
  }

  /**
   * Closes the segment with its last frame.
   * @param head The last frame as on the wire up to its trailer: its flags carry SIGNED and its
   *   length prefix already counts {@link trailerLength} more bytes.
   * @param seq Its seq: the next one.
   * @returns The trailer to send right after `head`.
   * @throws {RangeError} out of order.
   */
  async close(head: Uint8Array, seq: bigint): Promise<Uint8Array> {
    this.#check(seq);
    const hashes = this.#hashes;
    const firstSeq = seq - BigInt(hashes.length);
    const message = segmentMessage({
      routeId: this.#signer.publicKey,
      epoch: this.#epoch,
      firstSeq,
      hashes,
      last: this.#crypto.sha256(head),
    });
    this.#hashes = [];
    this.#bytes = 0;
    this.#next = seq + 1n;
    const signature = await this.#signer.sign(message);
    const count = hashes.length + 1;
    return concat([...hashes, new Uint8Array([count >> 8, count & 0xff]), signature]);
  }

  #check(seq: bigint): void {
    if (this.#next !== undefined && seq !== this.#next) {
      throw new RangeError(`segment frame seq ${seq}, expected ${this.#next}`);
    }
  }
}

/**
 * A consumer's side: holds the hashes of frames not yet covered by a signature and checks the
 * signed frame that closes their segment.
 */
export class SegmentVerifier {
  readonly #crypto: CryptoProvider;
  readonly #routeId: Uint8Array;
  readonly #epoch: Uint8Array;
  readonly #cache: SignatureCache;
  #hashes: Uint8Array[] = [];
  #first: bigint | undefined;
  #bytes = 0;

  /**
   * @param crypto The primitives.
   * @param routeId The writer's public key (from the token, never from the relay).
   * @param epoch The stream's epoch (from its verified STREAM-START).
   * @param cache Where valid signatures are remembered (default: this process's).
   */
  constructor(
    crypto: CryptoProvider,
    routeId: Uint8Array,
    epoch: Uint8Array,
    cache: SignatureCache = sharedSignatureCache,
  ) {
    this.#crypto = crypto;
    this.#routeId = abytes(routeId, 32, "routeId").slice();
    this.#epoch = abytes(epoch, EPOCH_LENGTH, "epoch").slice();
    this.#cache = cache;
  }

  /** Frames held, waiting for the signature that covers them. */
  get pending(): number {
    return this.#hashes.length;
  }

  /**
   * Drops the frames held (the relay skipped frames after them: policy `drop`, a LAGGED gap).
   * They can never be verified now — the next signature names the skipped frames, which this
   * consumer never had — so they become part of the gap.
   * @returns The seq of the first frame dropped, if any were held.
   */
  discard(): bigint | undefined {
    const first = this.#first;
    this.#hashes = [];
    this.#first = undefined;
    this.#bytes = 0;
    return first;
  }

  /**
   * A frame without a trailer.
   * @param frame The frame as on the wire.
   * @param seq Its seq (the caller checked it is the next one).
   * @returns `false` when no segment may be that long (in frames, or in bytes held: see
   *   {@link OPEN_SEGMENT_MAX_BYTES}): the stream is being tampered with.
   */
  add(frame: Uint8Array, seq: bigint): boolean {
    if (this.#hashes.length + 1 >= SEGMENT_MAX_FRAMES) return false;
    if (this.#bytes + frame.length > OPEN_SEGMENT_MAX_BYTES) return false;
    this.#bytes += frame.length;
    if (this.#first === undefined) this.#first = seq;
    this.#hashes.push(this.#crypto.sha256(frame));
    return true;
  }

  /**
   * The signed frame closing a segment: the frames held must be exactly the last ones its
   * trailer names, in order, and the writer must have signed it. Either way the held frames are
   * settled: delivered by the caller on `true`, a tampered stream on `false`.
   * @param frame The whole signed frame as on the wire.
   * @param seq Its seq (the caller checked it is the next one).
   * @param minimum Bytes the frame must keep before its trailer (its header and AEAD tag).
   * @returns Whether the segment is authentic: a boolean when that is known at once (malformed,
   *   or checked already in this process), else a promise.
   */
  close(frame: Uint8Array, seq: bigint, minimum: number): Verdict {
    const held = this.#hashes;
    const first = this.#first;
    if (held.length > 0) {
      this.#hashes = [];
      this.#first = undefined;
      this.#bytes = 0;
    }
    const count = trailerCount(frame, minimum);
    if (count === 0 || held.length > count - 1) return false;
    if (first !== undefined && first + BigInt(held.length) !== seq) return false;
    // A count reaching before seq 0 names frames that cannot exist.
    if (count > 1 && seq < BigInt(count - 1)) return false;
    const start = trailerStart(frame, count);
    const skipped = count - 1 - held.length;
    for (let i = 0; i < held.length; i++) {
      const at = start + (skipped + i) * HASH_LENGTH;
      if (!equals(frame.subarray(at, at + HASH_LENGTH), held[i]!)) return false;
    }
    // A frame another consumer of this process already checked: its verdict, most often a
    // plain boolean (no promise, no hash).
    const known = this.#cache.recall(this.#routeId, this.#epoch, frame);
    if (known !== undefined) return known;
    const listed: Uint8Array[] = [];
    for (let i = 0; i < count - 1; i++) {
      listed.push(frame.subarray(start + i * HASH_LENGTH, start + (i + 1) * HASH_LENGTH));
    }
    let message: Uint8Array;
    try {
      message = segmentMessage({
        routeId: this.#routeId,
        epoch: this.#epoch,
        firstSeq: seq - BigInt(listed.length),
        hashes: listed,
        last: this.#crypto.sha256(frame.subarray(0, start)),
      });
    } catch {
      return false;
    }
    const end = frame.length - SIGNATURE_LENGTH;
    const valid = this.#cache.verify(this.#crypto, this.#routeId, message, frame.subarray(end));
    this.#cache.remember(this.#routeId, this.#epoch, frame, valid);
    return valid;
  }
}
