import assert from "node:assert/strict";
import { test } from "node:test";
import { fromBase64Url, toBase64Url, toHex } from "../../src/bytes.ts";
import { nobleCrypto } from "../../src/crypto/noble.ts";
import {
  generationSecret,
  grantMessage,
  keyIndexOf,
  READ_TOKEN_PREFIX,
  ReadCapability,
  readerSigner,
  streamDataKey,
  verifyGrant,
} from "../../src/protocol/capability.ts";
import { Session, streamTag } from "../../src/protocol/session.ts";
import { providers } from "../crypto/_providers.ts";
import { KAT } from "./_kat.ts";

/** docs/PROTOCOL.md §8 (hydra/2 draft): the read capability of the hydra/1 vector's session. */
const V = {
  g0: "e01654a896eec7c593672d528e8a3900c932c4e6a06e1aabdcf8f483954c06e8",
  g1: "e92fea27e0267d23c1b03fec821e8b770d247fd4fbfe62cb7606df8c9f0c6a21",
  readerKey0: "499c19498e4a3e4cc52102141b99326ac59dcbcb99756261ab2c5d0e1cafa1f8",
  grant0:
    "fefd53c6f55bac46f3bce061e47a52922327a5b50346cde50e4a5a27371d932ea53ae9fee42292f6e9e2ca0209c83b7f91ed68797e3e27b17b8fdd20c7e61305",
  dataKey0: "42f23d8faf01ae5feb60f06d646582307bbc77fac326e71db3f89574c8854fb7",
  dataKey1: "2eb1b5df887b0fed750573436d1099d3e646b841ca1cca473d8c2ca124940513",
  token:
    "hydra2r_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-PwAAAABlkC_t0mk8041E1vlpNBmCEnGwYbCIKdMaC1K_mjwx4-AWVKiW7sfFk2ctUo6KOQDJMsTmoG4aq9z49IOVTAbo_v1TxvVbrEbzvOBh5HpSkiMnpbUDRs3lDkpaJzcdky6lOun-5CKS9uniygIJyDt_ke1oeX4-J7F7j90gx-YTBdaqlag",
};

for (const c of providers()) {
  test(`ReadCapability (${c.name}) derives the documented generation secrets, reader key, grant and data keys`, async () => {
    const s = KAT.session;
    assert.equal(toHex(generationSecret(c, s, 0)), V.g0);
    assert.equal(toHex(generationSecret(c, s, 1)), V.g1);
    const reader = await readerSigner(c, generationSecret(c, s, 0), s.id);
    assert.equal(toHex(reader.publicKey), V.readerKey0);
    const read = await ReadCapability.mint(c, s, 0);
    assert.equal(read.token(), V.token);
    const k = await read.keys(c);
    assert.equal(toHex(k.routeId), KAT.routeId, "the route id is the writer's, unchanged");
    assert.equal(toHex(k.streamTag), KAT.streamTag);
    assert.equal(toHex(k.readerKey), V.readerKey0);
    assert.equal(toHex(k.grant), V.grant0);
    assert.equal(toHex(read.dataKey(c, KAT.epoch, 0, 0)), V.dataKey0);
    assert.equal(toHex(read.dataKey(c, KAT.epoch, 0, 1)), V.dataKey1);
    assert.equal(toHex(s.dataKey(c, KAT.epoch, 0, 1)), V.dataKey1);
    assert.throws(() => read.dataKey(c, KAT.epoch, 1, 0), /cannot read generation 1/);
    assert.equal(read.canRead(0), true);
    assert.equal(read.canRead(1), false);
    assert.equal(
      toHex(streamDataKey(c, generationSecret(c, s, 0), s.id, KAT.epoch, 0)),
      V.dataKey0,
      "the writer derives the same data keys from the session",
    );
    assert.equal(await verifyGrant(c, k.routeId, 0, k.readerKey, k.grant), true);
  });
}

