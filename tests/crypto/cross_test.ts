/**
 * Randomized cross-tests: the noble (reference) and native adapters must produce
 * byte-identical outputs and open each other's ciphertexts.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { toHex } from "../../src/bytes.ts";
import { nobleCrypto } from "../../src/crypto/noble.ts";
import { providers } from "./_providers.ts";

const ROUNDS = 40;
const natives = providers().filter((p) => p !== nobleCrypto);
const r = nobleCrypto.randomBytes;
const randLen = (max: number) => r(4).reduce((a, b) => a * 256 + b, 0) % (max + 1);

for (const n of natives) {
  test(`${n.name} and noble agree on sha256 and hmacSha256 of random inputs`, () => {
    for (let i = 0; i < ROUNDS; i++) {
      const data = r(randLen(3000));
      const key = r(randLen(200));
      assert.equal(toHex(n.sha256(data)), toHex(nobleCrypto.sha256(data)));
      assert.equal(toHex(n.hmacSha256(key, data)), toHex(nobleCrypto.hmacSha256(key, data)));
      // A view into a larger buffer (frames are hashed where they lie).
      const view = data.subarray(data.length >> 2, data.length - (data.length >> 3));
      assert.equal(toHex(n.sha256(view)), toHex(nobleCrypto.sha256(view.slice())));
    }
  });

  test(`${n.name} and noble agree on random hkdf inputs exactly`, () => {
    for (let i = 0; i < ROUNDS; i++) {
      const ikm = r(randLen(100));
      const salt = r(randLen(100));
      const info = r(randLen(100));
      const len = 1 + randLen(500);
      assert.equal(
        toHex(n.hkdf(ikm, salt, info, len)),
        toHex(nobleCrypto.hkdf(ikm, salt, info, len)),
      );
    }
  });

  test(`${n.name} and noble agree on random X25519 keys and shared secrets`, async () => {
    for (let i = 0; i < ROUNDS / 4; i++) {
      const a = await n.x25519KeyPair();
      const b = await nobleCrypto.x25519KeyPair();
      assert.equal(
        toHex((await nobleCrypto.x25519KeyPair(a.privateKey)).publicKey),
        toHex(a.publicKey),
      );
      assert.equal(
        toHex(await n.x25519(a.privateKey, b.publicKey)),
        toHex(await nobleCrypto.x25519(b.privateKey, a.publicKey)),
      );
    }
  });

  test(`${n.name} and noble agree on Ed25519 keys and signatures and verify each other`, async () => {
    for (let i = 0; i < ROUNDS / 4; i++) {
      const seed = r(32);
      const msg = r(randLen(500));
      const sn = await n.ed25519(seed);
      const sr = await nobleCrypto.ed25519(seed);
      assert.equal(toHex(sn.publicKey), toHex(sr.publicKey));
      const sig = await sn.sign(msg);
      assert.equal(toHex(sig), toHex(await sr.sign(msg)));
      assert.equal(await nobleCrypto.ed25519Verify(sn.publicKey, msg, sig), true);
      assert.equal(await n.ed25519Verify(sr.publicKey, msg, await sr.sign(msg)), true);
    }
  });

  test(`${n.name} and noble seal identically and open each other's ciphertexts`, async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const keyBytes = r(32);
      const nonce = r(12);
      const pt = r(randLen(i % 4 === 0 ? 70_000 : 600));
      const aad = r(randLen(64));
      const kn = await n.aesGcm(keyBytes);
      const kr = await nobleCrypto.aesGcm(keyBytes);
      const sn = await kn.seal(nonce, pt, aad);
      const sr = await kr.seal(nonce, pt, aad);
      assert.equal(toHex(sn), toHex(sr));
      assert.equal(toHex(await kr.open(nonce, sn, aad)), toHex(pt));
      assert.equal(toHex(await kn.open(nonce, sr, aad)), toHex(pt));
    }
  });

  test(`${n.name} open returns a plaintext whose buffer holds nothing else`, async () => {
    // A plaintext handed out without a copy must not be a view into pooled memory: its
    // `.buffer` would show other bytes to whoever reads it.
    const k = await n.aesGcm(r(32));
    for (const size of [0, 1, 64, 1000, 2047, 2048, 5000, 70_000]) {
      const nonce = r(12);
      const pt = r(size);
      const opened = await k.open(nonce, await k.seal(nonce, pt));
      assert.equal(toHex(opened), toHex(pt));
      assert.equal(opened.byteOffset, 0, `size ${size}`);
      assert.equal(opened.buffer.byteLength, size, `size ${size}`);
    }
  });

  test(`${n.name} and noble seal behind headroom: zeros, then the same bytes`, async () => {
    for (const room of [0, 1, 22, 4096]) {
      const keyBytes = r(32);
      const nonce = r(12);
      const pt = r(randLen(2000));
      for (const provider of [n, nobleCrypto]) {
        const k = await provider.aesGcm(keyBytes);
        const plain = await k.seal(nonce, pt);
        const roomy = await k.seal(nonce, pt, undefined, room);
        assert.equal(roomy.length, room + plain.length);
        assert.ok(roomy.subarray(0, room).every((b) => b === 0), "headroom is zero");
        assert.equal(toHex(roomy.subarray(room)), toHex(plain));
        assert.equal(toHex(await k.open(nonce, roomy.subarray(room))), toHex(pt));
      }
    }
    const k = await n.aesGcm(r(32));
    await assert.rejects(k.seal(r(12), r(4), undefined, -1), RangeError);
    await assert.rejects(k.seal(r(12), r(4), undefined, 1.5), RangeError);
  });
}
