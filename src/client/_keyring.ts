/**
 * @module
 * What a consumer reads with (docs/CAPABILITIES.md "Rotation and revocation"): the session
 * itself (a write token reads every generation), or read capabilities of one or more
 * generations — the one it joined with and those granted since, the newest {@link MAX_HELD}.
 */

import { equals } from "../bytes.ts";
import type { CryptoProvider } from "../crypto/types.ts";
import type { ReadCapability } from "../protocol/capability.ts";
import type { Session } from "../protocol/session.ts";

/** The most read capabilities a consumer keeps (the relay keeps as many grants). */
export const MAX_HELD = 4;

/** The capabilities of one consumer. */
export class Keyring {
  readonly #session: Session | undefined;
  /** Sorted by generation, oldest first. */
  #readers: ReadCapability[] = [];

  /** @param first The session or read capability the consumer was opened with. */
  constructor(first: Session | ReadCapability) {
    if ("readOnly" in first) this.#session = first;
    else this.#readers.push(first);
  }

  /** Whether this holds the session (a write token): every generation is readable. */
  get writer(): boolean {
    return this.#session !== undefined;
  }

  /** The capability to join with: the session, or the newest read capability. */
  get newest(): Session | ReadCapability {
    return this.#session ?? this.#readers.at(-1)!;
  }

  /**
   * Whether streams of a generation can be read.
   * @param generation The stream's generation.
   * @returns Whether they can.
   */
  canRead(generation: number): boolean {
    return this.#session !== undefined || this.#readers.some((r) => r.canRead(generation));
  }

  /**
   * Whether a stream of this generation is older than a capability held: it is not readable,
   * but it will end and a readable one may follow (a token minted ahead of a rotation).
   * @param generation The stream's generation.
   * @returns Whether to wait for a later stream.
   */
  waitsPast(generation: number): boolean {
    return !this.canRead(generation) && this.#readers.some((r) => r.generation > generation);
  }

  /**
   * Adds a read capability of the same session.
   * @param capability The capability.
   * @returns Whether it is new here (`false`: held already, or a writer holds every one).
   * @throws {TypeError} for a capability of another session.
   */
  add(capability: ReadCapability): boolean {
    const routeId = this.#readers[0]?.routeId;
    if (routeId !== undefined && !equals(routeId, capability.routeId)) {
      throw new TypeError("that read capability is for another session");
    }
    if (this.#session !== undefined) return false;
    if (this.#readers.some((r) => r.generation === capability.generation)) return false;
    this.#readers.push(capability);
    this.#readers.sort((a, b) => a.generation - b.generation);
    if (this.#readers.length > MAX_HELD) this.#readers.shift();
    return true;
  }

  /**
   * A data key of one stream.
   * @param crypto The primitives.
   * @param epoch The stream's epoch.
   * @param generation The stream's generation (one {@link Keyring.canRead} said yes to).
   * @param keyIndex The key index.
   * @returns The 32-byte key.
   * @throws {RangeError} for a generation none of the capabilities reads.
   */
  dataKey(
    crypto: CryptoProvider,
    epoch: Uint8Array,
    generation: number,
    keyIndex: number,
  ): Uint8Array {
    const reader = this.#session ?? this.#readers.find((r) => r.canRead(generation)) ??
      this.#readers[0]!;
    return reader.dataKey(crypto, epoch, generation, keyIndex);
  }
}
