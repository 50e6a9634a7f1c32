/**
 * @module
 * Reconnection policy shared by producers and consumers: which failures are worth another
 * attempt, and exponential backoff with jitter, bounded in total time.
 */

import type { RelayError } from "../errors.ts";

/** How a producer or consumer with its own connection reconnects after losing it. */
export interface ReconnectOptions {
  /** First delay (ms). Default 50. */
  readonly initialDelayMs?: number;
  /** Largest delay between attempts (ms). Default 2,000. */
  readonly maxDelayMs?: number;
  /** Give up after this long without a connection (ms). Default 30,000. */
  readonly timeoutMs?: number;
}

/** Events both clients emit while reconnecting. */
export interface ReconnectEvents {
  /** The connection was lost; the next attempt starts after `delayMs`. */
  reconnecting: { attempt: number; delayMs: number; error: RelayError };
  /** A new connection carries the stream again. */
  reconnected: { attempts: number };
}

/** Failures a new connection may cure. Authentication, tampering and refusals are final. */
export function isTransient(e: RelayError): boolean {
  return e.code === "connection-lost" || e.code === "closed" || e.code === "timeout" ||
    e.code === "going-away" || e.code === "connect-failed" || e.code === "limit-exceeded";
}

/**
 * Retries `attempt` with exponential backoff and ±25 % jitter until it succeeds, fails with
 * a final error, `stopped()` turns true, or `timeoutMs` passes.
 * @returns The attempt's result.
 * @throws The last error when giving up.
 */
export async function withBackoff<T>(
  options: ReconnectOptions,
  first: RelayError,
  attempt: () => Promise<T>,
  hooks: {
    retryable: (e: RelayError) => boolean;
    stopped: () => boolean;
    onDelay: (n: number, delayMs: number, error: RelayError) => void;
  },
): Promise<{ value: T; attempts: number }> {
  const initial = options.initialDelayMs ?? 50;
  const max = options.maxDelayMs ?? 2000;
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let error = first;
  for (let n = 1;; n++) {
    const base = Math.min(max, initial * 2 ** (n - 1));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    if (Date.now() + delay > deadline) throw error;
    hooks.onDelay(n, delay, error);
    await new Promise((r) => setTimeout(r, delay));
    if (hooks.stopped()) throw error;
    try {
      return { value: await attempt(), attempts: n };
    } catch (e) {
      const err = e as RelayError;
      if (!hooks.retryable(err)) throw err;
      error = err;
    }
  }
}
