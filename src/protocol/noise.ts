/**
 * @module
 * The Noise Protocol Framework (revision 34) handshake and transport ciphers for the
 * `25519_AESGCM_SHA256` suite, as a pure state machine: bytes in, bytes out, no I/O.
 * hydra/1 uses the NX pattern (docs/PROTOCOL.md §3 "Handshake"); NN, NK and XX are here too
 * because they cost one table row each and let the test vectors exercise every token.
 *
 * Crypto comes from a {@link CryptoProvider}; ephemeral keys may be injected for test vectors.
 */

import { abytes, concat } from "../bytes.ts";
import type { Aead, CryptoProvider, KeyPair } from "../crypto/types.ts";
import { RelayError } from "../errors.ts";

/** Length of a Noise SHA-256 hash and of every key here. */
export const HASHLEN = 32;
/** Length of an X25519 public key. */
export const DHLEN = 32;
/** Maximum Noise message length (spec §3). */
export const MAX_NOISE_MESSAGE = 65535;

type Token = "e" | "s" | "ee" | "es" | "se" | "ss";

/** The handshake patterns this module implements (Noise spec §7.4). */
export const PATTERNS: {
  readonly [name: string]: {
    readonly preResponder: readonly Token[];
    readonly messages: readonly (readonly Token[])[];
  };
} = {
  NN: { preResponder: [], messages: [["e"], ["e", "ee"]] },
  NK: { preResponder: ["s"], messages: [["e", "es"], ["e", "ee"]] },
  NX: { preResponder: [], messages: [["e"], ["e", "ee", "s", "es"]] },
  XX: { preResponder: [], messages: [["e"], ["e", "ee", "s", "es"], ["s", "se"]] },
};

const EMPTY = new Uint8Array(0);
const MAX_NONCE = 2n ** 64n - 1n;

/** AES-GCM nonce of the Noise spec: 32 zero bits then the 64-bit counter, big-endian. */
export function noiseNonce(n: bigint): Uint8Array {
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setBigUint64(4, n, false);
  return nonce;
}

/**
 * A Noise CipherState: a key and a nonce counter. Used during the handshake and, after
 * `split()`, as one direction of the transport.
 */
export class CipherState {
  #aead: Aead | undefined;
  #n = 0n;

  /** Whether a key is set (before the first MixKey there is none and data passes in clear). */
  get hasKey(): boolean {
    return this.#aead !== undefined;
  }

  /** The next nonce that will be used. */
  get nonce(): bigint {
    return this.#n;
  }

  /** Sets the key and resets the nonce. */
  async initializeKey(crypto: CryptoProvider, key: Uint8Array): Promise<void> {
    this.#aead = await crypto.aesGcm(key);
    this.#n = 0n;
  }

  /**
   * Encrypts with the next nonce (or returns the plaintext when no key is set yet).
   * @throws {RelayError} `protocol-error` when the nonce space is exhausted.
   */
  async encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
    if (this.#aead === undefined) return plaintext;
    const n = this.#take();
    return await this.#aead.seal(noiseNonce(n), plaintext, ad);
  }

  /**
   * Decrypts with the next nonce (or returns the input when no key is set yet).
   * The nonce advances only on success, as the spec requires.
   * @throws {RelayError} `auth-failed` on any tampering.
   */
  async decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
    if (this.#aead === undefined) return ciphertext;
    if (this.#n >= MAX_NONCE) throw new RelayError("protocol-error", "Noise nonce space exhausted");
    const plaintext = await this.#aead.open(noiseNonce(this.#n), ciphertext, ad);
    this.#n++;
    return plaintext;
  }

  #take(): bigint {
    if (this.#n >= MAX_NONCE) throw new RelayError("protocol-error", "Noise nonce space exhausted");
    return this.#n++;
  }
}

/** Noise SymmetricState: chaining key, handshake hash and the handshake CipherState. */
class SymmetricState {
  ck: Uint8Array;
  h: Uint8Array;
  readonly cipher: CipherState = new CipherState();
  readonly #crypto: CryptoProvider;

  constructor(crypto: CryptoProvider, protocolName: string) {
    this.#crypto = crypto;
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= HASHLEN) {
      this.h = new Uint8Array(HASHLEN);
      this.h.set(name);
    } else {
      this.h = crypto.sha256(name);
    }
    this.ck = this.h;
  }

  mixHash(data: Uint8Array): void {
    this.h = this.#crypto.sha256(concat([this.h, data]));
  }

