/**
 * Known-answer tests for both crypto adapters, with vectors from the public standards:
 * RFC 7748 (X25519), RFC 8032 (Ed25519), the GCM specification test cases (McGrew & Viega),
 * RFC 5869 (HKDF), RFC 4231 (HMAC-SHA256), FIPS 180 examples (SHA-256).
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { fromHex, toHex } from "../../src/bytes.ts";
import { RelayError } from "../../src/errors.ts";
import { providers } from "./_providers.ts";

const enc = new TextEncoder();
const h = fromHex;

const isAuthFailed = (e: unknown) => e instanceof RelayError && e.code === "auth-failed";

for (const c of providers()) {
  test(`${c.name} sha256 matches FIPS 180 examples`, () => {
    assert.equal(
      toHex(c.sha256(new Uint8Array(0))),
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    assert.equal(
      toHex(c.sha256(enc.encode("abc"))),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    assert.equal(
      toHex(c.sha256(enc.encode("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    );
  });

  test(`${c.name} hmacSha256 matches RFC 4231 test cases 1, 2 and 6`, () => {
    assert.equal(
      toHex(c.hmacSha256(new Uint8Array(20).fill(0x0b), enc.encode("Hi There"))),
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    );
    assert.equal(
      toHex(c.hmacSha256(enc.encode("Jefe"), enc.encode("what do ya want for nothing?"))),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
    // Test case 6: a key longer than the block size is hashed first.
    assert.equal(
      toHex(
        c.hmacSha256(
          new Uint8Array(131).fill(0xaa),
          enc.encode("Test Using Larger Than Block-Size Key - Hash Key First"),
        ),
      ),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    );
  });

  test(`${c.name} hkdf matches RFC 5869 test cases 1 and 3`, () => {
    assert.equal(
      toHex(
        c.hkdf(
          new Uint8Array(22).fill(0x0b),
          h("000102030405060708090a0b0c"),
          h("f0f1f2f3f4f5f6f7f8f9"),
          42,
        ),
      ),
      "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    );
    assert.equal(
      toHex(c.hkdf(new Uint8Array(22).fill(0x0b), new Uint8Array(0), new Uint8Array(0), 42)),
      "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    );
    assert.equal(c.hkdf(new Uint8Array(1), new Uint8Array(0), new Uint8Array(0), 0).length, 0);
    assert.throws(
      () => c.hkdf(new Uint8Array(1), new Uint8Array(0), new Uint8Array(0), 255 * 32 + 1),
      RangeError,
    );
  });

  test(`${c.name} x25519 matches RFC 7748 section 5.2 and 6.1`, async () => {
    const out = await c.x25519(
      h("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
      h("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
    );
    assert.equal(toHex(out), "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    const alice = await c.x25519KeyPair(
      h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
    );
    const bob = await c.x25519KeyPair(
      h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
    );
    assert.equal(
      toHex(alice.publicKey),
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
    );
    assert.equal(
      toHex(bob.publicKey),
      "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
    );
    const shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
    assert.equal(toHex(await c.x25519(alice.privateKey, bob.publicKey)), shared);
    assert.equal(toHex(await c.x25519(bob.privateKey, alice.publicKey)), shared);
  });

  test(`${c.name} x25519 rejects low-order points with auth-failed`, async () => {
    const sk = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    const lowOrder = [
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0100000000000000000000000000000000000000000000000000000000000000",
      "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
      "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];
    for (const p of lowOrder) await assert.rejects(c.x25519(sk, h(p)), isAuthFailed, p);
  });

  test(`${c.name} ed25519 matches RFC 8032 section 7.1 tests 1 to 3`, async () => {
    const vectors = [
      [
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
      ],
      [
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
      ],
      [
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
      ],
    ] as const;
    for (const [seed, pub, msg, sig] of vectors) {
      const signer = await c.ed25519(h(seed));
      assert.equal(toHex(signer.publicKey), pub);
      assert.equal(toHex(await signer.sign(h(msg))), sig);
      assert.equal(await c.ed25519Verify(h(pub), h(msg), h(sig)), true);
      const bad = h(sig);
      bad[10]! ^= 1;
      assert.equal(await c.ed25519Verify(h(pub), h(msg), bad), false);
      assert.equal(await c.ed25519Verify(h(pub), enc.encode("other"), h(sig)), false);
    }
    assert.equal(
      await c.ed25519Verify(new Uint8Array(31), new Uint8Array(0), new Uint8Array(64)),
      false,
    );
    assert.equal(
      await c.ed25519Verify(new Uint8Array(32), new Uint8Array(0), new Uint8Array(63)),
      false,
    );
  });

  test(`${c.name} aesGcm matches GCM specification test cases 13 to 16`, async () => {
    const zeroKey = await c.aesGcm(new Uint8Array(32));
    const iv0 = new Uint8Array(12);
    assert.equal(
      toHex(await zeroKey.seal(iv0, new Uint8Array(0))),
      "530f8afbc74536b9a963b4f1c4cb738b",
    );
    assert.equal(
      toHex(await zeroKey.seal(iv0, new Uint8Array(16))),
      "cea7403d4d606b6e074ec5d3baf39d18" + "d0d1c8a799996bf0265b98b5d48ab919",
    );
    const key = await c.aesGcm(
      h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"),
    );
    const iv = h("cafebabefacedbaddecaf888");
    const p =
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
    const ct =
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";
    assert.equal(toHex(await key.seal(iv, h(p))), ct + "b094dac5d93471bdec1a502270e3cc6c");
    const aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    const sealed16 = await key.seal(iv, h(p.slice(0, 120)), aad);
    assert.equal(toHex(sealed16), ct.slice(0, 120) + "76fc6ece0f4e1768cddf8853bb2d551b");
    assert.equal(toHex(await key.open(iv, sealed16, aad)), p.slice(0, 120));
  });

  test(`${c.name} aesGcm open fails with one generic error on any tampering`, async () => {
    const key = await c.aesGcm(
      h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"),
    );
    const iv = h("cafebabefacedbaddecaf888");
    const aad = enc.encode("header");
    const sealed = await key.seal(iv, enc.encode("attack at dawn"), aad);
    const cases: [string, Uint8Array, Uint8Array, Uint8Array][] = [];
    for (const at of [0, 5, sealed.length - 16, sealed.length - 1]) {
      const t = sealed.slice();
      t[at]! ^= 0x01;
      cases.push([`bit flip at ${at}`, iv, t, aad]);
    }
    cases.push(["wrong aad", iv, sealed, enc.encode("headeR")]);
    cases.push(["missing aad", iv, sealed, new Uint8Array(0)]);
    const iv2 = iv.slice();
    iv2[11]! ^= 1;
    cases.push(["wrong nonce", iv2, sealed, aad]);
    cases.push(["truncated tag", iv, sealed.subarray(0, sealed.length - 1), aad]);
    cases.push(["shorter than a tag", iv, sealed.subarray(0, 15), aad]);
    cases.push(["empty", iv, new Uint8Array(0), aad]);
    const messages = new Set<string>();
    for (const [name, n, s, a] of cases) {
      await assert.rejects(key.open(n, s, a), (e: unknown) => {
        if (!isAuthFailed(e)) return false;
        messages.add((e as Error).message);
        return true;
      }, name);
    }
    assert.deepEqual([...messages], ["authentication failed"]);
  });

  test(`${c.name} rejects malformed arguments with TypeError naming the argument`, async () => {
    await assert.rejects(c.aesGcm(new Uint8Array(16)), {
      name: "TypeError",
      message: '"key" expected 32 bytes, got 16',
    });
    const key = await c.aesGcm(new Uint8Array(32));
    await assert.rejects(key.seal(new Uint8Array(8), new Uint8Array(1)), {
      name: "TypeError",
      message: '"nonce" expected 12 bytes, got 8',
    });
    await assert.rejects(c.x25519(new Uint8Array(31), new Uint8Array(32)), TypeError);
    await assert.rejects(c.ed25519(new Uint8Array(64)), TypeError);
    assert.throws(() => c.randomBytes(-1), RangeError);
  });
}
