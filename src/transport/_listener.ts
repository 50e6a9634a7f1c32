/**
 * @module
 * Internal listener parts shared by the adapters: the accept queue the push-based adapters
 * (node, bun, memory, WebSocket) fill, their `Listener` with its pause (docs/ADAPTERS.md), and
 * async iteration over any `accept()`.
 */

import type { Waiter } from "./_queues.ts";
import type { Addr, Conn, Listener } from "./types.ts";

/**
 * Accepted connections waiting for `Listener.accept()`. Closing it closes whatever was never
 * taken, so no socket leaks when a server shuts down mid-accept.
 */
export class AcceptQueue<C extends { close(): void }> {
  #items: C[] = [];
  #waiters: Waiter<C | null>[] = [];
  #closed = false;

  get closed(): boolean {
    return this.#closed;
  }

  push(conn: C): void {
    if (this.#closed) {
      conn.close();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter.resolve(conn);
    else this.#items.push(conn);
  }

  accept(): Promise<C | null> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#items) c.close();
    this.#items = [];
    for (const w of this.#waiters) w.resolve(null);
    this.#waiters = [];
  }
}

/**
 * The listener of the push-based adapters: accepted connections arrive in an
 * {@link AcceptQueue}; `stop` releases the adapter's listening socket. While paused, an
 * adapter asks {@link QueueListener.admit} before making a connection object, and `onPause`
 * lets one turn connections away before they reach JavaScript at all (Node).
 */
export class QueueListener<C extends Conn> implements Listener {
  readonly addr: Addr;
  readonly #queue: AcceptQueue<C>;
  readonly #stop: () => void;
  readonly #onPause: ((paused: boolean) => void) | undefined;
  #paused = false;
  #turnedAway = 0;

  constructor(
    addr: Addr,
    queue: AcceptQueue<C>,
    stop: () => void,
    onPause?: (paused: boolean) => void,
  ) {
    this.addr = addr;
    this.#queue = queue;
    this.#stop = stop;
    this.#onPause = onPause;
  }

  accept(): Promise<Conn | null> {
    return this.#queue.accept();
  }

  [Symbol.asyncIterator](): AsyncIterator<Conn> {
    return iterateAccept(() => this.accept());
  }

  get turnedAway(): number {
    return this.#turnedAway;
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#onPause?.(true);
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#onPause?.(false);
  }

  /**
   * Asked by the adapter for each arriving connection before it makes anything of it.
   * @returns `false` while paused (the adapter closes the raw socket; it is counted).
   */
  admit(): boolean {
    if (!this.#paused) return true;
    this.#turnedAway++;
    return false;
  }

  /** Counts connections the runtime turned away itself (Node's `drop`). */
  countTurnedAway(): void {
    this.#turnedAway++;
  }

  close(): Promise<void> {
    this.#queue.close();
    this.#stop();
    // Let the runtime release the listening socket before callers re-bind its address.
    return new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/**
 * Makes a listener async-iterable over `accept()`.
 *
 * @param accept The listener's accept function.
 * @returns An async iterator ending when accept yields `null`.
 */
export async function* iterateAccept<C>(accept: () => Promise<C | null>): AsyncGenerator<C> {
  while (true) {
    const conn = await accept();
    if (conn === null) return;
    yield conn;
  }
}
