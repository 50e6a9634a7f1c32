/**
 * @module
 * Structured logging for the relay: one logfmt line per connection lifecycle event and per
 * error (`ts=… level=info event=conn.open conn=3 remote=127.0.0.1:50312`). Callers pass
 * fields explicitly; nothing here formats keys, tokens or session ids, and route ids are
 * logged as an 8-hex-digit fingerprint only ({@link fingerprint}).
 */

import { toHex } from "../bytes.ts";

/** Log levels, most severe first. `off` disables logging. */
export type LogLevel = "error" | "warn" | "info" | "debug" | "off";

const RANK: Record<LogLevel, number> = { off: 0, error: 1, warn: 2, info: 3, debug: 4 };

/** Where log lines go (one call per line, without the newline). */
export type LogSink = (line: string) => void;

/** Field values a log line may carry. */
export type LogValue = string | number | bigint | boolean | undefined;

/**
 * Whether a string names a log level.
 * @param s Candidate (case-insensitive).
 * @returns The level, or `undefined`.
 * @example
 * ```ts
 * import { parseLogLevel } from "./log.ts";
 * parseLogLevel("INFO"); // "info"
 * ```
 */
export function parseLogLevel(s: string | undefined): LogLevel | undefined {
  const l = s?.trim().toLowerCase();
  if (l === "warning") return "warn";
  return l !== undefined && l in RANK ? l as LogLevel : undefined;
}

/**
 * A leveled logfmt logger.
 *
 * @example
 * ```ts
 * import { Logger } from "./log.ts";
 * const lines: string[] = [];
 * const log = new Logger("info", (l) => lines.push(l));
 * log.info("conn.open", { conn: 1 });
 * log.debug("ignored", {});
 * ```
 */
export class Logger {
  readonly #rank: number;
  readonly #sink: LogSink;

  /**
   * @param level The lowest level written.
   * @param sink Receives each line.
   */
  constructor(level: LogLevel, sink: LogSink) {
    this.#rank = RANK[level];
    this.#sink = sink;
  }

  /** Whether lines of `level` are written. */
  enabled(level: Exclude<LogLevel, "off">): boolean {
    return RANK[level] <= this.#rank;
  }

  /** Logs at error level. */
  error(event: string, fields: Record<string, LogValue>): void {
    this.#write("error", event, fields);
  }
  /** Logs at warn level. */
  warn(event: string, fields: Record<string, LogValue>): void {
    this.#write("warn", event, fields);
  }
  /** Logs at info level. */
  info(event: string, fields: Record<string, LogValue>): void {
    this.#write("info", event, fields);
  }
  /** Logs at debug level. */
  debug(event: string, fields: Record<string, LogValue>): void {
    this.#write("debug", event, fields);
  }

  #write(level: Exclude<LogLevel, "off">, event: string, fields: Record<string, LogValue>): void {
    if (RANK[level] > this.#rank) return;
    let line = `ts=${new Date().toISOString()} level=${level} event=${event}`;
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      line += ` ${k}=${quote(String(v))}`;
    }
    try {
      this.#sink(line);
    } catch {
      // A failing sink (closed file, broken pipe) must never take the relay down.
    }
  }
}

function quote(s: string): string {
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

/**
 * A short, non-secret name for a route id in logs: its first 4 bytes in hex.
 * @param routeId The 32-byte route id (public, but still not logged in full).
 * @returns 8 hex digits.
 * @example
 * ```ts
 * import { fingerprint } from "./log.ts";
 * fingerprint(new Uint8Array(32)); // "00000000"
 * ```
 */
export function fingerprint(routeId: Uint8Array): string {
  return toHex(routeId.subarray(0, 4));
}
