/**
 * @module
 * The live status line of `pub`, `sub` and `bench` on a terminal: rewritten in place on
 * stderr a few times a second, erased when done. Silent when stderr is not a TTY, so pipes
 * and logs stay clean.
 */

/** Where the line goes: stderr, or a stand-in in tests. */
export interface StatusStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

const INTERVAL_MS = 250;

/** Thousands separators, e.g. `12,345`. */
export function grouped(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A byte count for people: `512 B`, `1.5 KiB`, `12.3 MiB`. */
export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 2 : 1)} ${units[u]}`;
}

/** Counts messages and bytes and shows them, with rates, on a live line. */
export class Progress {
  /** Messages counted. */
  messages = 0;
  /** Bytes counted. */
  bytes = 0;
  readonly #label: string;
  readonly #out: StatusStream;
  readonly #started = performance.now();
  readonly #extra: (() => string) | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #last = { t: this.#started, messages: 0, bytes: 0 };
  #rate = { messages: 0, bytes: 0 };

  /**
   * @param label What is counted, e.g. `sub`.
   * @param out Usually `process.stderr`; nothing is drawn unless `out.isTTY`.
   * @param extra More text for the end of the line (e.g. a progress bar).
   */
  constructor(label: string, out: StatusStream, extra?: () => string) {
    this.#label = label;
    this.#out = out;
    this.#extra = extra;
    if (out.isTTY === true) {
      this.#timer = setInterval(() => this.#draw(), INTERVAL_MS);
      // Never keep the process alive just to draw.
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** Whether the line is drawn. */
  get live(): boolean {
    return this.#timer !== undefined;
  }

  /** Seconds since start. */
  get seconds(): number {
    return (performance.now() - this.#started) / 1000;
  }

  /** Counts one message of `bytes` bytes. */
  add(bytes: number): void {
    this.messages++;
    this.bytes += bytes;
  }

  /** The summary: `1,234 messages (1.21 MiB) in 3.4 s`. */
  summary(): string {
    return `${grouped(this.messages)} messages (${humanBytes(this.bytes)}) in ${
      this.seconds.toFixed(1)
    } s`;
  }

  /** Stops drawing and erases the line. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#out.write("\r\x1b[2K");
  }

  #draw(): void {
    const now = performance.now();
    const dt = (now - this.#last.t) / 1000;
    if (dt > 0) {
      this.#rate = {
        messages: (this.messages - this.#last.messages) / dt,
        bytes: (this.bytes - this.#last.bytes) / dt,
      };
    }
    this.#last = { t: now, messages: this.messages, bytes: this.bytes };
    const extra = this.#extra?.() ?? "";
    this.#out.write(
      `\r\x1b[2K${this.#label}: ${grouped(this.messages)} messages · ${humanBytes(this.bytes)} · ` +
        `${grouped(this.#rate.messages)} msg/s · ${humanBytes(this.#rate.bytes)}/s${
          extra === "" ? "" : ` ${extra}`
        }`,
    );
  }
}

/** A text progress bar, e.g. `[#####-----] 50%`. */
export function bar(fraction: number, width = 20): string {
  const f = Math.max(0, Math.min(1, fraction));
  const filled = Math.round(f * width);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${Math.floor(f * 100)}%`;
}
