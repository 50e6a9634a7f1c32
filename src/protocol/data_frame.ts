/**
 * @module
 * End-to-end sealed data frames (docs/PROTOCOL.md §5 "Data frames"). The producer seals,
 * the relay forwards the bytes unchanged, every consumer opens. Wire layout:
 *
 *     offset  0  u32 BE body length
 *             4  u8  type = 0x03
 *             5  u8  flags (END = 0x01, BATCH = 0x02, SIGNED = 0x04, ROTATE = 0x08, others 0)
 *             6  8   stream tag
 *            14  u64 BE seq
 *            22  AES-256-GCM ciphertext ‖ 16-byte tag
 *
 * ROTATE = 0x08 goes only with END.
 *
 * The AAD is bytes 4..22 (type, flags, tag, seq), so none of them can be changed without
 * detection; the nonce is 4 zero bytes ‖ seq, unique because each producer stream has its
 * own key (fresh epoch) and seq never repeats within it. The plaintext of a BATCH frame is
 * `(u32 BE length ‖ message)*`. A SIGNED frame closes a segment: after its AEAD output comes the
 * producer's segment trailer (segment.ts), outside the AEAD and counted by the length prefix.
 */

import { abytes, readU32BE, readU64BE, writeU32BE, writeU64BE } from "../bytes.ts";
import { type Aead, TAG_LENGTH } from "../crypto/types.ts";
import { RelayError } from "../errors.ts";
import { type Frame, FRAME_HEADER, FrameType, writeFrameHeader } from "./framer.ts";
import { STREAM_TAG_LENGTH } from "./session.ts";

/** Data frame flags. */
export const DataFlag = {
  /** Clean end of the stream: a consumer that never sees it knows the stream was cut. */
  End: 0x01,
  /** The plaintext holds several length-prefixed messages. */
  Batch: 0x02,
  /** The frame closes a segment: the producer's signature trailer follows (segment.ts). */
  Signed: 0x04,
  /**
   * With END only: the producer rotated and the next stream is for another read-capability
   * generation, named by the frame's plaintext (exactly a u32 BE, no messages).
   */
  Rotate: 0x08,
} as const;

const KNOWN_FLAGS = DataFlag.End | DataFlag.Batch | DataFlag.Signed | DataFlag.Rotate;
/** The shortest trailer (a segment of one frame). */
const MIN_TRAILER = 66;

/** Bytes of a data frame before the ciphertext, outer header included. */
export const DATA_HEADER: number = FRAME_HEADER + 1 + STREAM_TAG_LENGTH + 8;
/** Smallest valid data frame body: flags, tag, seq and an AEAD tag. */
export const MIN_DATA_BODY: number = DATA_HEADER - FRAME_HEADER + TAG_LENGTH;

/** Where a data frame body's stream tag starts (after the flags byte). */
export const DATA_TAG_AT = 1;
/** Where a data frame body's seq (u64) starts. */
export const DATA_SEQ_AT: number = DATA_TAG_AT + STREAM_TAG_LENGTH;

/** The cleartext fields of a data frame. */
export interface DataHeader {
  /** {@link DataFlag} bits. */
  readonly flags: number;
  /** The session's 8-byte stream tag (a view into the frame). */
  readonly streamTag: Uint8Array;
  /** Sequence number within the producer stream, from 0. */
  readonly seq: bigint;
}

/** What the producer seals. */
export interface DataFrameInput {
  /** The session's stream tag. */
  readonly streamTag: Uint8Array;
  /** This frame's sequence number. */
  readonly seq: bigint;
  /** {@link DataFlag} bits. */
  readonly flags: number;
  /** The message, or a {@link encodeBatch} result with the BATCH flag. */
  readonly plaintext: Uint8Array;
  /**
   * Bytes left after the AEAD output for a segment trailer (a SIGNED frame), counted by the
   * length prefix; the caller fills them. Default 0.
   */
  readonly trailer?: number;
}

function nonceOf(seq: bigint): Uint8Array {
  const nonce = new Uint8Array(12);
  writeU64BE(nonce, 4, seq);
  return nonce;
}

/** The nonce of the data frame in `bytes`: 4 zero bytes ‖ its seq as on the wire. */
function nonceAt(bytes: Uint8Array): Uint8Array {
  const nonce = new Uint8Array(12);
  for (let i = 0; i < 8; i++) nonce[4 + i] = bytes[DATA_HEADER - 8 + i]!;
  return nonce;
}

