/**
 * @module
 * Seeded random inputs for property tests and the live-relay fuzzer: a PRNG with helpers,
 * byte-string mutations in the style of coverage-less fuzzers (bit flips, interesting
 * values, truncation, extension, splices), and the run count (`HYDRA_FUZZ_RUNS`).
 */

import process from "node:process";

/** A seeded xorshift128+ style PRNG (fast, reproducible from the seed). */
export class Rand {
  #a: number;
  #b: number;
  /** The seed this generator started from (print it on failure). */
  readonly seed: number;

  constructor(seed: number) {
    this.seed = seed >>> 0;
    this.#a = (seed ^ 0x9e3779b9) >>> 0 || 1;
    this.#b = Math.imul(seed, 0x85ebca6b) >>> 0 || 2;
  }

  /** 32 random bits. */
  u32(): number {
    let a = this.#a;
    const b = this.#b;
    this.#a = b;
    a ^= a << 23;
    a ^= a >>> 17;
    a ^= b ^ (b >>> 26);
    this.#b = a >>> 0;
    return (this.#a + this.#b) >>> 0;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }

  /** One element. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** n random bytes. */
  bytes(n: number): Uint8Array<ArrayBuffer> {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }

  /** A size: mostly small, sometimes up to `max`. */
  size(max: number): number {
    return this.chance(0.8) ? this.int(Math.min(max, 64) + 1) : this.int(max + 1);
  }

  /** A fresh seed for a sub-generator. */
  fork(): Rand {
    return new Rand(this.u32());
  }
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];

/**
 * A mutated copy of `input` (never the same array; may be equal by chance).
 * @param r Randomness.
 * @param input The valid bytes to start from.
 */
export function mutate(r: Rand, input: Uint8Array): Uint8Array<ArrayBuffer> {
  const b = input.slice();
  const rounds = 1 + (r.chance(0.3) ? r.int(4) : 0);
  let out: Uint8Array<ArrayBuffer> = b;
  for (let i = 0; i < rounds; i++) out = mutateOnce(r, out);
  return out;
}

function mutateOnce(r: Rand, b: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  if (b.length === 0) return r.bytes(1 + r.int(8));
  const at = r.int(b.length);
  switch (r.int(8)) {
    case 0: // flip one bit
      b[at]! ^= 1 << r.int(8);
      return b;
    case 1: // an interesting byte
      b[at] = r.pick(INTERESTING);
      return b;
    case 2: // an interesting 32-bit value (length fields)
      for (let i = 0; i < 4 && at + i < b.length; i++) b[at + i] = r.chance(0.5) ? 0xff : 0x00;
      return b;
    case 3: // truncate
      return b.slice(0, at);
    case 4: // extend
      return concat2(b, r.bytes(1 + r.size(64)));
    case 5: { // delete a range
      const end = Math.min(b.length, at + 1 + r.int(16));
      return concat2(b.subarray(0, at), b.subarray(end));
    }
    case 6: { // duplicate a range
      const end = Math.min(b.length, at + 1 + r.int(16));
      return concat2(b.subarray(0, end), b.subarray(at));
    }
    default: // a random byte
      b[at] = r.u32() & 0xff;
      return b;
  }
}

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const c = new Uint8Array(a.length + b.length);
  c.set(a);
  c.set(b, a.length);
  return c;
}

/**
 * How many cases each property runs: `HYDRA_FUZZ_RUNS`, else `fallback` (kept small so
 * CI stays fast; raise it for a long local run).
 */
export function fuzzRuns(fallback: number): number {
  const env = Number(process.env["HYDRA_FUZZ_RUNS"]);
  return Number.isFinite(env) && env > 0 ? env : fallback;
}

/** The base seed: `HYDRA_FUZZ_SEED`, else a fixed one (so CI is reproducible). */
export function fuzzSeed(): number {
  const env = Number(process.env["HYDRA_FUZZ_SEED"]);
  return Number.isFinite(env) && env > 0 ? env >>> 0 : 0x5eed_1;
}
