/**
 * @module
 * Native crypto adapter: the runtime's own implementations, picked per primitive by what is
 * fastest where (measured, see docs/BENCHMARKS.md and shared baselines):
 *
 * | primitive | Node, Bun | Deno | browsers |
 * |---|---|---|---|
 * | AES-256-GCM | node:crypto (1–3 GB/s) | WebCrypto (node:crypto is ~80 MB/s there) | WebCrypto |
 * | X25519, Ed25519 | node:crypto | node:crypto | WebCrypto |
 * | SHA-256, HMAC, HKDF | node:crypto | node:crypto | @noble/hashes (WebCrypto digests are async-only) |
 *
 * node:crypto is reached through `process.getBuiltinModule`, never a static `node:` import,
 * so this module also loads in browsers.
 */

import { hkdf as nobleHkdf } from "@noble/hashes/hkdf.js";
import { hmac as nobleHmac } from "@noble/hashes/hmac.js";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { abytes, aint, concat, fromBase64Url, fromHex, toBase64Url } from "../bytes.ts";
import { authFailed, RelayError } from "../errors.ts";
import { runtimeName } from "../runtime.ts";
import { behindHeadroom, checkShared, headroomOf, secureRandom } from "./_checks.ts";
import {
  type Aead,
  type CryptoProvider,
  type KeyPair,
  NONCE_LENGTH,
  type Signer,
  TAG_LENGTH,
} from "./types.ts";

// ---- local structural types for the two native APIs ----
type Bytes = Uint8Array;
interface NodeKey {
  export(options: { format: "der"; type: "spki" | "pkcs8" }): Bytes;
  export(options: { format: "jwk" }): Jwk;
}
interface NodeCipher {
  setAAD(aad: Bytes): void;
  update(data: Bytes): Bytes;
  final(): Bytes;
  getAuthTag(): Bytes;
  setAuthTag(tag: Bytes): void;
}
interface NodeCrypto {
  createHash(alg: "sha256"): { update(d: Bytes): { digest(): Bytes } };
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
interface Subtle {
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

function loadNodeCrypto(): NodeCrypto | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  try {
    return proc?.getBuiltinModule?.("node:crypto") as NodeCrypto | undefined;
  } catch {
    return undefined;
  }
}

function subtle(): Subtle {
  const s = (globalThis as { crypto?: { subtle?: Subtle } }).crypto?.subtle;
  if (s === undefined) {
    throw new RelayError("unsupported", "WebCrypto (crypto.subtle) is not available");
  }
  return s;
}

const view = (b: Bytes): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
const EMPTY = new Uint8Array(0);

// DER prefixes that wrap a raw 32-byte private key as PKCS#8 (RFC 8410).
const X25519_PKCS8 = fromHex("302e020100300506032b656e04220420");
const ED25519_PKCS8 = fromHex("302e020100300506032b657004220420");

// ---- AES-256-GCM ----
const GCM = { authTagLength: TAG_LENGTH } as const;

/**
 * AES-256-GCM through node:crypto. A class, not an object of closures: every connection holds
 * two of these for as long as it lives, so an idle connection pays for two small objects.
 */
class NodeAead implements Aead {
  readonly #nc: NodeCrypto;
  readonly #key: unknown;

  constructor(nc: NodeCrypto, key: Bytes) {
    this.#nc = nc;
    this.#key = nc.createSecretKey(key);
  }

  async seal(nonce: Bytes, plaintext: Bytes, aad?: Bytes, headroom?: number): Promise<Bytes> {
    abytes(nonce, NONCE_LENGTH, "nonce");
    abytes(plaintext, undefined, "plaintext");
    const room = headroomOf(headroom);
    const c = this.#nc.createCipheriv("aes-256-gcm", this.#key, nonce, GCM);
    if (aad !== undefined && aad.length > 0) c.setAAD(aad);
    // `update` returns a buffer of its own: the one copy, into the caller's layout.
    const out = new Uint8Array(room + plaintext.length + TAG_LENGTH);
    const body = c.update(plaintext);
    out.set(body, room);
    out.set(c.final(), room + body.length);
    out.set(c.getAuthTag(), room + plaintext.length);
    return out;
  }

