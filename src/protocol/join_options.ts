/**
 * @module
 * Join options (docs/PROTOCOL.md §4, §6.1): the small TLV block a JOIN carries and its proof
 * signs — a consumer's slow-consumer policy and its resume point.
 */

import { abytes, concat, readU32BE, readU64BE } from "../bytes.ts";
import { bad, Reader, u32, u64 } from "./_codec.ts";
import { EPOCH_LENGTH } from "./session.ts";

/** Largest join options block (bytes). */
export const MAX_JOIN_OPTIONS = 1024;

/** Slow-consumer policies; the numbers are the wire values of the `policy` join option. */
export const Policy = {
  /** Close a consumer that falls a full ring behind (hydra-sync's behaviour). */
  disconnect: 1,
  /** Skip the consumer ahead and tell it `LAGGED {from, to}`. */
  drop: 2,
  /** Lossless: pause the producer while the slowest consumer is a full ring behind. */
  block: 3,
} as const;

/** The name of a slow-consumer policy. */
export type PolicyName = keyof typeof Policy;

/** Join options (a small TLV block, signed as part of the proof). */
export interface JoinOptions {
  /** A consumer's wish for a stricter policy than the relay's (block > disconnect > drop). */
  readonly policy?: PolicyName;
  /** A consumer's resume point: the stream's epoch and the next seq it needs. */
  readonly resume?: { readonly epoch: Uint8Array; readonly nextSeq: bigint };
  /**
   * A reader's credentials (docs/CAPABILITIES.md "Joins"): its generation, its reader key (the
   * proof is signed by it, not by the route id's key) and the writer's grant over that key.
   */
  readonly reader?: {
    readonly generation: number;
    readonly readerKey: Uint8Array;
    readonly grant: Uint8Array;
  };
}

/**
 * Encodes join options as TLV: `(u8 type ‖ u8 length ‖ value)*`, type 1 = policy (u8),
 * type 2 = resume (epoch[16] ‖ u64 next seq), type 3 = reader (u32 generation ‖ reader key[32]
 * ‖ grant[64]).
 * @param o The options.
 * @returns The block.
 * @example
 * ```ts
 * import { encodeJoinOptions } from "./join_options.ts";
 * encodeJoinOptions({ policy: "block" }); // 01 01 03
 * ```
 */
export function encodeJoinOptions(o: JoinOptions): Uint8Array {
  const parts: Uint8Array[] = [];
  if (o.policy !== undefined) {
    const p = Policy[o.policy];
    if (p === undefined) throw new RangeError(`unknown policy "${o.policy}"`);
    parts.push(new Uint8Array([1, 1, p]));
  }
  if (o.resume !== undefined) {
    parts.push(
      new Uint8Array([2, 24]),
      abytes(o.resume.epoch, EPOCH_LENGTH, "resume.epoch"),
      u64(o.resume.nextSeq),
    );
  }
  if (o.reader !== undefined) {
    parts.push(
      new Uint8Array([3, 100]),
      u32(o.reader.generation),
      abytes(o.reader.readerKey, 32, "reader.readerKey"),
      abytes(o.reader.grant, 64, "reader.grant"),
    );
  }
  return concat(parts);
}

/**
 * Decodes join options; unknown types are skipped (forward compatibility), known ones are
 * checked strictly.
 * @param bytes The block.
 * @returns The options.
 * @throws {RelayError} `protocol-error` when malformed.
 * @example
 * ```ts
 * import { decodeJoinOptions } from "./join_options.ts";
 * decodeJoinOptions(new Uint8Array([1, 1, 2])); // { policy: "drop" }
 * ```
 */
export function decodeJoinOptions(bytes: Uint8Array): JoinOptions {
  const r = new Reader(bytes, "join options");
  let policy: PolicyName | undefined;
  let resume: JoinOptions["resume"];
  let reader: JoinOptions["reader"];
  let left = bytes.length;
  while (left > 0) {
    const type = r.u8();
    const value = r.take(r.u8());
    left -= 2 + value.length;
    if (type === 1) {
      const name = (Object.keys(Policy) as PolicyName[]).find((k) => Policy[k] === value[0]);
      if (value.length !== 1 || name === undefined) throw bad("join options");
      policy = name;
    } else if (type === 2) {
      if (value.length !== 24) throw bad("join options");
      resume = { epoch: value.subarray(0, 16), nextSeq: readU64BE(value, 16) };
    } else if (type === 3) {
      if (value.length !== 100) throw bad("join options");
      reader = {
        generation: readU32BE(value, 0),
        readerKey: value.subarray(4, 36),
        grant: value.subarray(36, 100),
      };
    }
  }
  return {
    ...(policy === undefined ? {} : { policy }),
    ...(resume === undefined ? {} : { resume }),
    ...(reader === undefined ? {} : { reader }),
  };
}