/**
 * Reads a data frame's header without decrypting: what the relay checks and routes by.
 *
 * @param frame A decoded frame of type {@link FrameType.Data}.
 * @returns Flags, stream tag and seq.
 * @throws {RelayError} `protocol-error` when the frame is not a well-formed data frame.
 * @example
 * ```ts ignore
 * const { streamTag, seq } = parseDataHeader(frame);
 * ```
 */
export function parseDataHeader(frame: Frame): DataHeader {
  if (frame.type !== FrameType.Data) {
    throw new RelayError("protocol-error", `expected a data frame, got type ${frame.type}`);
  }
  const b = frame.body;
  return {
    flags: checkDataBody(b, 0, b.length),
    streamTag: b.subarray(DATA_TAG_AT, DATA_TAG_AT + STREAM_TAG_LENGTH),
    seq: readU64BE(b, DATA_SEQ_AT),
  };
}

/**
 * Checks a data frame body where it lies (the relay's path, which makes no header object):
 * long enough for its fields and an AEAD tag, and only known flags.
 * @param buf Bytes holding the body.
 * @param at Where the body starts.
 * @param length The body's length.
 * @returns Its {@link DataFlag} bits.
 * @throws {RelayError} `protocol-error` for a short body or unknown flags.
 * @example
 * ```ts
 * import { checkDataBody, MIN_DATA_BODY } from "./data_frame.ts";
 * checkDataBody(new Uint8Array(MIN_DATA_BODY), 0, MIN_DATA_BODY); // 0
 * ```
 */
export function checkDataBody(buf: Uint8Array, at: number, length: number): number {
  if (length < MIN_DATA_BODY) {
    throw new RelayError("protocol-error", `data frame of ${length} bytes is too short`);
  }
  const flags = buf[at]!;
  if ((flags & ~KNOWN_FLAGS) !== 0) {
    throw new RelayError("protocol-error", `data frame has unknown flags 0x${flags.toString(16)}`);
  }
  if ((flags & DataFlag.Signed) !== 0 && length < MIN_DATA_BODY + MIN_TRAILER) {
    throw new RelayError("protocol-error", `signed data frame of ${length} bytes is too short`);
  }
  if ((flags & DataFlag.Rotate) !== 0 && (flags & DataFlag.End) === 0) {
    throw new RelayError("protocol-error", "data frame has ROTATE without END");
  }
  return flags;
}

/**
 * Seals one data frame, returning the complete wire bytes (length prefix included).
 *
 * @param aead The stream's data key.
 * @param input Tag, seq, flags and plaintext.
 * @returns The frame, ready to write.
 * @example
 * ```ts
 * import { sealData, DataFlag } from "./data_frame.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const aead = await nobleCrypto.aesGcm(new Uint8Array(32));
 * const frame = await sealData(aead, { streamTag: new Uint8Array(8), seq: 0n, flags: 0, plaintext: new Uint8Array([1]) });
 * ```
 */
export async function sealData(aead: Aead, input: DataFrameInput): Promise<Uint8Array> {
  abytes(input.streamTag, STREAM_TAG_LENGTH, "streamTag");
  abytes(input.plaintext, undefined, "plaintext");
  if ((input.flags & ~KNOWN_FLAGS) !== 0) {
    throw new RangeError(`unknown data flags 0x${input.flags.toString(16)}`);
  }
  const trailer = input.trailer ?? 0;
  if (
    trailer < 0 || !Number.isInteger(trailer) ||
    (trailer > 0) !== ((input.flags & DataFlag.Signed) !== 0)
  ) {
    throw new RangeError("a trailer goes with the SIGNED flag, and the SIGNED flag with a trailer");
  }
  const header = new Uint8Array(DATA_HEADER);
  writeFrameHeader(
    header,
    0,
    FrameType.Data,
    DATA_HEADER - FRAME_HEADER + input.plaintext.length + TAG_LENGTH + trailer,
  );
  header[FRAME_HEADER] = input.flags;
  header.set(input.streamTag, FRAME_HEADER + 1);
  writeU64BE(header, FRAME_HEADER + 1 + STREAM_TAG_LENGTH, input.seq);
  // The AEAD leaves room for the header, so the frame is built without copying the
  // ciphertext; an AEAD that ignores `headroom` (a custom provider) gets the copy instead.
  const sealed = await aead.seal(
    nonceOf(input.seq),
    input.plaintext,
    header.subarray(4),
    DATA_HEADER,
  );
  if (trailer === 0 && sealed.length === DATA_HEADER + input.plaintext.length + TAG_LENGTH) {
    sealed.set(header);
    return sealed;
  }
  // A signed frame (room for its trailer) or an AEAD without headroom: one copy.
  const headroom = sealed.length === DATA_HEADER + input.plaintext.length + TAG_LENGTH;
  const body = headroom ? sealed.subarray(DATA_HEADER) : sealed;
  const out = new Uint8Array(DATA_HEADER + body.length + trailer);
  out.set(header);
  out.set(body, DATA_HEADER);
  return out;
}

