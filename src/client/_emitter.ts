/**
 * @module
 * A minimal typed event emitter for producers and consumers (the same on every runtime and
 * in browsers). A throwing listener is reported and isolated: it cannot break the stream.
 */

/** A listener of one event payload type. */
export type EventHandler<T> = (payload: T) => void;

/** Typed emitter over an event map. */
export class Emitter<E> {
  readonly #listeners = new Map<keyof E, Set<EventHandler<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, listener: EventHandler<E[K]>): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) this.#listeners.set(event, set = new Set());
    set.add(listener as EventHandler<never>);
    return () => set.delete(listener as EventHandler<never>);
  }

  /** Calls every listener of `event`. */
  emit<K extends keyof E>(event: K, payload: E[K]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const l of set) {
      try {
        (l as EventHandler<E[K]>)(payload);
      } catch (e) {
        // A listener bug must not break the stream; it still gets reported.
        console.error("hydra: event listener threw", e);
      }
    }
  }
}
