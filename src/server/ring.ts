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
 *
 * Runs. Data frames appended back to back in one buffer (one received chunk, or one slab) and
 * one stream form a run: each slot records its run's id and the ring keeps each run's end, so
 * a reader takes a whole run — hundreds of small frames — as one view in O(1) instead of
 * walking it frame by frame ({@link Ring.runEnd}). An event ends the run before it.
 *
 * Frame bytes. A frame that arrived in a large chunk (≥ {@link KEEP_CHUNK}, the case under
 * load) is kept where it is, in the received chunk, shared by every frame of that chunk.
 * Frames of small chunks (one read per message at moderate rates) are copied into slabs:
 * buffers filled front to back, sized to an eighth of the bytes the ring holds (512 B–256
 * KiB), which the ring *reuses* once it has dropped their last frame and no connection still
 * holds a view of one (the `released` check its owner passes in: every connection that took
 * from the ring has `writableLength` 0 and nothing taken but unwritten, src/transport/types.ts).
 * Keeping each small read's own buffer, or slabs used once, meant garbage at the stream's byte
 * rate that lives a ring's length: promoted, freed late by the major collector, and kept by
 * the allocator after that — the relay's RSS followed it (issue 5's soak, docs/SECURITY.md
 * §3.1). A slab that cannot be reused yet (a consumer's socket is backed up) is left to the
 * collector and a fresh one taken, so reuse never waits and never overwrites a lent byte.
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
/** Frames arriving in chunks at least this large are kept in them, not copied. */
export const KEEP_CHUNK: number = 16 * 1024;
const SLAB_MIN = 512;
const SLAB_MAX = 256 * 1024;
/** Emptied slabs kept for reuse; more are left to the collector. */
const SPARE_SLABS = 8;

/** A buffer small frames are copied into, front to back. */
interface Slab {
  readonly bytes: Uint8Array;
  /** Bytes filled. */
  used: number;
  /** Held frames lying in it. */
  frames: number;
}
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
  /** Per slot: the slab holding the frame (unset: kept in its received chunk). */
  #slabOf: (Slab | undefined)[] = new Array(16);
  /** Per slot: the run the entry belongs to (an event is a run of its own). */
  #runs = new Int32Array(16);
  /**
   * Per run: the log index one past its last entry. Runs are numbered in order, modulo the
   * capacity (renumbered when it grows): held entries belong to at most `cap` runs, so two
   * held runs never share a number.
   */
  #runEnds = new Float64Array(16);
  /** The newest run. */
  #run = -1;
  /** Where the newest run's next frame would have to lie to extend it (buffer unset: it cannot). */
  #tailBuffer: ArrayBufferLike | undefined;
  #tailOffset = 0;
  #tailStream = 0;
  /** The slab small frames are copied into now. */
  #current: Slab | undefined;
  /** Slabs without held frames, oldest first, waiting to be reused. */
  #spare: Slab[] = [];
  #slabCount = 0;
  readonly #released: () => boolean;

  /**
   * @param account The relay-wide byte account this ring's data counts against.
   * @param released Whether no connection holds a view of this ring's memory now (taken
   *   and not yet written, or written and not yet handed to the OS). Only then is a slab
   *   reused; the default never reuses.
   */
  constructor(
    account: MemoryAccount = { used: 0, budget: Infinity },
    released: () => boolean = () => false,
  ) {
    this.#account = account;
    this.#released = released;
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
   * @param buf Holds the whole frame as received, `length` bytes at `offset` (default: all of
   *   `buf`); never mutated. The frame is kept in place when its buffer is at least
   *   {@link KEEP_CHUNK} long (the caller must then never reuse that buffer), copied into a
   *   slab otherwise (the caller may reuse a small buffer).
   * @param seq Its seq (u64): a number up to 2^53 - 1, a bigint above (`readU64`'s forms).
   * @param stream Its relay-local stream number.
   * @param offset Where the frame starts in `buf`.
   * @param length The frame's length.
   */
  pushData(
    buf: Uint8Array,
    seq: number | bigint,
    stream: number,
    offset = 0,
    length: number = buf.byteLength - offset,
  ): number {
    const k = this.#claim();
    let buffer: ArrayBufferLike;
    let at: number;
    if (buf.buffer.byteLength >= KEEP_CHUNK) {
      buffer = buf.buffer;
      at = buf.byteOffset + offset;
      this.#slabOf[k] = undefined;
    } else {
      let slab = this.#current;
      if (slab === undefined || slab.used + length > slab.bytes.length) {
        slab = this.#nextSlab(length);
      }
      slab.bytes.set(buf.subarray(offset, offset + length), slab.used);
      buffer = slab.bytes.buffer;
      at = slab.used;
      this.#slabOf[k] = slab;
      slab.frames++;
      slab.used += length;
    }
    this.#buffers[k] = buffer;
    this.#offsets[k] = at;
    const continues = buffer === this.#tailBuffer && at === this.#tailOffset &&
      stream === this.#tailStream;
    this.#joinRun(k, continues);
    this.#tailBuffer = buffer;
    this.#tailOffset = at + length;
    this.#tailStream = stream;
    this.#lengths[k] = length;
    this.#streams[k] = stream;
    if (typeof seq === "number") {
      const hi = Math.floor(seq / TWO_32); // exact: seq is below 2^53
      this.#seqHi[k] = hi;
      this.#seqLo[k] = seq - hi * TWO_32;
    } else {
      this.#seqHi[k] = Number(seq >> 32n);
      this.#seqLo[k] = Number(seq & MASK_32);
    }
    this.#bytes += length;
    this.#account.used += length;
    return this.end - 1;
  }

  /** Appends an event; returns its log index. */
  pushEvent(event: EventEntry): number {
    const k = this.#claim();
    this.#events[k] = event;
    this.#streams[k] = event.stream;
    this.#lengths[k] = 0;
    this.#joinRun(k, false);
    this.#tailBuffer = undefined;
    return this.end - 1;
  }

  /** Puts the entry just claimed at slot `k` into the newest run, or into a new one. */
  #joinRun(k: number, extend: boolean): void {
    if (!extend) this.#run = (this.#run + 1) & (this.#cap - 1);
    this.#runs[k] = this.#run;
    this.#runEnds[this.#run] = this.end;
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
      const slab = this.#slabOf[k];
      if (slab !== undefined) {
        this.#slabOf[k] = undefined;
        if (--slab.frames === 0 && slab !== this.#current) this.#retire(slab);
      }
    }
    this.#head = (k + 1) & (this.#cap - 1);
    this.#size--;
    this.#base++;
  }

  /** Drops every entry (the session is gone); log indexes keep counting. */
  clear(): void {
    while (this.#size > 0) this.shift();
    this.#tailBuffer = undefined;
    // Nothing is reused after this: the collector takes the slabs once the last view is gone.
    this.#spare = [];
    this.#current = undefined;
    this.#slabCount = 0;
  }

  /** Slabs the ring still references (holding frames, current or spare). */
  get slabCount(): number {
    return this.#slabCount;
  }

  /** Makes the slab the next small frame goes to: a spare one when allowed, else a new one. */
  #nextSlab(need: number): Slab {
    const old = this.#current;
    this.#current = undefined;
    if (old !== undefined && old.frames === 0) this.#retire(old);
    let size = SLAB_MIN;
    const want = Math.max(need, this.#bytes / 8);
    while (size < want && size < SLAB_MAX) size *= 2;
    size = Math.max(size, need);
    if (this.#spare.length > 0 && this.#released()) {
      // Every spare slab is free to reuse now; take one of a fitting size, drop misfits.
      for (let slab = this.#spare.shift(); slab !== undefined; slab = this.#spare.shift()) {
        if (slab.bytes.length >= size && slab.bytes.length <= size * 4) {
          slab.used = 0;
          return this.#current = slab;
        }
        this.#slabCount--; // left to the collector
      }
    }
    this.#slabCount++;
    return this.#current = { bytes: new Uint8Array(size), used: 0, frames: 0 };
  }

  /** A slab without held frames that is not current: kept as a spare, or left to the collector. */
  #retire(slab: Slab): void {
    this.#spare.push(slab);
    if (this.#spare.length > SPARE_SLABS) {
      this.#spare.shift();
      this.#slabCount--;
    }
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

  /** The buffer (received chunk or slab) holding the data frame at a held log index. */
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

  /**
   * The log index one past the last entry of the run holding `index`: the data frames from
   * `index` up to it lie back to back in {@link buffer}, all of one stream. For an event,
   * `index + 1`.
   */
  runEnd(index: number): number {
    return this.#runEnds[this.#runs[this.#slot(index)]!]!;
  }

  /**
   * Within a run `[from, to)`: the first index after `from` whose frame starts at or beyond
   * byte offset `limit` (binary search over the run's rising offsets), or `to` if none does.
   * Taking `[from, result)` takes frames until one reaches `limit`.
   */
  runCut(from: number, to: number, limit: number): number {
    let lo = from + 1;
    let hi = to;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2); // log indexes outgrow 32 bits: no `>>> 1`
      if (this.#offsets[this.#slot(mid)]! >= limit) hi = mid;
      else lo = mid + 1;
    }
    return lo;
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
    const slabOf: (Slab | undefined)[] = new Array(cap);
    const runs = new Int32Array(cap);
    const runEnds = new Float64Array(cap);
    let run = -1;
    for (let i = 0; i < this.#size; i++) {
      const k = order(i);
      events[i] = this.#events[k];
      buffers[i] = this.#buffers[k];
      offsets[i] = this.#offsets[k]!;
      lengths[i] = this.#lengths[k]!;
      streams[i] = this.#streams[k]!;
      seqHi[i] = this.#seqHi[k]!;
      seqLo[i] = this.#seqLo[k]!;
      slabOf[i] = this.#slabOf[k];
      if (i === 0 || this.#runs[k] !== this.#runs[order(i - 1)]) {
        run++;
        runEnds[run] = this.#runEnds[this.#runs[k]!]!;
      }
      runs[i] = run;
    }
    this.#events = events;
    this.#buffers = buffers;
    this.#offsets = offsets;
    this.#lengths = lengths;
    this.#streams = streams;
    this.#seqHi = seqHi;
    this.#seqLo = seqLo;
    this.#slabOf = slabOf;
    this.#runs = runs;
    this.#runEnds = runEnds;
    this.#run = run;
    this.#cap = cap;
    this.#head = 0;
  }
}
