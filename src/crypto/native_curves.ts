/**
 * @module
 * X25519 and Ed25519 for the native adapter: node:crypto (keys imported from JWK, which reads
 * only `d`, so no DER decoder runs) and WebCrypto, each behind the `CryptoProvider` contract.
 */

import { abytes, concat, fromBase64Url, fromHex, toBase64Url } from "../bytes.ts";
import { authFailed } from "../errors.ts";
import { runtimeName } from "../runtime.ts";
import { checkShared, secureRandom } from "./_checks.ts";
import {
  type Bytes,
  type Jwk,
  type NodeCrypto,
  type NodeKey,
  subtle,
  view,
} from "./_native_api.ts";
import type { CryptoProvider, KeyPair, Signer } from "./types.ts";

// DER prefixes that wrap a raw 32-byte private key as PKCS#8 (RFC 8410).
const X25519_PKCS8 = fromHex("302e020100300506032b656e04220420");
const ED25519_PKCS8 = fromHex("302e020100300506032b657004220420");

/** Ed25519 public keys kept imported (the oldest go first). */
const VERIFIER_CACHE = 256;

/**
 * Measured on Node 20 (OpenSSL 3): importing a key from DER costs 190–780 µs, from a JWK
 * 16–93 µs, and a DH 44–66 µs. So keys are imported as JWK, public halves read back as JWK,
 * and a private X25519 key is imported once: its key object is kept beside the private key
 * bytes it belongs to (a `WeakMap` keyed by that `Uint8Array`), so the relay's static key and
 * each ephemeral key are imported once however many DHs use them.
 */
export function nodeCurves(
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
  // Ed25519 public keys by content: a stream's route id verifies every segment, and importing
  // the key costs about as much as the verification itself.
  const verifiers = new Map<string, NodeKey>();
  const verifier = (raw: Bytes): NodeKey => {
    const x = toBase64Url(raw);
    let k = verifiers.get(x);
    if (k === undefined) {
      k = nc.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" });
      if (verifiers.size >= VERIFIER_CACHE) verifiers.delete(verifiers.keys().next().value!);
      verifiers.set(x, k);
    }
    return k;
  };
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
        return nc.verify(null, message, verifier(publicKey), signature);
      } catch {
        return false;
      }
    },
  };
}

// ---- X25519 / Ed25519 through WebCrypto (browsers) ----
export function webCurves(): Pick<
  CryptoProvider,
  "x25519KeyPair" | "x25519" | "ed25519" | "ed25519Verify"
> {
  const X = { name: "X25519" };
  const E = { name: "Ed25519" };
  const publicOf = async (key: unknown) =>
    fromBase64Url((await subtle().exportKey("jwk", key)).x ?? "");
  // Ed25519 public keys by content, imported once (as in nodeCurves).
  const verifiers = new Map<string, Promise<unknown>>();
  const verifyKey = (raw: Bytes): Promise<unknown> => {
    const x = toBase64Url(raw);
    let k = verifiers.get(x);
    if (k === undefined) {
      k = subtle().importKey("raw", raw, E, true, ["verify"]);
      k.catch(() => verifiers.delete(x));
      if (verifiers.size >= VERIFIER_CACHE) verifiers.delete(verifiers.keys().next().value!);
      verifiers.set(x, k);
    }
    return k;
  };
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
        return await subtle().verify(E, await verifyKey(publicKey), signature, message);
      } catch {
        return false;
      }
    },
  };
}
