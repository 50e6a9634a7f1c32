/**
 * @module
 * What a consumer checks of the stream its relay hands it (docs/PROTOCOL.md §5, §6.5): the
 * producer's signature on every STREAM-START and epochs never replayed, every data frame with
 * exactly the next seq, LAGGED notices that match the stream, PRODUCER-LEFT. What arrives
 * becomes queue items — frames being opened, events, errors — for `Consumer` to deliver in
 * order; nothing out of place is ever delivered.
 */

import { equals, readU64BE, toHex } from "../bytes.ts";
import type { Aead, CryptoProvider } from "../crypto/types.ts";
import { RelayError } from "../errors.ts";
import {
  ControlKind,
  type ControlMessage,
  LeftReason,
  verifyStreamStart,
} from "../protocol/control.ts";
import { checkDataBody, DATA_SEQ_AT, DataFlag, openChecked } from "../protocol/data_frame.ts";
import type { Frame } from "../protocol/framer.ts";
import { keyIndexOf } from "../protocol/keys.ts";
import { SegmentVerifier, trailerCount, trailerStart } from "../protocol/segment.ts";
import { DATA_HEADER } from "../protocol/data_frame.ts";
import { TAG_LENGTH } from "../crypto/types.ts";
import type { RelayLink } from "./link.ts";
import type { Keyring } from "./_keyring.ts";

/** Information about a producer stream. */
export interface StreamInfo {
  /** The stream's 16-byte epoch. */
  readonly epoch: Uint8Array;
  /** When the producer started it (ms since the Unix epoch, the producer's clock). */
  readonly startedAt: number;
  /** Seq of the first frame this consumer receives from it. */
  readonly firstSeq: bigint;
}

/** The stream events a guard raises (in stream order, as the consumer passes them). */
export interface StreamEvents {
  /** A producer stream began (also when joining a stream already running). */
  "stream-start": StreamInfo;
  /**
   * The producer rotated (`producer.rotate()`): the stream before ended and the next one, of
   * this read-capability generation, follows; raised just before its `stream-start`, after the
   * last message of the old stream.
   */
  rotated: { generation: number };
  /** The relay skipped frames `[from, to)` (policy `drop`): an explicit gap. */
  lagged: { from: bigint; to: bigint };
  /**
   * The producer vanished without END. `resumable: true` while the relay's grace period
   * runs (the stream may continue); `false` when it is over (recv() then throws
   * `producer-left` once).
   */
  "producer-left": { resumable: boolean };
}

/** What the consumer queues for `recv()`, in stream order. */
export type Item =
  | {
    readonly kind: "frame";
    readonly size: number;
    readonly flags: number;
    /** The plaintext once the frame is opened and its segment verified; `null`: dropped. */
    readonly open: Promise<Uint8Array | null>;
    /** The connection that buffered it (reading resumes there as it is consumed). */
    readonly conn: RelayLink;
  }
  | { readonly kind: "event"; readonly emit: () => void }
  | { readonly kind: "error"; readonly error: RelayError; readonly terminal: boolean };

/** What became of a segment's frames. */
type Verdict = "ok" | "bad" | "dropped";

/** The frames of a segment not yet closed wait for this. */
interface Segment {
  readonly verdict: Promise<Verdict>;
  readonly settle: (v: Verdict) => void;
}

function segment(): Segment {
  let settle!: (v: Verdict) => void;
  const verdict = new Promise<Verdict>((r) => (settle = r));
  return { verdict, settle };
}

interface Stream {
  readonly info: StreamInfo;
  readonly generation: number;
  /** The data key of the current key index (a new one every 2^24 frames). */
  aead: DataKey;
  next: bigint;
  ended: boolean;
  /** Its END named a next generation (ROTATE): a stream of it follows. */
  rotates: boolean;
  /** Frames below this seq are duplicates after a resumed stream start: checked, dropped. */
  dropBelow: bigint;
  /** Checks the producer's signature over each segment (docs/CAPABILITIES.md). */
  readonly verifier: SegmentVerifier;
  /** The open segment, once a frame of it arrived. */
  open: Segment | undefined;
}

/** A data key being imported, and the key once it is. */
interface DataKey {
  readonly index: number;
  readonly aead: Promise<Aead>;
  ready: Aead | undefined;
}

function dataKey(index: number, aead: Promise<Aead>): DataKey {
  const k: DataKey = { index, aead, ready: undefined };
  aead.then((a) => (k.ready = a), ignore);
  return k;
}