test("ReadCapability: its token round-trips, and tells nothing the writer's key would", async () => {
  const c = nobleCrypto;
  const read = ReadCapability.fromToken(`  ${V.token}\n`);
  assert.equal(read.generation, 0);
  assert.equal(read.token(), V.token);
  assert.equal(V.token.length, 275);
  assert.ok(V.token.startsWith(READ_TOKEN_PREFIX));
  assert.ok(!V.token.startsWith("hydra1_"), "a person can tell read and write tokens apart");
  // The reader signs as the reader, never as the writer (the route id).
  const k = await read.keys(c);
  assert.notEqual(toHex(k.signer.publicKey), toHex(k.routeId));
  // Nothing of the session key is in the token: every 32-byte window differs from it.
  const raw = fromBase64Url(V.token.slice(READ_TOKEN_PREFIX.length));
  for (let i = 0; i + 32 <= raw.length; i++) {
    assert.notEqual(toHex(raw.subarray(i, i + 32)), toHex(KAT.session.key));
  }
  assert.equal(String(read), "ReadCapability(generation 0, <redacted>)");
  assert.equal(JSON.stringify({ read }), '{"read":"ReadCapability(generation 0, <redacted>)"}');
});

test("ReadCapability: generations are independent, and each grant names one generation and key", async () => {
  const c = nobleCrypto;
  const s = Session.generate(c);
  const r0 = await ReadCapability.mint(c, s, 0);
  const r1 = await ReadCapability.mint(c, s, 1);
  const k0 = await r0.keys(c);
  const k1 = await r1.keys(c);
  const epoch = c.randomBytes(16);
  assert.notEqual(toHex(r0.dataKey(c, epoch, 0, 0)), toHex(r1.dataKey(c, epoch, 1, 0)));
  assert.notEqual(toHex(k0.readerKey), toHex(k1.readerKey));
  assert.equal(await verifyGrant(c, k1.routeId, 1, k1.readerKey, k1.grant), true);
  // A grant moved to another generation, key or session does not verify.
  assert.equal(await verifyGrant(c, k0.routeId, 1, k0.readerKey, k0.grant), false);
  assert.equal(await verifyGrant(c, k0.routeId, 0, k1.readerKey, k0.grant), false);
  const other = await (await ReadCapability.mint(c, Session.generate(c), 0)).keys(c);
  assert.equal(await verifyGrant(c, other.routeId, 0, k0.readerKey, k0.grant), false);
  // A reader cannot mint a grant: its own signature over a grant message is not the writer's.
  const forged = await k0.signer.sign(grantMessage(k0.routeId, 1, k0.readerKey));
  assert.equal(await verifyGrant(c, k0.routeId, 1, k0.readerKey, forged), false);
  // Malformed input is false, never a throw.
  assert.equal(await verifyGrant(c, k0.routeId, 0, k0.readerKey, new Uint8Array(3)), false);
  assert.equal(streamTag(c, k0.routeId).length, 8);
});

test("ReadCapability.fromToken rejects malformed tokens with a clear TypeError that never echoes them", () => {
  const t = V.token;
  const bad: [string, RegExp][] = [
    ["", /must start with "hydra2r_"/],
    [KAT.token, /must start with "hydra2r_"/],
    [t.slice(0, -1), /not valid base64url/],
    [READ_TOKEN_PREFIX + toBase64Url(new Uint8Array(199)), /holds 199 bytes, expected 200/],
    [t.slice(0, 30) + (t[30] === "A" ? "B" : "A") + t.slice(31), /checksum mismatch/],
  ];
  for (const [token, message] of bad) {
    assert.throws(() => ReadCapability.fromToken(token), (e: Error) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, message);
      assert.ok(token.length < 12 || !e.message.includes(token.slice(8, 40)));
      return true;
    });
  }
  assert.throws(() => ReadCapability.fromToken(7 as unknown as string), TypeError);
});

test("keyIndexOf moves to the next data key every 2^24 frames", () => {
  assert.equal(keyIndexOf(0n), 0);
  assert.equal(keyIndexOf(2n ** 24n - 1n), 0);
  assert.equal(keyIndexOf(2n ** 24n), 1);
  assert.equal(keyIndexOf(5n * 2n ** 24n + 3n), 5);
});
