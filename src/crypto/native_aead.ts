/**
 * @module
 * AES-256-GCM for the native adapter (docs/PROTOCOL.md §5): node:crypto, WebCrypto, and the
 * size split Deno gets (`"auto"`), each keeping the `Aead` contract of types.ts (headroom,
 * uncopied output where the runtime allows, one error for every failure).
 */

import { abytes } from "../bytes.ts";
import { authFailed } from "../errors.ts";
import { behindHeadroom, headroomOf } from "./_checks.ts";
import { type Bytes, EMPTY, type NodeCrypto, subtle } from "./_native_api.ts";
import { type Aead, NONCE_LENGTH, TAG_LENGTH } from "./types.ts";

const GCM = { authTagLength: TAG_LENGTH } as const;

/**
 * AES-256-GCM through node:crypto. A class, not an object of closures: every connection holds
 * two of these for as long as it lives, so an idle connection pays for two small objects. The
 * key is kept as its 32 bytes, not a `KeyObject`: node:crypto takes either for each cipher
 * (the same cost per message, measured on Node, Bun and Deno), and a `KeyObject` is a native
 * handle and a wrapper more per key — two per idle connection on a relay.
 */
export class NodeAead implements Aead {
  readonly #nc: NodeCrypto;
  readonly #key: Uint8Array;

  constructor(nc: NodeCrypto, key: Bytes) {
    this.#nc = nc;
    this.#key = Uint8Array.from(key); // the caller may reuse its bytes
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
export function autoAead(nc: NodeCrypto, key: Bytes): Aead {
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

export async function webAead(key: Bytes): Promise<Aead> {
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