/**
 * Opens a data frame.
 *
 * @param aead The stream's data key.
 * @param frame A decoded frame of type {@link FrameType.Data}.
 * @returns The header and the plaintext.
 * @throws {RelayError} `protocol-error` for a malformed frame, `auth-failed` for any
 *   tampering (ciphertext, tag, flags, stream tag, seq) or the wrong key.
 * @example
 * ```ts ignore
 * const { header, plaintext } = await openData(aead, frame);
 * ```
 */
export async function openData(
  aead: Aead,
  frame: Frame,
): Promise<{ header: DataHeader; plaintext: Uint8Array }> {
  const header = parseDataHeader(frame);
  const plaintext = await openChecked(aead, frame.bytes);
  return { header, plaintext };
}

/**
 * Opens a data frame whose header the caller has already checked (the consumer's path: one
 * header parse per frame, no header object, no BigInt for the nonce).
 *
 * @param aead The stream's data key.
 * @param bytes The whole frame, length prefix included, at least {@link DATA_HEADER} +
 *   {@link TAG_LENGTH} bytes.
 * @returns The plaintext.
 * @throws {RelayError} `auth-failed` for any tampering or the wrong key.
 * @example
 * ```ts ignore
 * const plaintext = await openChecked(aead, frame.bytes);
 * ```
 */
export function openChecked(aead: Aead, bytes: Uint8Array): Promise<Uint8Array> {
  // Not `async` (a promise less per frame), yet always a promise: a custom AEAD that throws
  // instead of rejecting, or returns a plain value, fails or succeeds the same way.
  try {
    return Promise.resolve(
      aead.open(nonceAt(bytes), bytes.subarray(DATA_HEADER), bytes.subarray(4, DATA_HEADER)),
    );
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * Packs messages into one BATCH plaintext: `(u32 BE length ‖ message)*`.
 *
 * @param messages The messages, in order.
 * @returns The plaintext.
 * @example
 * ```ts
 * import { encodeBatch } from "./data_frame.ts";
 * encodeBatch([new Uint8Array([1]), new Uint8Array(0)]); // 00 00 00 01 01 00 00 00 00
 * ```
 */
export function encodeBatch(messages: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const m of messages) size += 4 + m.length;
  const out = new Uint8Array(size);
  let off = 0;
  for (const m of messages) {
    writeU32BE(out, off, m.length);
    out.set(m, off + 4);
    off += 4 + m.length;
  }
  return out;
}

/**
 * Unpacks a BATCH plaintext into views of its messages.
 *
 * @param plaintext An authenticated BATCH plaintext.
 * @returns The messages, in order (views into `plaintext`).
 * @throws {RelayError} `protocol-error` when a length overruns the plaintext.
 * @example
 * ```ts
 * import { decodeBatch, encodeBatch } from "./data_frame.ts";
 * decodeBatch(encodeBatch([new Uint8Array([7])])); // [Uint8Array [7]]
 * ```
 */
export function decodeBatch(plaintext: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < plaintext.length) {
    if (plaintext.length - off < 4) {
      throw new RelayError("protocol-error", "batch ends inside a length prefix");
    }
    const len = readU32BE(plaintext, off);
    if (len > plaintext.length - off - 4) {
      throw new RelayError("protocol-error", "batch message overruns the frame");
    }
    out.push(plaintext.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return out;
}
