/**
 * @module
 * A session's ring: the bounded log of recent entries (data frames exactly as received, and
 * session events such as stream start or producer loss) that every consumer reads through
 * its own cursor. Entries are addressed by a monotonically increasing log index, so a cursor
 * is one number and memory does not grow with the number of consumers
 * (docs/PROTOCOL.md §6.4).
 *
 * Layout: one slot per entry in parallel typed arrays (stream, seq, byte range) plus the
 * received chunk's `ArrayBuffer`, shared by every frame that arrived in it. A data frame
 * therefore costs the ring no JavaScript object of its own: frames live about one ring's
 * length, long enough for a per-frame object to survive into the old generation, and at
 * thousands of frames per second those objects were what made a relay's heap (and RSS)
 * climb between major collections. Views over frames are made when a run is sent.
 */

import type { ControlMessage } from "../protocol/control.ts";

/** A session event held in the ring. */
export interface EventEntry {
  readonly message: ControlMessage;
  /** Which stream of the session (relay-local counter). */
  readonly stream: number;
  /** The subscription ends once this event is delivered (e.g. wait-for-producer timeout). */
  readonly terminal?: boolean;
}

/** Bytes held by all rings of a relay, against its budget. */
export interface MemoryAccount {
  used: number;
  readonly budget: number;
}

const TWO_32 = 0x1_0000_0000;
const MASK_32 = 0xffff_ffffn;

/** A bounded deque of entries with byte accounting. */
export class Ring {
  readonly #account: MemoryAccount;
  #cap = 16;
  #head = 0;
  #size = 0;
  #base = 0;
  #bytes = 0;
  // Per slot. A slot holds an event when #events[slot] is set, a data frame otherwise.
  #events: (EventEntry | undefined)[] = new Array(16);
  #buffers: (ArrayBufferLike | undefined)[] = new Array(16);
  #offsets = new Float64Array(16);
  #lengths = new Uint32Array(16);
  #streams = new Uint32Array(16);
  #seqHi = new Uint32Array(16);
  #seqLo = new Uint32Array(16);

  /** @param account The relay-wide byte account this ring's data counts against. */
  constructor(account: MemoryAccount = { used: 0, budget: Infinity }) {
    this.#account = account;
  }

  /** Whether adding `size` bytes would take the relay over its memory budget. */
  overBudget(size: number): boolean {
    return this.#account.used + size > this.#account.budget;
  }

  /** Log index of the oldest entry held. */
  get base(): number {
    return this.#base;
  }

  /** Log index the next appended entry gets. */
  get end(): number {
    return this.#base + this.#size;
  }

  /** Entries held. */
  get size(): number {
    return this.#size;
  }

  /** Data bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Appends a data frame; returns its log index.
   * @param frame The whole frame as received (never copied, never mutated; the ring keeps
   *   its buffer).
   * @param seq Its seq (u64).
   * @param stream Its relay-local stream number.
   */
  pushData(frame: Uint8Array, seq: bigint, stream: number): number {
    const k = this.#claim();
    this.#buffers[k] = frame.buffer;
    this.#offsets[k] = frame.byteOffset;
    this.#lengths[k] = frame.byteLength;
    this.#streams[k] = stream;
    this.#seqHi[k] = Number(seq >> 32n);
    this.#seqLo[k] = Number(seq & MASK_32);
    this.#bytes += frame.byteLength;
    this.#account.used += frame.byteLength;
    return this.end - 1;
  }

  /** Appends an event; returns its log index. */
  pushEvent(event: EventEntry): number {
    const k = this.#claim();
    this.#events[k] = event;
    this.#streams[k] = event.stream;
    this.#lengths[k] = 0;
    return this.end - 1;
  }

  /** Drops the oldest entry. */
  shift(): void {
    if (this.#size === 0) return;
    const k = this.#head;
    if (this.#events[k] !== undefined) {
      this.#events[k] = undefined;
    } else {
      this.#buffers[k] = undefined;
      this.#bytes -= this.#lengths[k]!;
      this.#account.used -= this.#lengths[k]!;
    }
    this.#head = (k + 1) & (this.#cap - 1);
    this.#size--;
    this.#base++;
  }

  /** Drops every entry (the session is gone); log indexes keep counting. */
  clear(): void {
    while (this.#size > 0) this.shift();
  }

  /** Whether `index` is held (base ≤ index < end). */
  has(index: number): boolean {
    return index >= this.#base && index < this.#base + this.#size;
  }

  /** The event at a held log index, or `undefined` for a data frame. */
  event(index: number): EventEntry | undefined {
    return this.#events[this.#slot(index)];
  }

  /** The stream number of the entry at a held log index. */
  stream(index: number): number {
    return this.#streams[this.#slot(index)]!;
  }

  /** The seq of the data frame at a held log index. */
  seq(index: number): bigint {
    const k = this.#slot(index);
    return (BigInt(this.#seqHi[k]!) << 32n) | BigInt(this.#seqLo[k]!);
  }

  /** Whether the data frame at a held log index has a seq below `bound`. */
  seqBelow(index: number, bound: bigint): boolean {
    const k = this.#slot(index);
    const hi = this.#seqHi[k]!;
    if (hi < 0x20_0000) return this.#seqHi[k]! * TWO_32 + this.#seqLo[k]! < bound;
    return this.seq(index) < bound;
  }

  /** The received chunk's buffer holding the data frame at a held log index. */
  buffer(index: number): ArrayBufferLike {
    return this.#buffers[this.#slot(index)]!;
  }

  /** Byte offset of that frame in {@link buffer}. */
  offset(index: number): number {
    return this.#offsets[this.#slot(index)]!;
  }

  /** Byte length of that frame (0 for an event). */
  length(index: number): number {
    return this.#lengths[this.#slot(index)]!;
  }

  /** A view of the data frame at a held log index. */
  frame(index: number): Uint8Array {
    const k = this.#slot(index);
    return new Uint8Array(this.#buffers[k]!, this.#offsets[k]!, this.#lengths[k]!);
  }

  #slot(index: number): number {
    return (this.#head + index - this.#base) & (this.#cap - 1);
  }

  /** Takes the next free slot, growing the arrays when full. */
  #claim(): number {
    if (this.#size === this.#cap) this.#grow();
    const k = (this.#head + this.#size) & (this.#cap - 1);
    this.#size++;
    return k;
  }

  #grow(): void {
    const cap = this.#cap * 2;
    const order = (i: number) => (this.#head + i) & (this.#cap - 1);
    const events: (EventEntry | undefined)[] = new Array(cap);
    const buffers: (ArrayBufferLike | undefined)[] = new Array(cap);
    const offsets = new Float64Array(cap);
    const lengths = new Uint32Array(cap);
    const streams = new Uint32Array(cap);
    const seqHi = new Uint32Array(cap);
    const seqLo = new Uint32Array(cap);
    for (let i = 0; i < this.#size; i++) {
      const k = order(i);
      events[i] = this.#events[k];
      buffers[i] = this.#buffers[k];
      offsets[i] = this.#offsets[k]!;
      lengths[i] = this.#lengths[k]!;
      streams[i] = this.#streams[k]!;
      seqHi[i] = this.#seqHi[k]!;
      seqLo[i] = this.#seqLo[k]!;
    }
    this.#events = events;
    this.#buffers = buffers;
    this.#offsets = offsets;
    this.#lengths = lengths;
    this.#streams = streams;
    this.#seqHi = seqHi;
    this.#seqLo = seqLo;
    this.#cap = cap;
    this.#head = 0;
  }
}