  async open(nonce: Bytes, sealed: Bytes, aad?: Bytes): Promise<Bytes> {
    abytes(nonce, NONCE_LENGTH, "nonce");
    abytes(sealed, undefined, "sealed");
    if (sealed.length < TAG_LENGTH) throw authFailed();
    try {
      const d = this.#nc.createDecipheriv("aes-256-gcm", this.#key, nonce, GCM);
      d.setAuthTag(sealed.subarray(sealed.length - TAG_LENGTH));
      if (aad !== undefined && aad.length > 0) d.setAAD(aad);
      const n = sealed.length - TAG_LENGTH;
      const body = d.update(sealed.subarray(0, n));
      const tail = d.final(); // checks the tag: nothing is returned before it passed
      // node:crypto's own output buffer is returned as is when it holds the plaintext and
      // nothing else (Node and Deno; Bun's carries a spare byte); a view into pooled memory
      // would expose other bytes through `.buffer`, so any other shape is copied.
      const own = tail.length === 0 && body.length === n && body.byteOffset === 0 &&
        body.buffer.byteLength === n;
      return own ? new Uint8Array(body.buffer, 0, n) : copyOut(body, tail, n);
    } catch {
      throw authFailed();
    }
  }
}

function copyOut(body: Bytes, tail: Bytes, n: number): Uint8Array {
  const out = new Uint8Array(n);
  out.set(body, 0);
  out.set(tail, body.length);
  return out;
}

/**
 * Messages below this many bytes go through node:crypto in the `"auto"` AEAD, larger ones
 * through WebCrypto. Deno 2.9, one AES-256-GCM seal / open: 64 B 10.8 / 7.3 µs (node:crypto)
 * against 22.0 / 21.2 (WebCrypto, an async op); 1 KiB 12.9 / 12.2 against 21.5 / 21.7; 16 KiB
 * 123 / 105 against 49 / 44; 1 MiB 8.1 / 7.3 ms against 1.8 / 1.7. The lines cross near 2 KiB.
 */
const SPLIT_AT = 2048;

/**
 * node:crypto for small messages, WebCrypto for large ones: the same AES-256-GCM bytes. The
 * WebCrypto key (an async import) is made on the first large message, so keys that only ever
 * see small ones — every Noise handshake key — never pay for it.
 */
function autoAead(nc: NodeCrypto, key: Bytes): Aead {
  const small = new NodeAead(nc, key);
  const raw = key.slice(); // the caller may reuse its key bytes before a large message comes
  let large: Promise<Aead> | undefined;
  const big = () => (large ??= webAead(raw));
  return {
    seal: (nonce, plaintext, aad, headroom) =>
      plaintext.length < SPLIT_AT
        ? small.seal(nonce, plaintext, aad, headroom)
        : big().then((a) => a.seal(nonce, plaintext, aad, headroom)),
    open: (nonce, sealed, aad) =>
      sealed.length < SPLIT_AT + TAG_LENGTH
        ? small.open(nonce, sealed, aad)
        : big().then((a) => a.open(nonce, sealed, aad)),
  };
}

async function webAead(key: Bytes): Promise<Aead> {
  const k = await subtle().importKey("raw", key, { name: "AES-GCM" }, false, [
    "encrypt",
    "decrypt",
  ]);
  return {
    async seal(nonce, plaintext, aad, headroom) {
      abytes(nonce, NONCE_LENGTH, "nonce");
      abytes(plaintext, undefined, "plaintext");
      const room = headroomOf(headroom);
      const alg = { name: "AES-GCM", iv: nonce, additionalData: aad ?? EMPTY, tagLength: 128 };
      return behindHeadroom(new Uint8Array(await subtle().encrypt(alg, k, plaintext)), room);
    },
    async open(nonce, sealed, aad) {
      abytes(nonce, NONCE_LENGTH, "nonce");
      abytes(sealed, undefined, "sealed");
      const alg = { name: "AES-GCM", iv: nonce, additionalData: aad ?? EMPTY, tagLength: 128 };
      try {
        return new Uint8Array(await subtle().decrypt(alg, k, sealed));
      } catch {
        throw authFailed();
      }
    },
  };
}

// ---- X25519 / Ed25519 through node:crypto ----
/** An OKP JSON Web Key, as node:crypto imports and exports it. */
interface Jwk {
  kty: "OKP";
  crv: "X25519" | "Ed25519";
  x: string;
  d?: string;
}

/**
 * Measured on Node 20 (OpenSSL 3): importing a key from DER costs 190–780 µs, from a JWK
 * 16–93 µs, and a DH 44–66 µs. So keys are imported as JWK, public halves read back as JWK,
 * and a private X25519 key is imported once: its key object is kept beside the private key
 * bytes it belongs to (a `WeakMap` keyed by that `Uint8Array`), so the relay's static key and
 * each ephemeral key are imported once however many DHs use them.
 */
function nodeCurves(
  nc: NodeCrypto,
): Pick<CryptoProvider, "x25519KeyPair" | "x25519" | "ed25519" | "ed25519Verify"> {
  const held = new WeakMap<Bytes, NodeKey>();
  // A fresh key pair from generateKeyPairSync + a JWK export (no DER import) under Bun and
  // Deno. Not on Node: there it deadlocks now and then — a GC inside ExportJWK, which holds
  // the key's mutex, runs the finished KeyGenJob's destructor, which takes the same mutex
  // (seen on Node 20 as a hung test, main thread in futex_wait under ExportJWKEdKey). The
  // JWK export in `rawPublic` is safe: its keys are imported, never made by a KeyGenJob.
  const generateFast = runtimeName() !== "node";
  const rawPublic = (k: NodeKey) =>
    fromBase64Url(nc.createPublicKey(k).export({ format: "jwk" }).x);
  // A private key from a JWK: Node reads only `d` (its raw bytes) for an OKP private key, so no
  // public half is needed (`x` must be a string). 0.09 ms against 0.77 for PKCS#8 DER on Node
  // 20; the same ~0.02 ms either way on Bun and Deno. DER stays as the fallback for a runtime
  // that insists on `x`.
  let jwkImport = true;
  const priv = (prefix: Bytes, raw: Bytes, crv: Jwk["crv"]) => {
    if (jwkImport) {
      try {
        return nc.createPrivateKey({
          key: { kty: "OKP", crv, d: toBase64Url(raw), x: "" },
          format: "jwk",
        });
      } catch {
        jwkImport = false;
      }
    }
    return nc.createPrivateKey({ key: concat([prefix, raw]), format: "der", type: "pkcs8" });
  };
  const pub = (crv: Jwk["crv"], raw: Bytes) =>
    nc.createPublicKey({ key: { kty: "OKP", crv, x: toBase64Url(raw) }, format: "jwk" });
  const x25519Private = (raw: Bytes): NodeKey => {
    let k = held.get(raw);
    if (k === undefined) held.set(raw, k = priv(X25519_PKCS8, raw, "X25519"));
    return k;
  };
  return {
    async x25519KeyPair(privateKey?: Bytes): Promise<KeyPair> {
      if (privateKey === undefined && generateFast) {
        const pair = nc.generateKeyPairSync("x25519");
        const jwk = pair.privateKey.export({ format: "jwk" });
        const sk = fromBase64Url(jwk.d!);
        held.set(sk, pair.privateKey);
        return { privateKey: sk, publicKey: fromBase64Url(jwk.x) };
      }
      const sk = privateKey === undefined
        ? secureRandom(32)
        : abytes(privateKey, 32, "privateKey").slice();
      return { privateKey: sk, publicKey: rawPublic(x25519Private(sk)) };
    },
    async x25519(privateKey, publicKey) {
      abytes(privateKey, 32, "privateKey");
      abytes(publicKey, 32, "publicKey");
      let shared: Bytes;
      try {
        shared = view(
          nc.diffieHellman({
            privateKey: x25519Private(privateKey),
            publicKey: pub("X25519", publicKey),
          }),
        );
      } catch {
        throw authFailed();
      }
      return checkShared(shared);
    },
    async ed25519(seed): Promise<Signer> {
      const key = priv(ED25519_PKCS8, abytes(seed, 32, "seed"), "Ed25519");
      return {
        publicKey: rawPublic(key),
        sign: async (m: Bytes) => view(nc.sign(null, abytes(m, undefined, "message"), key)),
      };
    },
    async ed25519Verify(publicKey, message, signature) {
      abytes(message, undefined, "message");
      if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
      if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
      try {
        return nc.verify(null, message, pub("Ed25519", publicKey), signature);
      } catch {
        return false;
      }
    },
  };
}

// ---- X25519 / Ed25519 through WebCrypto (browsers) ----
function webCurves(): Pick<
  CryptoProvider,
  "x25519KeyPair" | "x25519" | "ed25519" | "ed25519Verify"
> {
  const X = { name: "X25519" };
  const E = { name: "Ed25519" };
  const publicOf = async (key: unknown) =>
    fromBase64Url((await subtle().exportKey("jwk", key)).x ?? "");
  return {
    async x25519KeyPair(privateKey?: Bytes): Promise<KeyPair> {
      const sk = privateKey === undefined
        ? secureRandom(32)
        : abytes(privateKey, 32, "privateKey").slice();
      const k = await subtle().importKey("pkcs8", concat([X25519_PKCS8, sk]), X, true, [
        "deriveBits",
      ]);
      return { privateKey: sk, publicKey: await publicOf(k) };
    },
    async x25519(privateKey, publicKey) {
      abytes(privateKey, 32, "privateKey");
      abytes(publicKey, 32, "publicKey");
      let shared: Bytes;
      try {
        const sk = await subtle().importKey("pkcs8", concat([X25519_PKCS8, privateKey]), X, false, [
          "deriveBits",
        ]);
        const pk = await subtle().importKey("raw", publicKey, X, true, []);
        shared = new Uint8Array(await subtle().deriveBits({ name: "X25519", public: pk }, sk, 256));
      } catch {
        throw authFailed();
      }
      return checkShared(shared);
    },
    async ed25519(seed): Promise<Signer> {
      const key = await subtle().importKey(
        "pkcs8",
        concat([ED25519_PKCS8, abytes(seed, 32, "seed")]),
        E,
        true,
        ["sign"],
      );
      return {
        publicKey: await publicOf(key),
        sign: async (m: Bytes) =>
          new Uint8Array(await subtle().sign(E, key, abytes(m, undefined, "message"))),
      };
    },
    async ed25519Verify(publicKey, message, signature) {
      abytes(message, undefined, "message");
      if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
      if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
      try {
        const pk = await subtle().importKey("raw", publicKey, E, true, ["verify"]);
        return await subtle().verify(E, pk, signature, message);
      } catch {
        return false;
      }
    },
  };
}

type Hashes = Pick<CryptoProvider, "sha256" | "hmacSha256" | "hkdf">;

function nobleHashes(): Hashes {
  return {
    sha256: (d) => nobleSha256(abytes(d, undefined, "data")),
    hmacSha256: (k, d) =>
      nobleHmac(nobleSha256, abytes(k, undefined, "key"), abytes(d, undefined, "data")),
    hkdf: (ikm, salt, info, length) =>
      nobleHkdf(nobleSha256, ikm, salt, info, aint(length, 0, 255 * 32, "length")),
  };
}

function nodeHashes(nc: NodeCrypto): Hashes {
  return {
    sha256: (d) => view(nc.createHash("sha256").update(abytes(d, undefined, "data")).digest()),
    hmacSha256: (k, d) =>
      view(
        nc.createHmac("sha256", abytes(k, undefined, "key")).update(abytes(d, undefined, "data"))
          .digest(),
      ),
    hkdf(ikm, salt, info, length) {
      aint(length, 0, 255 * 32, "length");
      abytes(ikm, undefined, "ikm");
      abytes(salt, undefined, "salt");
      abytes(info, undefined, "info");
      if (length === 0) return new Uint8Array(0);
      return new Uint8Array(nc.hkdfSync("sha256", ikm, salt, info, length));
    },
  };
}

/** Options of {@link createNativeCrypto}. Defaults are the fastest measured choices. */
export interface NativeCryptoOptions {
  /**
   * AES-GCM: `"node"` (node:crypto), `"webcrypto"`, or `"auto"` (node:crypto below 2 KiB,
   * WebCrypto from 2 KiB). Default `"auto"` under Deno (its node:crypto AES-GCM is twice as fast
   * on small messages and four times slower on large ones), `"webcrypto"` in browsers, else
   * `"node"`.
   */
  readonly aead?: "node" | "webcrypto" | "auto";
  /** X25519 and Ed25519: default `"node"` wherever node:crypto exists, else `"webcrypto"`. */
  readonly curves?: "node" | "webcrypto";
  /** SHA-256, HMAC, HKDF: default `"node"` wherever node:crypto exists, else `"noble"`. */
  readonly hashes?: "node" | "noble";
}

/**
 * Builds a native crypto provider for the running runtime.
 *
 * @param options Implementation choices per primitive; the defaults are the fastest measured.
 * @returns The provider.
 * @throws {RelayError} `unsupported` when a `"node"` choice is asked for without node:crypto.
 * @example
 * ```ts
 * import { createNativeCrypto } from "./native.ts";
 * const c = createNativeCrypto();
 * const aead = await c.aesGcm(c.randomBytes(32));
 * const sealed = await aead.seal(new Uint8Array(12), new TextEncoder().encode("hi"));
 * ```
 */
export function createNativeCrypto(options: NativeCryptoOptions = {}): CryptoProvider {
  const nc = loadNodeCrypto();
  const aeadImpl = options.aead ??
    (nc === undefined ? "webcrypto" : runtimeName() === "deno" ? "auto" : "node");
  const curvesImpl = options.curves ?? (nc === undefined ? "webcrypto" : "node");
  const hashesImpl = options.hashes ?? (nc === undefined ? "noble" : "node");
  if (
    nc === undefined &&
    (aeadImpl !== "webcrypto" || curvesImpl === "node" || hashesImpl === "node")
  ) {
    throw new RelayError("unsupported", "node:crypto is not available in this runtime");
  }
  return {
    name: `native(aead=${aeadImpl},curves=${curvesImpl},hashes=${hashesImpl})`,
    randomBytes: secureRandom,
    ...(hashesImpl === "node" ? nodeHashes(nc!) : nobleHashes()),
    ...(curvesImpl === "node" ? nodeCurves(nc!) : webCurves()),
    async aesGcm(key) {
      abytes(key, 32, "key");
      if (aeadImpl === "node") return new NodeAead(nc!, key);
      return aeadImpl === "auto" ? autoAead(nc!, key) : await webAead(key);
    },
  };
}

let cached: CryptoProvider | undefined;

/**
 * The default native provider, created on first use and shared.
 *
 * @returns The provider.
 * @example
 * ```ts
 * import { nativeCrypto } from "./native.ts";
 * console.log(nativeCrypto().name);
 * ```
 */
export function nativeCrypto(): CryptoProvider {
  return (cached ??= createNativeCrypto());
}