  /** Noise's HKDF with two outputs equals RFC 5869 HKDF (salt = ck, info empty, L = 64). */
  #hkdf2(ikm: Uint8Array): [Uint8Array, Uint8Array] {
    const out = this.#crypto.hkdf(ikm, this.ck, EMPTY, 2 * HASHLEN);
    return [out.slice(0, HASHLEN), out.slice(HASHLEN)];
  }

  async mixKey(ikm: Uint8Array): Promise<void> {
    const [ck, k] = this.#hkdf2(ikm);
    this.ck = ck;
    await this.cipher.initializeKey(this.#crypto, k);
  }

  async encryptAndHash(plaintext: Uint8Array): Promise<Uint8Array> {
    const ct = await this.cipher.encryptWithAd(this.h, plaintext);
    this.mixHash(ct);
    return ct;
  }

  async decryptAndHash(ciphertext: Uint8Array): Promise<Uint8Array> {
    const pt = await this.cipher.decryptWithAd(this.h, ciphertext);
    this.mixHash(ciphertext);
    return pt;
  }

  async split(): Promise<[CipherState, CipherState]> {
    const [k1, k2] = this.#hkdf2(EMPTY);
    const c1 = new CipherState();
    const c2 = new CipherState();
    await c1.initializeKey(this.#crypto, k1);
    await c2.initializeKey(this.#crypto, k2);
    return [c1, c2];
  }
}

/** Options of {@link NoiseHandshake}. */
export interface NoiseHandshakeOptions {
  /** One of {@link PATTERNS}' names. */
  readonly pattern: "NN" | "NK" | "NX" | "XX";
  /** Whether this side sends the first message. */
  readonly initiator: boolean;
  /** Bytes both sides must agree on (hydra/1 puts the protocol version here). */
  readonly prologue: Uint8Array;
  /** Our static key pair, when the pattern sends or pre-shares one. */
  readonly staticKey?: KeyPair;
  /** The peer's static public key, when the pattern pre-shares it (NK initiator). */
  readonly remoteStaticKey?: Uint8Array;
  /** A fixed ephemeral key pair; only for test vectors: a real handshake makes a fresh one. */
  readonly ephemeralKey?: KeyPair;
}

/** What a completed handshake yields. */
export interface NoiseResult {
  /** Cipher for messages this side sends. */
  readonly send: CipherState;
  /** Cipher for messages this side receives. */
  readonly recv: CipherState;
  /** The final handshake hash: unique per handshake, used to bind join proofs to it. */
  readonly handshakeHash: Uint8Array;
  /** The peer's static public key, if the pattern transmitted or pre-shared one. */
  readonly remoteStaticKey: Uint8Array | undefined;
}

/**
 * One side of a Noise handshake. Call `writeMessage` when it is this side's turn and
 * `readMessage` with each message from the peer; after the last message `result()` gives
 * the transport ciphers.
 *
 * Any failure (bad tag, low-order point, wrong length, out-of-turn call) leaves the
 * handshake unusable: the caller closes the connection.
 *
 * @example
 * ```ts
 * import { NoiseHandshake } from "./noise.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const prologue = new TextEncoder().encode("example");
 * const relayKey = await nobleCrypto.x25519KeyPair();
 * const client = new NoiseHandshake(nobleCrypto, { pattern: "NX", initiator: true, prologue });
 * const relay = new NoiseHandshake(nobleCrypto, { pattern: "NX", initiator: false, prologue, staticKey: relayKey });
 * await relay.readMessage(await client.writeMessage(new Uint8Array(0)));
 * await client.readMessage(await relay.writeMessage(new Uint8Array(0)));
 * const { remoteStaticKey } = await client.result(); // equals relayKey.publicKey
 * ```
 */
export class NoiseHandshake {
  readonly #crypto: CryptoProvider;
  readonly #messages: readonly (readonly Token[])[];
  readonly #initiator: boolean;
  readonly #ss: SymmetricState;
  readonly #s: KeyPair | undefined;
  #e: KeyPair | undefined;
  readonly #fixedE: KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #index = 0;
  #failed = false;

  /**
   * @param crypto The primitives.
   * @param options Pattern, role, prologue and keys.
   * @throws {TypeError} when a key the pattern needs is missing.
   */
  constructor(crypto: CryptoProvider, options: NoiseHandshakeOptions) {
    const pattern = PATTERNS[options.pattern];
    if (pattern === undefined) throw new TypeError(`unknown Noise pattern ${options.pattern}`);
    this.#crypto = crypto;
    this.#messages = pattern.messages;
    this.#initiator = options.initiator;
    this.#s = options.staticKey;
    this.#fixedE = options.ephemeralKey;
    this.#rs = options.remoteStaticKey;
    const sendsStatic = pattern.messages.some((m, i) =>
      m.includes("s") && (i % 2 === 0) === options.initiator
    );
    if (
      (sendsStatic || (!options.initiator && pattern.preResponder.includes("s"))) &&
      this.#s === undefined
    ) {
      throw new TypeError(`Noise ${options.pattern} needs "staticKey" on this side`);
    }
    if (options.initiator && pattern.preResponder.includes("s")) {
      abytes(this.#rs, DHLEN, "remoteStaticKey");
    }
    this.#ss = new SymmetricState(crypto, `Noise_${options.pattern}_25519_AESGCM_SHA256`);
    this.#ss.mixHash(abytes(options.prologue, undefined, "prologue"));
    for (const token of pattern.preResponder) {
      if (token === "s") this.#ss.mixHash(options.initiator ? this.#rs! : this.#s!.publicKey);
    }
  }

  /** Whether every handshake message has been written or read. */
  get complete(): boolean {
    return this.#index >= this.#messages.length;
  }

  /** Whether it is this side's turn to write. */
  get isMyTurn(): boolean {
    return !this.complete && (this.#index % 2 === 0) === this.#initiator;
  }

  /** The current handshake hash (final once complete). */
  get handshakeHash(): Uint8Array {
    return this.#ss.h;
  }

  /**
   * Writes the next handshake message carrying `payload` (encrypted once a key exists).
   * @throws {RelayError} `protocol-error` when it is not this side's turn.
   */
  async writeMessage(payload: Uint8Array): Promise<Uint8Array> {
    this.#turn(true);
    try {
      const parts: Uint8Array[] = [];
      for (const token of this.#messages[this.#index]!) {
        switch (token) {
          case "e": {
            this.#e = this.#fixedE ?? await this.#crypto.x25519KeyPair();
            parts.push(this.#e.publicKey);
            this.#ss.mixHash(this.#e.publicKey);
            break;
          }
          case "s":
            parts.push(await this.#ss.encryptAndHash(this.#s!.publicKey));
            break;
          default:
            await this.#dh(token);
        }
      }
      parts.push(await this.#ss.encryptAndHash(payload));
      this.#index++;
      const message = concat(parts);
      if (message.length > MAX_NOISE_MESSAGE) {
        throw new RelayError("protocol-error", "Noise message too long");
      }
      return message;
    } catch (e) {
      this.#failed = true;
      throw e;
    }
  }

  /**
   * Reads the peer's next handshake message.
   * @returns The decrypted payload.
   * @throws {RelayError} `auth-failed` for any cryptographic failure or malformed message,
   *   `protocol-error` when it is not the peer's turn.
   */
  async readMessage(message: Uint8Array): Promise<Uint8Array> {
    this.#turn(false);
    try {
      abytes(message, undefined, "message");
      if (message.length > MAX_NOISE_MESSAGE) {
        throw new RelayError("auth-failed", "authentication failed");
      }
      let off = 0;
      const take = (n: number) => {
        if (off + n > message.length) throw new RelayError("auth-failed", "authentication failed");
        const part = message.subarray(off, off + n);
        off += n;
        return part;
      };
      for (const token of this.#messages[this.#index]!) {
        switch (token) {
          case "e":
            this.#re = take(DHLEN).slice();
            this.#ss.mixHash(this.#re);
            break;
          case "s": {
            const len = this.#ss.cipher.hasKey ? DHLEN + 16 : DHLEN;
            this.#rs = (await this.#ss.decryptAndHash(take(len))).slice();
            break;
          }
          default:
            await this.#dh(token);
        }
      }
      const payload = await this.#ss.decryptAndHash(message.subarray(off));
      this.#index++;
      return payload;
    } catch (e) {
      this.#failed = true;
      throw e;
    }
  }

  /**
   * The transport ciphers and the handshake hash. Available once `complete`.
   * @throws {RelayError} `protocol-error` before completion or after a failure.
   */
  async result(): Promise<NoiseResult> {
    if (!this.complete || this.#failed) {
      throw new RelayError("protocol-error", "Noise handshake not complete");
    }
    const [c1, c2] = await this.#ss.split();
    return {
      send: this.#initiator ? c1 : c2,
      recv: this.#initiator ? c2 : c1,
      handshakeHash: this.#ss.h.slice(),
      remoteStaticKey: this.#rs,
    };
  }

  #turn(writing: boolean): void {
    if (this.#failed) throw new RelayError("protocol-error", "Noise handshake already failed");
    if (this.complete) throw new RelayError("protocol-error", "Noise handshake already complete");
    if (this.isMyTurn !== writing) {
      throw new RelayError(
        "protocol-error",
        writing ? "not our turn to write" : "not the peer's turn to write",
      );
    }
  }

  async #dh(token: Token): Promise<void> {
    // Which of our keys meets which of theirs: the first letter is the initiator's key.
    const [mine, theirs] = this.#initiator
      ? [token[0] === "e" ? this.#e : this.#s, token[1] === "e" ? this.#re : this.#rs]
      : [token[1] === "e" ? this.#e : this.#s, token[0] === "e" ? this.#re : this.#rs];
    if (mine === undefined || theirs === undefined) {
      throw new RelayError("protocol-error", `Noise token ${token} without its keys`);
    }
    await this.#ss.mixKey(await this.#crypto.x25519(mine.privateKey, theirs));
  }
}
