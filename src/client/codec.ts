/**
 * @module
 * Codecs turn typed values into message bytes and back (`Producer.send`,
 * `Consumer.recv` with a `codec` option). The relay never sees them: they run inside the
 * end-to-end encryption.
 */

/** Encodes and decodes one message type. */
export interface Codec<T> {
  /** Value → bytes. */
  encode(value: T): Uint8Array;
  /** Bytes → value; throw on malformed input. */
  decode(bytes: Uint8Array): T;
}

/**
 * The identity codec: messages are raw bytes.
 * @example
 * ```ts
 * import { bytesCodec } from "./codec.ts";
 * bytesCodec.encode(new Uint8Array([1])).length; // 1
 * ```
 */
export const bytesCodec: Codec<Uint8Array> = {
  encode: (v) => v,
  decode: (b) => b,
};

/**
 * UTF-8 strings.
 * @example
 * ```ts
 * import { textCodec } from "./codec.ts";
 * textCodec.decode(textCodec.encode("hé")); // "hé"
 * ```
 */
export const textCodec: Codec<string> = {
  encode: (v) => new TextEncoder().encode(v),
  decode: (b) => new TextDecoder("utf-8", { fatal: true }).decode(b),
};

/**
 * JSON values (UTF-8).
 * @returns A codec for `T`; decoding does not validate the shape, only the syntax.
 * @example
 * ```ts
 * import { jsonCodec } from "./codec.ts";
 * const c = jsonCodec<{ t: number }>();
 * c.decode(c.encode({ t: 1 })).t; // 1
 * ```
 */
export function jsonCodec<T>(): Codec<T> {
  return {
    encode: (v) => new TextEncoder().encode(JSON.stringify(v)),
    decode: (b) => JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(b)) as T,
  };
}
