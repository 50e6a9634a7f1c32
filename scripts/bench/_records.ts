/**
 * Record walkers shared by the relay benchmark's processes: they follow a byte stream of
 * length-delimited records across arbitrary chunk splits, skipping bodies without copying.
 */

/** A stream of `header ‖ body` records; subclasses parse headers and say how much to skip. */
export abstract class RecordWalker {
  /** Complete records seen. */
  records = 0;
  /** Body bytes still to skip. */
  protected skip = 0;

  /** Consumes one chunk. */
  push(c: Uint8Array): void {
    let i = 0;
    const n = c.length;
    while (i < n) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, n - i);
        this.skip -= k;
        i += k;
        continue;
      }
      i = this.header(c, i);
    }
  }

  /** Reads header bytes from `c` at `i` (keeping a split header); returns where it stopped. */
  protected abstract header(c: Uint8Array, i: number): number;
}

/**
 * hydra/1 frames (`u32 BE body length ‖ type ‖ body`): counts data frames (type 3) and
 * rejects any type but data and control.
 */
export class FrameCounter extends RecordWalker {
  /** Data frames seen. */
  data = 0;
  #head = new Uint8Array(5);
  #have = 0;

  protected header(c: Uint8Array, i: number): number {
    if (this.#have === 0 && c.length - i >= 5) {
      this.#frame(c[i]!, c[i + 1]!, c[i + 2]!, c[i + 3]!, c[i + 4]!);
      return i + 5;
    }
    this.#head[this.#have++] = c[i]!;
    if (this.#have === 5) {
      const h = this.#head;
      this.#have = 0;
      this.#frame(h[0]!, h[1]!, h[2]!, h[3]!, h[4]!);
    }
    return i + 1;
  }

  #frame(a: number, b: number, c: number, d: number, type: number): void {
    this.skip = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
    this.records++;
    if (type === 3) this.data++;
    else if (type !== 2) throw new Error(`bad frame type ${type}`);
  }
}