const NOT_SIGNED = "a frame is not signed by the producer";
const notSigned = (): never => {
  throw tampered(NOT_SIGNED);
};
/** Bytes a signed data frame keeps before its trailer: its header and AEAD tag. */
const MINIMUM = DATA_HEADER + TAG_LENGTH;

/** How many distinct epochs a consumer remembers to reject replayed streams. */
const EPOCH_MEMORY = 64;

const ignore = (): void => {};

/** One consumer's view of its stream, and what it refuses. */
export class StreamGuard {
  readonly #routeId: Uint8Array;
  readonly #crypto: CryptoProvider;
  readonly #capability: Keyring;
  readonly #push: (item: Item) => void;
  readonly #event: <K extends keyof StreamEvents>(name: K, value: StreamEvents[K]) => void;
  #stream: Stream | undefined;
  /**
   * A stream of a generation older than every capability held is running: its frames are
   * not for this consumer, which waits for the next stream.
   */
  #waiting = false;
  /** An END with ROTATE was seen: the next stream start is a rotation. */
  #rotation = false;
  readonly #epochs: string[] = [];

  /**
   * @param crypto The primitives.
   * @param routeId The session's route id (verifies stream starts and segments).
   * @param capability The session or read capabilities held (derive each stream's data keys).
   * @param push Queues an item.
   * @param event Emits a stream event (called as the consumer passes the item).
   */
  constructor(
    crypto: CryptoProvider,
    routeId: Uint8Array,
    capability: Keyring,
    push: (item: Item) => void,
    event: <K extends keyof StreamEvents>(name: K, value: StreamEvents[K]) => void,
  ) {
    this.#crypto = crypto;
    this.#routeId = routeId;
    this.#capability = capability;
    this.#push = push;
    this.#event = event;
  }

  /** The stream being received, if one has started. */
  get info(): StreamInfo | undefined {
    return this.#stream?.info;
  }

  /** Where to resume when a stream is under way: its epoch and the next seq needed. */
  get resume(): { epoch: Uint8Array; nextSeq: bigint } | undefined {
    const s = this.#stream;
    return s === undefined || s.ended ? undefined : { epoch: s.info.epoch, nextSeq: s.next };
  }

  /**
   * The subscription is over (the connection failed for good, the relay ended it): the frames
   * of the open segment will never be verified, so they are not delivered and what follows
   * them in the queue is reached.
   */
  cut(): void {
    if (this.#stream !== undefined) this.#dropOpen(this.#stream);
  }

  /**
   * A data frame for this session: check its position, start opening it, queue it.
   * @param frame The frame.
   * @param conn The link that buffered it.
   */
  data(frame: Frame, conn: RelayLink): void {
    const size = frame.bytes.length;
    // The header is read where it lies: no header object, and the nonce is built from the
    // frame's own seq bytes (BigInts only for the order check).
    const body = frame.body;
    let flags: number;
    try {
      flags = checkDataBody(body, 0, body.length);
    } catch {
      return this.#fault(conn, size, "a data frame header is malformed");
    }
    const s = this.#stream;
    if (s === undefined && this.#waiting) {
      // A stream for older tokens than this consumer's: not read; its END may name ours.
      if ((flags & DataFlag.Rotate) !== 0) this.#rotation = true;
      conn.release(size);
      return;
    }
    if (s === undefined) return this.#fault(conn, size, "a data frame arrived outside a stream");
    if (s.ended) return this.#fault(conn, size, "a data frame arrived after END");
    const seq = readU64BE(body, DATA_SEQ_AT);
    if (seq !== s.next) {
      return this.#fault(
        conn,
        size,
        `data frame seq ${seq} where ${s.next} was due (dropped, reordered or replayed)`,
      );
    }
    s.next++;
    if (seq < s.dropBelow) {
      conn.release(size); // already delivered before the stream resumed
      return;
    }
    const signed = (flags & DataFlag.Signed) !== 0;
    if ((flags & DataFlag.End) !== 0) {
      if (!signed) return this.#fault(conn, size, "an END frame is not signed by the producer");
      s.ended = true;
      s.rotates = (flags & DataFlag.Rotate) !== 0;
    }
    // Held until the segment's signature verifies: a reader knows the data key and could
    // seal frames of its own; only the producer can sign them.
    if (signed && s.open === undefined) return this.#alone(s, frame, seq, flags, conn);
    const seg = s.open ??= segment();
    let sealed = frame.bytes;
    let held = size;
    if (!signed) {
      if (!s.verifier.add(frame.bytes, seq)) {
        return this.#fault(conn, size, "a segment runs longer than any producer makes");
      }
      // Bounded by the verifier, and not counted against the connection's buffer: reading
      // must go on to the frame whose signature releases these.
      conn.release(size);
      held = 0;
    } else {
      const count = trailerCount(frame.bytes, MINIMUM);
      if (count === 0) return this.#fault(conn, size, "a segment trailer is malformed");
      sealed = frame.bytes.subarray(0, trailerStart(frame.bytes, count));
      s.open = undefined;
      Promise.resolve(s.verifier.close(frame.bytes, seq, MINIMUM)).then(
        (ok) => seg.settle(ok ? "ok" : "bad"),
        () => seg.settle("bad"),
      );
    }
    const open = Promise.all([
      this.#aeadFor(s, seq).then((a) => openChecked(a, sealed)),
      seg.verdict,
    ])
      .then(([plaintext, verdict]) => {
        if (verdict === "dropped") return null;
        if (verdict === "bad") return notSigned();
        return plaintext;
      });
    open.catch(ignore); // surfaced by recv()
    this.#push({ kind: "frame", size: held, flags, open, conn });
  }

