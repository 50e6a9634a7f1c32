/**
 * @module
 * The hydra/1 outer framing (docs/PROTOCOL.md §2 "Framing"):
 * `u32 BE body length ‖ u8 type ‖ body`. An incremental decoder over arbitrary chunk splits
 * that checks every length prefix against the limit as soon as the 5-byte header is
 * complete — before any allocation — and hands out frames inside one chunk as views, so the
 * relay can forward frame-aligned runs of received bytes without copying.
 */

import { aint, readU32BE, writeU32BE } from "../bytes.ts";
import { RelayError } from "../errors.ts";

/** Bytes before the body: 4 length + 1 type. */
export const FRAME_HEADER = 5;

const EMPTY = new Uint8Array(0);

/** Outer frame types. */
export const FrameType = {
  /** A Noise handshake message. */
  Handshake: 0x01,
  /** A control message sealed with the connection's Noise transport cipher. */
  Control: 0x02,
  /** An end-to-end sealed data frame, forwarded by the relay unchanged. */
  Data: 0x03,
} as const;

/** The union of {@link FrameType} values. */
export type FrameType = typeof FrameType[keyof typeof FrameType];

/** One decoded frame. `body` and `bytes` are views: into the received chunk when possible. */
export interface Frame {
  /** The type byte (not validated here: unknown types are the caller's protocol error). */
  readonly type: number;
  /** The body, `length` bytes. */
  readonly body: Uint8Array;
  /** The whole frame as received, header included: what the relay forwards. */
  readonly bytes: Uint8Array;
}

/**
 * Encodes one frame into a fresh buffer.
 *
 * @param type The type byte.
 * @param body The body.
 * @returns `u32 BE length ‖ type ‖ body`.
 * @example
 * ```ts
 * import { encodeFrame, FrameType } from "./framer.ts";
 * encodeFrame(FrameType.Handshake, new Uint8Array([1, 2])); // 00 00 00 02 01 01 02
 * ```
 */
export function encodeFrame(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER + body.length);
  writeFrameHeader(out, 0, type, body.length);
  out.set(body, FRAME_HEADER);
  return out;
}

/**
 * Writes a frame header into `buf` at `offset` (for encoders that build frames in place).
 *
 * @param buf Target.
 * @param offset Where the header starts.
 * @param type The type byte.
 * @param bodyLength The body length.
 * @example
 * ```ts
 * import { writeFrameHeader } from "./framer.ts";
 * const buf = new Uint8Array(5 + 3);
 * writeFrameHeader(buf, 0, 3, 3);
 * ```
 */
export function writeFrameHeader(
  buf: Uint8Array,
  offset: number,
  type: number,
  bodyLength: number,
): void {
  aint(type, 0, 255, "type");
  writeU32BE(buf, offset, bodyLength);
  buf[offset + 4] = type;
}

/**
 * Incremental frame decoder. Feed it chunks as they arrive; it returns every frame each
 * chunk completes. A frame wholly inside one chunk is a view into that chunk (zero-copy);
 * a frame split across chunks is assembled into one buffer of exactly its size, allocated
 * only after its length passed the limit.
 *
 * After an error the decoder stays failed: the connection must be closed.
 *
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder } from "./framer.ts";
 * const d = new FrameDecoder(1024);
 * const bytes = encodeFrame(2, new Uint8Array([7, 8, 9]));
 * d.push(bytes.subarray(0, 3)); // []
 * d.push(bytes.subarray(3));    // [{ type: 2, body: [7, 8, 9], … }]
 * ```
 */
export class FrameDecoder {
  #maxBody: number;
  /** A length prefix split across chunks; made the first time one is (most connections never). */
  #head: Uint8Array | undefined;
  #headLen = 0;
  #partial: Uint8Array | undefined;
  #partialLen = 0;
  #failed: RelayError | undefined;

  /**
   * @param maxBody The largest body length accepted.
   */
  constructor(maxBody: number) {
    this.#maxBody = aint(maxBody, 0, 0xffffffff, "maxBody");
  }

  /** The largest body length accepted from now on. */
  get maxBody(): number {
    return this.#maxBody;
  }

  /** Raises or lowers the limit (e.g. once a peer has authenticated). */
  set maxBody(n: number) {
    this.#maxBody = aint(n, 0, 0xffffffff, "maxBody");
  }

  /** Bytes buffered towards an incomplete frame (bounded by the limit). */
  get buffered(): number {
    return this.#headLen + this.#partialLen;
  }

