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
import type { Session } from "../protocol/session.ts";
import type { RelayLink } from "./link.ts";

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
    readonly open: Promise<Uint8Array>;
    /** The connection that buffered it (reading resumes there as it is consumed). */
    readonly conn: RelayLink;
  }
  | { readonly kind: "event"; readonly emit: () => void }
  | { readonly kind: "error"; readonly error: RelayError; readonly terminal: boolean };

interface Stream {
  readonly info: StreamInfo;
  readonly aead: Aead;
  next: bigint;
  ended: boolean;
  /** Frames below this seq are duplicates after a resumed stream start: checked, dropped. */
  dropBelow: bigint;
}

/** How many distinct epochs a consumer remembers to reject replayed streams. */
const EPOCH_MEMORY = 64;

const ignore = (): void => {};

/** One consumer's view of its stream, and what it refuses. */
export class StreamGuard {
  readonly #routeId: Uint8Array;
  readonly #session: Session;
  readonly #push: (item: Item) => void;
  readonly #event: <K extends keyof StreamEvents>(name: K, value: StreamEvents[K]) => void;
  #stream: Stream | undefined;
  readonly #epochs: string[] = [];

  /**
   * @param routeId The session's route id (verifies stream starts).
   * @param session The session (derives each stream's data key).
   * @param push Queues an item.
   * @param event Emits a stream event (called as the consumer passes the item).
   */
  constructor(
    routeId: Uint8Array,
    session: Session,
    push: (item: Item) => void,
    event: <K extends keyof StreamEvents>(name: K, value: StreamEvents[K]) => void,
  ) {
    this.#routeId = routeId;
    this.#session = session;
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
    if ((flags & DataFlag.End) !== 0) s.ended = true;
    const open = openChecked(s.aead, frame.bytes);
    open.catch(ignore); // surfaced by recv()
    this.#push({ kind: "frame", size, flags, open, conn });
  }

  /** A frame out of place: the stream is over for this consumer, and `recv()` says why. */
  #fault(conn: RelayLink, size: number, why: string): void {
    conn.release(size);
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
        if (s === undefined || m.from !== s.next) {
          this.#push({
            kind: "error",
            error: tampered("a LAGGED notice does not match the stream"),
            terminal: true,
          });
          return;
        }
        s.next = m.to;
        const gap = { from: m.from, to: m.to };
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
      this.#push({
        kind: "error",
        error: tampered("a stream start is not signed by the producer"),
        terminal: true,
      });
      return;
    }
    const prev = this.#stream;
    if (prev !== undefined && equals(prev.info.epoch, m.epoch) && !prev.ended) {
      // The same stream continuing (its producer resumed on a relay that lost it): frames
      // this consumer already has are dropped, missing ones are an explicit gap.
      if (m.firstSeq > prev.next) {
        const gap = { from: prev.next, to: m.firstSeq };
        prev.next = m.firstSeq;
        this.#push({ kind: "event", emit: () => this.#event("lagged", gap) });
      } else {
        prev.dropBelow = prev.next;
        prev.next = m.firstSeq;
      }
      return;
    }
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
    const aead = await crypto.aesGcm(this.#session.dataKey(crypto, m.epoch));
    const info: StreamInfo = {
      epoch: m.epoch.slice(),
      startedAt: Number(m.startedAt),
      firstSeq: m.firstSeq,
    };
    this.#stream = { info, aead, next: m.firstSeq, ended: false, dropBelow: 0n };
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
