/**
 * @module
 * The two native crypto APIs as this adapter sees them: local structural types for the parts
 * of node:crypto and WebCrypto it uses (no runtime type package), and how it reaches them —
 * node:crypto through `process.getBuiltinModule`, never a static `node:` import, so the native
 * adapter also loads in browsers.
 */

import { RelayError } from "../errors.ts";

/** Bytes. */
export type Bytes = Uint8Array;
/** A node:crypto KeyObject. */
export interface NodeKey {
  export(options: { format: "der"; type: "spki" | "pkcs8" }): Bytes;
  export(options: { format: "jwk" }): Jwk;
}
/** A node:crypto AES-GCM cipher or decipher. */
export interface NodeCipher {
  setAAD(aad: Bytes): void;
  update(data: Bytes): Bytes;
  final(): Bytes;
  getAuthTag(): Bytes;
  setAuthTag(tag: Bytes): void;
}
/** The part of node:crypto used here. */
export interface NodeCrypto {
  createHash(alg: "sha256"): { update(d: Bytes): { digest(): Bytes } };
  /** One-shot digest (Node 20.12+, Bun, Deno): no hash object per call. */
  hash?(alg: "sha256", d: Bytes, out: "buffer"): Bytes;
  createHmac(alg: "sha256", key: Bytes): { update(d: Bytes): { digest(): Bytes } };
  hkdfSync(digest: "sha256", ikm: Bytes, salt: Bytes, info: Bytes, length: number): ArrayBuffer;
  createSecretKey(key: Bytes): unknown;
  createCipheriv(alg: "aes-256-gcm", key: unknown, iv: Bytes, o: { authTagLength: 16 }): NodeCipher;
  createDecipheriv(
    alg: "aes-256-gcm",
    key: unknown,
    iv: Bytes,
    o: { authTagLength: 16 },
  ): NodeCipher;
  createPrivateKey(
    o: { key: Bytes; format: "der"; type: "pkcs8" } | { key: Jwk; format: "jwk" },
  ): NodeKey;
  createPublicKey(
    o: NodeKey | { key: Bytes; format: "der"; type: "spki" } | { key: Jwk; format: "jwk" },
  ): NodeKey;
  generateKeyPairSync(type: "x25519"): { privateKey: NodeKey; publicKey: NodeKey };
  diffieHellman(o: { privateKey: NodeKey; publicKey: NodeKey }): Bytes;
  sign(alg: null, data: Bytes, key: NodeKey): Bytes;
  verify(alg: null, data: Bytes, key: NodeKey, signature: Bytes): boolean;
}
/** The part of WebCrypto's SubtleCrypto used here. */
export interface Subtle {
  importKey(
    format: string,
    key: Bytes,
    alg: unknown,
    extractable: boolean,
    usages: string[],
  ): Promise<unknown>;
  exportKey(format: "jwk", key: unknown): Promise<{ x?: string }>;
  encrypt(alg: unknown, key: unknown, data: Bytes): Promise<ArrayBuffer>;
  decrypt(alg: unknown, key: unknown, data: Bytes): Promise<ArrayBuffer>;
  deriveBits(alg: unknown, key: unknown, length: number): Promise<ArrayBuffer>;
  sign(alg: unknown, key: unknown, data: Bytes): Promise<ArrayBuffer>;
  verify(alg: unknown, key: unknown, signature: Bytes, data: Bytes): Promise<boolean>;
}

/** node:crypto, if this runtime has it (never a static `node:` import). */
export function loadNodeCrypto(): NodeCrypto | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  try {
    return proc?.getBuiltinModule?.("node:crypto") as NodeCrypto | undefined;
  } catch {
    return undefined;
  }
}

/** WebCrypto's subtle API, or `unsupported`. */
export function subtle(): Subtle {
  const s = (globalThis as { crypto?: { subtle?: Subtle } }).crypto?.subtle;
  if (s === undefined) {
    throw new RelayError("unsupported", "WebCrypto (crypto.subtle) is not available");
  }
  return s;
}

/** A Uint8Array over the same bytes (Node's Buffer subclass shed). */
export const view = (b: Bytes): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
/** No bytes. */
export const EMPTY: Uint8Array = new Uint8Array(0);

/** An OKP JSON Web Key, as node:crypto imports and exports it. */
export interface Jwk {
  kty: "OKP";
  crv: "X25519" | "Ed25519";
  x: string;
  d?: string;
}
