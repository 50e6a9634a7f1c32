/**
 * @module
 * The byte-level pieces every hydra/1 message codec shares (docs/PROTOCOL.md §6.1): a bounded
 * reader whose every read checks the remaining length first, big-endian writers, and the one
 * `protocol-error` a malformed message becomes.
 */

import { concat, readU32BE, readU64BE, writeU32BE, writeU64BE } from "../bytes.ts";
import { RelayError } from "../errors.ts";

/** Largest human-readable message in ERROR, CLOSE and the hello (UTF-8 bytes). */
export const MAX_REASON = 512;

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** The one error a malformed message is. */
export function bad(what: string): RelayError {
  return new RelayError("protocol-error", `malformed ${what}`);
}

/** Bounded little cursor over a message: every read checks the remaining length first. */
export class Reader {
  #off = 0;
  /**
   * @param bytes The message.
   * @param what What it is, for the error.
   */
  constructor(readonly bytes: Uint8Array, readonly what: string) {}
  take(n: number): Uint8Array {
    if (n > this.bytes.length - this.#off) throw bad(this.what);
    const out = this.bytes.subarray(this.#off, this.#off + n);
    this.#off += n;
    return out;
  }
  u8(): number {
    return this.take(1)[0]!;
  }
  u16(): number {
    const b = this.take(2);
    return (b[0]! << 8) | b[1]!;
  }
  u32(): number {
    return readU32BE(this.take(4), 0);
  }
  u64(): bigint {
    return readU64BE(this.take(8), 0);
  }
  text(max: number): string {
    const len = this.u16();
    if (len > max) throw bad(this.what);
    try {
      return dec.decode(this.take(len));
    } catch {
      throw bad(this.what);
    }
  }
  end(): void {
    if (this.#off !== this.bytes.length) throw bad(this.what);
  }
}

/** A byte. */
export function u8(n: number): Uint8Array {
  return new Uint8Array([n]);
}
/** A big-endian u16. */
export function u16(n: number): Uint8Array {
  return new Uint8Array([n >> 8, n & 0xff]);
}
/** A big-endian u32. */
export function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  writeU32BE(b, 0, n);
  return b;
}
/** A big-endian u64. */
export function u64(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  writeU64BE(b, 0, n);
  return b;
}
/** A u16-length-prefixed UTF-8 text, cut to {@link MAX_REASON} bytes. */
export function text(s: string): Uint8Array {
  let b = enc.encode(s);
  if (b.length > MAX_REASON) b = enc.encode(s.slice(0, MAX_REASON / 4));
  return concat([u16(b.length), b]);
}