  /**
   * A signed frame that is a segment by itself (every frame, at moderate rates): opened once
   * its signature verified, with as few promises as that takes.
   */
  #alone(s: Stream, frame: Frame, seq: bigint, flags: number, conn: RelayLink): void {
    const size = frame.bytes.length;
    const count = trailerCount(frame.bytes, MINIMUM);
    if (count === 0) return this.#fault(conn, size, "a segment trailer is malformed");
    const sealed = frame.bytes.subarray(0, trailerStart(frame.bytes, count));
    const key = this.#keyFor(s, seq);
    const verdict = s.verifier.close(frame.bytes, seq, MINIMUM);
    let open: Promise<Uint8Array>;
    if (verdict === true && key.ready !== undefined) {
      // Checked already by another consumer of this process: as cheap as an unsigned frame.
      open = openChecked(key.ready, sealed);
    } else if (verdict === false) {
      open = Promise.reject(tampered(NOT_SIGNED));
    } else {
      open = Promise.resolve(verdict).then((ok) => {
        if (!ok) return notSigned();
        const a = key.ready;
        return a !== undefined
          ? openChecked(a, sealed)
          : key.aead.then((a) => openChecked(a, sealed));
      });
    }
    open.catch(ignore); // surfaced by recv()
    this.#push({ kind: "frame", size, flags, open, conn });
  }

  /** The data key of `seq`'s key index in stream `s`. */
  #aeadFor(s: Stream, seq: bigint): Promise<Aead> {
    return this.#keyFor(s, seq).aead;
  }

  #keyFor(s: Stream, seq: bigint): DataKey {
    const index = keyIndexOf(seq);
    if (index !== s.aead.index) {
      const crypto = this.#crypto;
      s.aead = dataKey(index, crypto.aesGcm(this.#dataKey(crypto, s, index)));
    }
    return s.aead;
  }

  #dataKey(crypto: CryptoProvider, s: Stream, index: number): Uint8Array {
    return this.#capability.dataKey(crypto, s.info.epoch, s.generation, index);
  }

  /**
   * The frames of the open segment will never be verified (the stream was cut, or the relay
   * skipped frames after them): they are not delivered.
   * @returns The seq of the first of them, if any.
   */
  #dropOpen(s: Stream): bigint | undefined {
    s.open?.settle("dropped");
    s.open = undefined;
    return s.verifier.discard();
  }

  /** A frame out of place: the stream is over for this consumer, and `recv()` says why. */
  #fault(conn: RelayLink, size: number, why: string): void {
    conn.release(size);
    if (this.#stream !== undefined) this.#dropOpen(this.#stream);
    this.#push({ kind: "error", error: tampered(why), terminal: true });
    this.#stream = undefined;
  }

  /**
   * A control message about the stream: STREAM-START, LAGGED or PRODUCER-LEFT.
   * @param m The message.
   * @param crypto The primitives to verify and open with.
   */
  async control(m: ControlMessage, crypto: CryptoProvider): Promise<void> {
    switch (m.kind) {
      case ControlKind.StreamStart:
        return await this.#onStreamStart(m, crypto);
      case ControlKind.Lagged: {
        const s = this.#stream;
        if (s === undefined && this.#waiting) return; // about a stream not read here
        if (s === undefined || m.from !== s.next) {
          if (s !== undefined) this.#dropOpen(s);
          this.#push({
            kind: "error",
            error: tampered("a LAGGED notice does not match the stream"),
            terminal: true,
          });
          return;
        }
        s.next = m.to;
        // Frames held from the segment the gap cut into can never be verified: part of the gap.
        const gap = { from: this.#dropOpen(s) ?? m.from, to: m.to };
        this.#push({ kind: "event", emit: () => this.#event("lagged", gap) });
        return;
      }
      case ControlKind.ProducerLeft: {
        const s = this.#stream;
        if (s === undefined || s.ended) return;
        if (m.reason === LeftReason.Lost) {
          this.#push({
            kind: "event",
            emit: () => this.#event("producer-left", { resumable: true }),
          });
          return;
        }
        this.#dropOpen(s);
        this.#stream = undefined;
        this.#push({
          kind: "event",
          emit: () => this.#event("producer-left", { resumable: false }),
        });
        this.#push({
          kind: "error",
          error: new RelayError("producer-left", "the producer left without ending the stream"),
          terminal: false,
        });
        return;
      }
    }
  }

  async #onStreamStart(
    m: Extract<ControlMessage, { kind: typeof ControlKind.StreamStart }>,
    crypto: CryptoProvider,
  ): Promise<void> {
    if (!await verifyStreamStart(crypto, this.#routeId, m)) {
      if (this.#stream !== undefined) this.#dropOpen(this.#stream);
      this.#push({
        kind: "error",
        error: tampered("a stream start is not signed by the producer"),
        terminal: true,
      });
      return;
    }
    const prev = this.#stream;
    const rotation = this.#rotation || prev?.rotates === true;
    this.#rotation = false;
    this.#waiting = false;
    if (prev !== undefined && equals(prev.info.epoch, m.epoch) && !prev.ended) {
      // The same stream continuing (its producer resumed on a relay that lost it): frames
      // this consumer already has are dropped, missing ones are an explicit gap.
      if (m.firstSeq > prev.next) {
        const gap = { from: this.#dropOpen(prev) ?? prev.next, to: m.firstSeq };
        prev.next = m.firstSeq;
        this.#push({ kind: "event", emit: () => this.#event("lagged", gap) });
      } else {
        prev.dropBelow = prev.next;
        prev.next = m.firstSeq;
      }
      return;
    }
    if (prev !== undefined) this.#dropOpen(prev);
    const epochHex = toHex(m.epoch);
    if (this.#epochs.includes(epochHex)) {
      this.#push({
        kind: "error",
        error: tampered("an earlier stream was replayed"),
        terminal: true,
      });
      return;
    }
    this.#epochs.push(epochHex);
    if (this.#epochs.length > EPOCH_MEMORY) this.#epochs.shift();
    if (prev !== undefined && !prev.ended) {
      // A new stream while the old one had no END and no PRODUCER-LEFT: it was cut.
      this.#push({
        kind: "error",
        error: new RelayError("producer-left", "the producer left without ending the stream"),
        terminal: false,
      });
    }
    if (!this.#capability.canRead(m.generation)) {
      this.#stream = undefined;
      if (this.#capability.waitsPast(m.generation)) {
        // A token minted ahead of a rotation: wait for the stream it reads.
        this.#waiting = true;
        return;
      }
      this.#push({
        kind: "error",
        error: new RelayError(
          "revoked",
          `this stream is for read tokens of generation ${m.generation}: ask the producer for one`,
        ),
        terminal: true,
      });
      return;
    }
    const info: StreamInfo = {
      epoch: m.epoch.slice(),
      startedAt: Number(m.startedAt),
      firstSeq: m.firstSeq,
    };
    const first = keyIndexOf(m.firstSeq);
    const key = this.#capability.dataKey(crypto, m.epoch, m.generation, first);
    this.#stream = {
      info,
      generation: m.generation,
      aead: dataKey(first, crypto.aesGcm(key)),
      next: m.firstSeq,
      ended: false,
      rotates: false,
      dropBelow: 0n,
      verifier: new SegmentVerifier(crypto, this.#routeId, m.epoch),
      open: undefined,
    };
    if (rotation) {
      const generation = m.generation;
      this.#push({ kind: "event", emit: () => this.#event("rotated", { generation }) });
      // Joined again mid-rotation (a reconnect): the new stream's first frames are a gap.
      if (m.firstSeq > 0n) {
        const gap = { from: 0n, to: m.firstSeq };
        this.#push({ kind: "event", emit: () => this.#event("lagged", gap) });
      }
    }
    this.#push({ kind: "event", emit: () => this.#event("stream-start", info) });
  }
}

/**
 * The error every kind of tampering is.
 * @param why What was wrong.
 * @returns The error.
 */
export function tampered(why: string): RelayError {
  return new RelayError("tampered", `stream tampered with: ${why}`);
}
