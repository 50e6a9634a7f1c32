/**
 * @module
 * The crypto contract: every primitive hydra/1 uses (docs/PROTOCOL.md "Cryptographic
 * primitives"), behind one interface so the core never imports a crypto library. Adapters:
 * `noble.ts` (pure JS, the portable reference) and `native.ts` (WebCrypto / node:crypto).
 *
 * Hashes and randomness are synchronous (the Noise state machine hashes at every step and
 * stays simple); public-key operations and the AEAD are asynchronous because WebCrypto is.
 * Every authentication failure — a bad tag, a low-order X25519 point — throws the same
 * `RelayError("auth-failed")`; bad argument shapes throw `TypeError`.
 */

/** An X25519 key pair. */
export interface KeyPair {
  /** 32-byte secret scalar (clamped by the operation, stored unclamped). */
  readonly privateKey: Uint8Array;
  /** 32-byte public u-coordinate. */
  readonly publicKey: Uint8Array;
}

/** AES-256-GCM under one key. Output of `seal` is `ciphertext ‖ 16-byte tag`. */
export interface Aead {
  /**
   * Encrypts and authenticates.
   * @param nonce 12 bytes; never reuse one under the same key.
   * @param plaintext The message.
   * @param aad Authenticated, unencrypted data (default empty).
   * @param headroom Bytes to leave free before the ciphertext (default 0), so the caller can
   *   write a header in place instead of copying the result into a larger buffer.
   * @returns `headroom zero bytes ‖ ciphertext ‖ tag`, 16 + `headroom` bytes longer than the
   *   plaintext.
   */
  seal(
    nonce: Uint8Array,
    plaintext: Uint8Array,
    aad?: Uint8Array,
    headroom?: number,
  ): Promise<Uint8Array>;
  /**
   * Verifies and decrypts.
   * @param nonce The 12-byte nonce used to seal.
   * @param sealed `ciphertext ‖ tag`.
   * @param aad The same additional data.
   * @returns The plaintext.
   * @throws {RelayError} `auth-failed` on any mismatch.
   */
  open(nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array>;
}

/** An Ed25519 signing key made from a 32-byte seed (RFC 8032 private key). */
export interface Signer {
  /** The 32-byte public key. */
  readonly publicKey: Uint8Array;
  /**
   * Signs a message (deterministic, RFC 8032).
   * @param message Bytes to sign.
   * @returns The 64-byte signature.
   */
  sign(message: Uint8Array): Promise<Uint8Array>;
}

/** Byte length of an AES-GCM tag. */
export const TAG_LENGTH = 16;
/** Byte length of an AES-GCM nonce. */
export const NONCE_LENGTH = 12;

/** The primitives hydra/1 is built from. */
export interface CryptoProvider {
  /** Adapter name, e.g. "noble" or "native(node)". */
  readonly name: string;
  /**
   * Cryptographically secure random bytes.
   * @param length How many.
   */
  randomBytes(length: number): Uint8Array;
  /** SHA-256 digest. */
  sha256(data: Uint8Array): Uint8Array;
  /** HMAC-SHA256 (RFC 2104). */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /**
   * HKDF-SHA256 extract-and-expand (RFC 5869).
   * @param ikm Input key material.
   * @param salt Salt (may be empty).
   * @param info Context label.
   * @param length Output length, at most 8160.
   */
  hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;
  /**
   * An X25519 key pair; from `privateKey` when given, else fresh.
   * @param privateKey Optional 32-byte secret.
   */
  x25519KeyPair(privateKey?: Uint8Array): Promise<KeyPair>;
  /**
   * X25519 Diffie-Hellman (RFC 7748).
   * @throws {RelayError} `auth-failed` when the result is all zero (low-order point).
   */
  x25519(privateKey: Uint8Array, publicKey: Uint8Array): Promise<Uint8Array>;
  /**
   * Prepares AES-256-GCM under a 32-byte key.
   * @param key The key.
   */
  aesGcm(key: Uint8Array): Promise<Aead>;
  /**
   * An Ed25519 signer from a 32-byte seed.
   * @param seed The RFC 8032 private key.
   */
  ed25519(seed: Uint8Array): Promise<Signer>;
  /**
   * Verifies an Ed25519 signature. Malformed keys or signatures verify as `false`.
   * @returns Whether the signature is valid.
   */
  ed25519Verify(
    publicKey: Uint8Array,
    message: Uint8Array,
    signature: Uint8Array,
  ): Promise<boolean>;
}
