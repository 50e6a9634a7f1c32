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
 * so this module also loads in browsers (_native_api.ts). This file picks and assembles; the
 * primitives are native_aead.ts and native_curves.ts, the hashes below.
 */

import { hkdf as nobleHkdf } from "@noble/hashes/hkdf.js";
import { hmac as nobleHmac } from "@noble/hashes/hmac.js";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { abytes, aint } from "../bytes.ts";
import { RelayError } from "../errors.ts";
import { runtimeName } from "../runtime.ts";
import { secureRandom } from "./_checks.ts";
import { loadNodeCrypto, type NodeCrypto, view } from "./_native_api.ts";
import { autoAead, NodeAead, webAead } from "./native_aead.ts";
import { nodeCurves, webCurves } from "./native_curves.ts";
import type { CryptoProvider } from "./types.ts";

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
  // crypto.hash where it exists: about twice as fast on small inputs (Node, Bun) and no Hash
  // object, whose native handle every scavenge visits (a digest per signed frame, docs/BENCHMARKS.md).
  const oneShot = typeof nc.hash === "function" ? nc.hash.bind(nc) : undefined;
  return {
    sha256: oneShot !== undefined
      ? (d) => view(oneShot("sha256", abytes(d, undefined, "data"), "buffer"))
      : (d) => view(nc.createHash("sha256").update(abytes(d, undefined, "data")).digest()),
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
