/**
 * @module
 * The relay's handshake rate limit (`maxHandshakesPerSecond`): a token bucket over new
 * connections. Every join costs the relay's one thread 0.5–1.5 ms of crypto and socket work,
 * so a crowd of strangers connecting could take the whole thread from established sessions.
 * Out of tokens, the gate pauses the listeners until the next token is due: while paused the
 * runtime turns arrivals away before a connection object exists (Node, Bun) or leaves them
 * in the kernel's backlog (Deno), which costs the relay next to nothing.
 */

import type { Listener } from "../transport/types.ts";

/** Admits new connections at a bounded rate. */
export class HandshakeGate {
  readonly #rate: number;
  readonly #listeners: readonly Listener[];
  readonly #now: () => number;
  readonly #onThrottle: () => void;
  #tokens: number;
  #last: number;
  #resume: ReturnType<typeof setTimeout> | undefined;
  /** Connections accepted before a pause took effect, closed here. */
  #closedHere = 0;

  /**
   * @param rate Connections per second at most; 0 admits every one.
   * @param listeners The listeners to pause while out of tokens.
   * @param onThrottle Called each time the gate closes (the relay logs, rate-limited).
   * @param now A clock in ms (tests).
   */
  constructor(
    rate: number,
    listeners: readonly Listener[],
    onThrottle: () => void,
    now: () => number = () => performance.now(),
  ) {
    this.#rate = rate;
    this.#listeners = listeners;
    this.#onThrottle = onThrottle;
    this.#now = now;
    // A full bucket: one second's worth may arrive at once (a burst of reconnects).
    this.#tokens = rate;
    this.#last = now();
  }

  /**
   * Asked for each accepted connection before its handshake starts.
   * @returns `false` when the connection must be closed unanswered (it is counted).
   */
  admit(): boolean {
    if (this.#rate === 0) return true;
    const now = this.#now();
    this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
    if (this.#tokens >= 1) {
      this.#tokens--;
      // The last token went: pause now, so the next arrivals are turned away by the runtime.
      if (this.#tokens < 1) this.#pause();
      return true;
    }
    this.#closedHere++;
    this.#pause();
    return false;
  }

  /** Connections turned away so far: by the paused listeners and here. */
  get throttled(): number {
    let n = this.#closedHere;
    for (const l of this.#listeners) n += l.turnedAway;
    return n;
  }

  /** Stops the resume timer (the relay is closing). */
  close(): void {
    clearTimeout(this.#resume);
    this.#resume = undefined;
  }

  #pause(): void {
    if (this.#resume !== undefined) return;
    for (const l of this.#listeners) l.pause();
    this.#onThrottle();
    const waitMs = Math.max(1, Math.ceil(((1 - this.#tokens) * 1000) / this.#rate));
    this.#resume = setTimeout(() => {
      this.#resume = undefined;
      for (const l of this.#listeners) l.resume();
    }, waitMs);
  }
}
