/**
 * @module
 * How a producer turns plaintexts into frames (docs/PROTOCOL.md §5, §8): sealing each under
 * the data key of its seq's key index, and signing the stream in segments — deciding which frame
 * closes a segment, and hashing and signing them in seq order on the way out. `Producer` keeps
 * the queue, batching, backpressure, acks and resend.
 */

import type { Aead, CryptoProvider } from "../crypto/types.ts";
import { DataFlag, sealData } from "../protocol/data_frame.ts";
import { keyIndexOf } from "../protocol/keys.ts";
import { SegmentWriter, trailerLength } from "../protocol/segment.ts";
import type { Session, SessionKeys } from "../protocol/session.ts";

/** The most frames one segment of a producer's covers (consumers accept up to 256). */
export const SEGMENT_FRAMES = 64;
/** A segment closes once its frames hold this many plaintext bytes (consumers hold at most
 * OPEN_SEGMENT_MAX_BYTES of frames unverified). */
const SEGMENT_BYTES = 256 * 1024;

/** A frame on its way to the connection. */
export interface Pending {
  /** The sealed frame; `undefined` while it waits unsealed. */
  frame: Promise<Uint8Array> | undefined;
  /** Its plaintext until it is sealed. */
  plaintext: Uint8Array | undefined;
  readonly flags: number;
  readonly size: number;
  readonly seq: bigint;
  /** Trailer bytes reserved at its end: it closes a segment (0: it does not). */
  trailer: number;
}

/** One producer stream's sealing and segment signing. */
export class FrameSealer {
  readonly #crypto: CryptoProvider;
  readonly #session: Session;
  readonly #epoch: Uint8Array;
  readonly #generation: number;
  readonly #streamTag: Uint8Array;
  readonly #segmentFrames: number;
  /** The data key of the current key index (a new one every 2^24 frames). */
  #aead: { index: number; aead: Aead | Promise<Aead> };
  /** Signs the stream's segments, in seq order. */
  readonly #segment: SegmentWriter;
  /** Frames sealed since the last signed one, and their bytes (at seal time). */
  #open = { frames: 0, bytes: 0 };

  /**
   * @param crypto The primitives.
   * @param stream The session, its keys, the stream's epoch and generation, its first data key.
   * @param segmentFrames The most frames one segment covers (1 to {@link SEGMENT_FRAMES}).
   */
  constructor(
    crypto: CryptoProvider,
    stream: {
      session: Session;
      keys: SessionKeys;
      epoch: Uint8Array;
      generation: number;
      aead: Aead;
    },
    segmentFrames: number,
  ) {
    this.#crypto = crypto;
    this.#session = stream.session;
    this.#epoch = stream.epoch;
    this.#generation = stream.generation;
    this.#streamTag = stream.keys.streamTag;
    this.#segmentFrames = segmentFrames;
    this.#aead = { index: 0, aead: stream.aead };
    this.#segment = new SegmentWriter(crypto, stream.keys.signer, stream.epoch);
  }

  /** Whether frames were sealed since the last signed one (the segment is open). */
  get segmentOpen(): boolean {
    return this.#open.frames > 0;
  }

  /**
   * Seals a frame. It closes the open segment (SIGNED, with room for the trailer
   * {@link FrameSealer.finish} fills in) when the caller says it is the last pending, it ends the
   * stream, or the segment reached its length.
   * @param p The frame; sealed in seq order.
   * @param last Whether nothing else is pending after it.
   */
  seal(p: Pending, last: boolean): void {
    const plaintext = p.plaintext!;
    const open = this.#open;
    const signed = last || (p.flags & DataFlag.End) !== 0 ||
      open.frames + 1 >= this.#segmentFrames ||
      open.bytes + plaintext.length >= SEGMENT_BYTES;
    p.trailer = signed ? trailerLength(open.frames + 1) : 0;
    this.#open = signed
      ? { frames: 0, bytes: 0 }
      : { frames: open.frames + 1, bytes: open.bytes + plaintext.length };
    const input = {
      streamTag: this.#streamTag,
      seq: p.seq,
      flags: signed ? p.flags | DataFlag.Signed : p.flags,
      plaintext,
      trailer: p.trailer,
    };
    const aead = this.#aeadFor(p.seq);
    p.frame = aead instanceof Promise
      ? aead.then((a) => sealData(a, input))
      : sealData(aead, input);
    p.frame.catch(() => {}); // failures surface where the frame is awaited
    p.plaintext = undefined;
  }

  /**
   * Hashes a sealed frame into its segment, or, for the frame that closes it, signs the segment
   * and fills in the trailer. Called in seq order, on the one path every frame takes.
   * @param p The frame.
   * @param frame Its sealed bytes.
   */
  async finish(p: Pending, frame: Uint8Array): Promise<void> {
    if (p.trailer === 0) {
      this.#segment.add(frame, p.seq);
      return;
    }
    const at = frame.length - p.trailer;
    frame.set(await this.#segment.close(frame.subarray(0, at), p.seq), at);
  }

  /** The data key of `seq`'s key index: the stream moves to a new key every 2^24 frames. */
  #aeadFor(seq: bigint): Aead | Promise<Aead> {
    const index = keyIndexOf(seq);
    if (index !== this.#aead.index) {
      const key = this.#session.dataKey(this.#crypto, this.#epoch, this.#generation, index);
      this.#aead = { index, aead: this.#crypto.aesGcm(key) };
    }
    return this.#aead.aead;
  }
}
