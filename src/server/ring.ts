/**
 * @module
 * A session's ring: the bounded log of recent entries (data frames exactly as received, and
 * session events such as stream start or producer loss) that every consumer reads through
 * its own cursor. Entries are addressed by a monotonically increasing log index, so a cursor
 * is one number and memory does not grow with the number of consumers
 * (docs/PROTOCOL.md §6.4).
 */

import type { ControlMessage } from "../protocol/control.ts";

/** One log entry. */
export type Entry =
  | {
    readonly kind: "data";
    /** The whole frame as received (a view; never copied, never mutated). */
    readonly bytes: Uint8Array;
    readonly seq: bigint;
    /** Which stream of the session (relay-local counter). */
    readonly stream: number;
  }
  | {
    readonly kind: "event";
    readonly message: ControlMessage;
    readonly stream: number;
    /** The subscription ends once this event is delivered (e.g. wait-for-producer timeout). */
    readonly terminal?: boolean;
  };

/** Bytes held by all rings of a relay, against its budget. */
export interface MemoryAccount {
  used: number;
  readonly budget: number;
}

/** A bounded deque of entries with byte accounting. */
export class Ring {
  readonly #account: MemoryAccount;
  #buf: (Entry | undefined)[] = new Array(16);
  #head = 0;
  #size = 0;
  #base = 0;
  #bytes = 0;

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

  /** Appends an entry; returns its log index. */
  push(entry: Entry): number {
    if (this.#size === this.#buf.length) this.#grow();
    this.#buf[(this.#head + this.#size) & (this.#buf.length - 1)] = entry;
    this.#size++;
    if (entry.kind === "data") {
      this.#bytes += entry.bytes.length;
      this.#account.used += entry.bytes.length;
    }
    return this.end - 1;
  }

  /** Drops the oldest entry. */
  shift(): Entry | undefined {
    if (this.#size === 0) return undefined;
    const entry = this.#buf[this.#head]!;
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#buf.length - 1);
    this.#size--;
    this.#base++;
    if (entry.kind === "data") {
      this.#bytes -= entry.bytes.length;
      this.#account.used -= entry.bytes.length;
    }
    return entry;
  }

  /** Drops every entry (the session is gone); log indexes keep counting. */
  clear(): void {
    while (this.#size > 0) this.shift();
  }

  /** The entry at a log index, if still held. */
  at(index: number): Entry | undefined {
    const i = index - this.#base;
    if (i < 0 || i >= this.#size) return undefined;
    return this.#buf[(this.#head + i) & (this.#buf.length - 1)];
  }

  /** The oldest entry. */
  peek(): Entry | undefined {
    return this.#size === 0 ? undefined : this.#buf[this.#head];
  }

  #grow(): void {
    const next: (Entry | undefined)[] = new Array(this.#buf.length * 2);
    for (let i = 0; i < this.#size; i++) {
      next[i] = this.#buf[(this.#head + i) & (this.#buf.length - 1)];
    }
    this.#buf = next;
    this.#head = 0;
  }
}