  /**
   * Consumes a chunk.
   * @param chunk Received bytes; kept (as views) by the returned frames, never modified.
   * @returns The frames this chunk completed, in order.
   * @throws {RelayError} `frame-too-large` when a length prefix exceeds the limit.
   */
  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    this.feed(chunk);
    while (this.next()) {
      frames.push(view(this.frameBuffer, this.frameOffset, this.frameLength - FRAME_HEADER));
    }
    return frames;
  }

  // ---- the cursor: frames one at a time, without an object per frame (the relay's path) ----

  #buf: Uint8Array = EMPTY;
  #off = 0;
  #len = 0;
  #chunk: Uint8Array = EMPTY;
  #at = 0;

  /**
   * Starts on a chunk; {@link next} then finds its frames one at a time. Equivalent to
   * {@link push}, which is built on it. Each length prefix is checked against the limit as
   * it is reached, so a limit raised after a frame applies to the frames after it.
   * @param chunk Received bytes; kept (as views) by the frames found, never modified.
   * @throws {RelayError} `frame-too-large` if the decoder already failed.
   */
  feed(chunk: Uint8Array): void {
    if (this.#failed !== undefined) throw this.#failed;
    this.#chunk = chunk;
    this.#at = 0;
  }

  /**
   * Finds the next complete frame of the chunk last fed (and what came before it), setting
   * {@link frameBuffer}, {@link frameOffset}, {@link frameLength} and {@link frameType}.
   * @returns Whether there is one; `false` once the chunk is used up (its incomplete tail is
   *   kept for the next chunk).
   * @throws {RelayError} `frame-too-large` when a length prefix exceeds the limit.
   */
  next(): boolean {
    const chunk = this.#chunk;
    let off = this.#at;
    // Finish the frame left incomplete by earlier chunks.
    while (off < chunk.length && (this.#headLen > 0 || this.#partial !== undefined)) {
      if (this.#partial === undefined) {
        const head = this.#head!;
        const n = Math.min(FRAME_HEADER - this.#headLen, chunk.length - off);
        head.set(chunk.subarray(off, off + n), this.#headLen);
        this.#headLen += n;
        off += n;
        if (this.#headLen < FRAME_HEADER) break;
        this.#partial = new Uint8Array(FRAME_HEADER + this.#checkedLength(head, 0));
        this.#partial.set(head);
        this.#partialLen = FRAME_HEADER;
        this.#headLen = 0;
      }
      const n = Math.min(this.#partial.length - this.#partialLen, chunk.length - off);
      this.#partial.set(chunk.subarray(off, off + n), this.#partialLen);
      this.#partialLen += n;
      off += n;
      if (this.#partialLen === this.#partial.length) {
        const whole = this.#partial;
        this.#partial = undefined;
        this.#partialLen = 0;
        this.#at = off;
        return this.#found(whole, 0, whole.length);
      }
    }
    // A whole frame inside this chunk: a view, no copy.
    if (chunk.length - off >= FRAME_HEADER) {
      const len = this.#checkedLength(chunk, off);
      if (chunk.length - off - FRAME_HEADER >= len) {
        this.#at = off + FRAME_HEADER + len;
        return this.#found(chunk, off, FRAME_HEADER + len);
      }
    }
    // Keep the start of the next frame; let go of the chunk.
    const rest = chunk.length - off;
    if (rest >= FRAME_HEADER) {
      this.#partial = new Uint8Array(FRAME_HEADER + readU32BE(chunk, off));
      this.#partial.set(chunk.subarray(off));
      this.#partialLen = rest;
    } else if (rest > 0) {
      (this.#head ??= new Uint8Array(FRAME_HEADER)).set(chunk.subarray(off));
      this.#headLen = rest;
    }
    this.#chunk = EMPTY;
    this.#at = 0;
    this.#buf = EMPTY;
    return false;
  }

  #found(buf: Uint8Array, off: number, length: number): true {
    this.#buf = buf;
    this.#off = off;
    this.#len = length;
    return true;
  }

  /**
   * After {@link next} returned true: the buffer holding the frame (the chunk, or an
   * assembled copy when the frame spanned chunks). Never modified.
   */
  get frameBuffer(): Uint8Array {
    return this.#buf;
  }

  /** Where the frame (its length prefix) starts in {@link frameBuffer}. */
  get frameOffset(): number {
    return this.#off;
  }

  /** The whole frame's length, header included. */
  get frameLength(): number {
    return this.#len;
  }

  /** Its type byte. */
  get frameType(): number {
    return this.#buf[this.#off + 4]!;
  }

  /** The frame {@link next} found, as a {@link Frame} (views, no copy). */
  frame(): Frame {
    return view(this.frameBuffer, this.frameOffset, this.frameLength - FRAME_HEADER);
  }

  #checkedLength(buf: Uint8Array, off: number): number {
    const len = readU32BE(buf, off);
    if (len > this.#maxBody) {
      this.#failed = new RelayError(
        "frame-too-large",
        `frame body of ${len} bytes exceeds the limit of ${this.#maxBody}`,
      );
      throw this.#failed;
    }
    return len;
  }
}

function view(buf: Uint8Array, off: number, len: number): Frame {
  return {
    type: buf[off + 4]!,
    body: buf.subarray(off + FRAME_HEADER, off + FRAME_HEADER + len),
    bytes: buf.subarray(off, off + FRAME_HEADER + len),
  };
}

/**
 * Merges frames whose bytes lie back to back in the same buffer into single views: the
 * frame-aligned runs a relay writes with one call instead of one write per frame.
 *
 * @param frames Frames in stream order (typically one `push()` result, filtered).
 * @returns Views covering exactly the frames' bytes, in order.
 * @example
 * ```ts
 * import { encodeFrame, FrameDecoder, frameRuns } from "./framer.ts";
 * const two = new Uint8Array([...encodeFrame(3, new Uint8Array(2)), ...encodeFrame(3, new Uint8Array(1))]);
 * frameRuns(new FrameDecoder(64).push(two)).length; // 1
 * ```
 */
export function frameRuns(frames: readonly Frame[]): Uint8Array[] {
  const runs: Uint8Array[] = [];
  let run: Uint8Array | undefined;
  for (const { bytes } of frames) {
    if (
      run !== undefined && run.buffer === bytes.buffer &&
      run.byteOffset + run.byteLength === bytes.byteOffset
    ) {
      run = new Uint8Array(run.buffer, run.byteOffset, run.byteLength + bytes.byteLength);
    } else {
      if (run !== undefined) runs.push(run);
      run = bytes;
    }
  }
  if (run !== undefined) runs.push(run);
  return runs;
}
