/**
 * @module
 * A producer stream's own parts (docs/PROTOCOL.md §5, §6.1, §8.1): a random epoch, the
 * read-capability generation, the signed STREAM-START and the sealer of its frames — what
 * `Producer` makes when it starts and what `rotate()` replaces — and the frames kept for resending
 * after a reconnect.
 */

import type { CryptoProvider } from "../crypto/types.ts";
import { ControlKind, type ControlMessage, signStreamStart } from "../protocol/control.ts";
import { EPOCH_LENGTH, type Session, type SessionKeys } from "../protocol/session.ts";
import { FrameSealer } from "./_sealer.ts";

/** One producer stream. */
export interface StreamParts {
  readonly epoch: Uint8Array;
  readonly generation: number;
  readonly sealer: FrameSealer;
  readonly start: { readonly startedAt: bigint; readonly signature: Uint8Array };
}

/**
 * A fresh stream of `generation`: random epoch, first data key, signed STREAM-START.
 * @param crypto The primitives.
 * @param session The session (derives the data keys).
 * @param keys Its keys (sign the start and the segments).
 * @param generation The read-capability generation.
 * @param segmentFrames The most frames one signature covers.
 * @returns The stream's parts.
 */
export async function newStream(
  crypto: CryptoProvider,
  session: Session,
  keys: SessionKeys,
  generation: number,
  segmentFrames: number,
): Promise<StreamParts> {
  const epoch = crypto.randomBytes(EPOCH_LENGTH);
  const aead = await crypto.aesGcm(session.dataKey(crypto, epoch, generation, 0));
  const startedAt = BigInt(Date.now());
  const signature = await signStreamStart(keys.signer, keys.routeId, {
    epoch,
    startedAt,
    generation,
  });
  const sealer = new FrameSealer(crypto, { session, keys, epoch, generation, aead }, segmentFrames);
  return { epoch, generation, sealer, start: { startedAt, signature } };
}

/**
 * The stream's STREAM-START, continuing at `firstSeq`.
 * @param s The stream.
 * @param tag The session's stream tag.
 * @param firstSeq The first seq the producer sends next.
 * @returns The control message.
 */
export function streamStart(s: StreamParts, tag: Uint8Array, firstSeq: bigint): ControlMessage {
  return {
    kind: ControlKind.StreamStart,
    tag,
    epoch: s.epoch,
    startedAt: s.start.startedAt,
    generation: s.generation,
    firstSeq,
    signature: s.start.signature,
  };
}

/**
 * Frames written and not yet acknowledged (plus a replay window of acknowledged ones), in seq
 * order: what a reconnected producer resends.
 */
export class Retained {
  #frames: { seq: bigint; frame: Uint8Array }[] = [];
  /** The next seq to be written; every lower one is written or retained. */
  #written = 0n;
  readonly #replay: number;

  /** @param replayFrames Acknowledged frames kept too. */
  constructor(replayFrames: number) {
    this.#replay = replayFrames;
  }

  /** A frame about to be written (kept first: if the write is lost, the reconnect resends it). */
  push(frame: Uint8Array): void {
    this.#frames.push({ seq: this.#written++, frame });
  }

  /** The relay holds every frame up to `acked`: drop those beyond the replay window. */
  trim(acked: bigint): void {
    const r = this.#frames;
    let held = 0;
    while (held < r.length && r[held]!.seq <= acked) held++;
    const drop = held - this.#replay;
    if (drop > 0) this.#frames = r.slice(drop);
  }

  /** The seq a resend starts at. */
  get firstSeq(): bigint {
    return this.#frames[0]?.seq ?? this.#written;
  }

  /** The frames to resend, in order. */
  get frames(): readonly { readonly seq: bigint; readonly frame: Uint8Array }[] {
    return this.#frames;
  }

  /** A new stream: nothing written yet. */
  reset(): void {
    this.#frames = [];
    this.#written = 0n;
  }
}
