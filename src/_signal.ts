/**
 * @module
 * A one-shot signal whose promise is made only when someone asks for it: a connection that is
 * open and that nobody waits on holds no promise and no resolver (the relay keeps tens of
 * thousands of them; see docs/BENCHMARKS.md, "A crowd on one relay").
 */

/**
 * A one-shot event with a lazily made promise.
 *
 * @example
 * ```ts
 * import { Signal } from "./_signal.ts";
 * const closed = new Signal();
 * const waiting = closed.promise; // made now, on first use
 * closed.resolve();
 * await waiting;
 * ```
 */
export class Signal {
  #done = false;
  #waiters: (() => void)[] | undefined;

  /** Resolves once {@link Signal.resolve} was called (at once if it was). */
  get promise(): Promise<void> {
    if (this.#done) return Promise.resolve();
    return new Promise((resolve) => (this.#waiters ??= []).push(resolve));
  }

  /** Fires the signal. Idempotent. */
  resolve(): void {
    if (this.#done) return;
    this.#done = true;
    const waiters = this.#waiters;
    this.#waiters = undefined;
    if (waiters !== undefined) { for (const w of waiters) w(); }
  }
}
