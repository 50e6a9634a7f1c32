import assert from "node:assert/strict";
import { test } from "node:test";
import { toBase64Url, toHex } from "../../src/bytes.ts";
import { nobleCrypto } from "../../src/crypto/noble.ts";
import { Session, streamTag, TOKEN_PREFIX } from "../../src/protocol/session.ts";
import { providers } from "../crypto/_providers.ts";
import { KAT } from "./_kat.ts";

for (const c of providers()) {
  test(`Session (${c.name}) derives the documented route id, stream tag and data key`, async () => {
    const keys = await KAT.session.keys(c);
    assert.equal(toHex(keys.routeId), KAT.routeId);
    assert.equal(toHex(keys.streamTag), KAT.streamTag);
    assert.equal(toHex(streamTag(c, keys.routeId)), KAT.streamTag);
    assert.equal(toHex(KAT.session.dataKey(c, KAT.epoch)), KAT.dataKey);
  });
}

test("Session.token has the documented form and round-trips", () => {
  assert.equal(KAT.session.token(), KAT.token);
  assert.equal(KAT.token.length, 141);
  const back = Session.fromToken(`  ${KAT.token}\n`);
  assert.deepEqual(back.id, KAT.session.id);
  assert.deepEqual(back.key, KAT.session.key);
  const fresh = Session.generate(nobleCrypto);
  assert.deepEqual(Session.fromToken(fresh.token()).key, fresh.key);
});

test("Session.fromToken rejects malformed tokens with a clear TypeError that never echoes them", () => {
  const t = KAT.token;
  const bad: [string, RegExp][] = [
    ["", /must start with "hydra1_"/],
    ["hydra2_" + t.slice(7), /must start with "hydra1_"/],
    [t.slice(0, -1), /not valid base64url/],
    [TOKEN_PREFIX + toBase64Url(new Uint8Array(93)), /holds 93 bytes/],
    [TOKEN_PREFIX + toBase64Url(new Uint8Array(101)), /holds 101 bytes/],
    [t.slice(0, 20) + (t[20] === "A" ? "B" : "A") + t.slice(21), /checksum mismatch/],
    [t.slice(0, 30) + "+" + t.slice(31), /not valid base64url/],
  ];
  for (const [token, message] of bad) {
    assert.throws(() => Session.fromToken(token), (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, message);
      assert.ok(!e.message.includes(t.slice(TOKEN_PREFIX.length, TOKEN_PREFIX.length + 12)));
      return true;
    }, JSON.stringify(token.slice(0, 12)));
  }
  assert.throws(() => Session.fromToken(42 as unknown as string), TypeError);
});

test("Session never shows its secret in strings, JSON or inspection", async () => {
  const s = KAT.session;
  const shown = [String(s), JSON.stringify({ s }), `${s}`];
  const { inspect } = await import("node:util");
  shown.push(inspect(s));
  for (const text of shown) {
    assert.ok(text.includes("redacted"), text);
    assert.ok(!text.includes("4242"), text);
  }
});

test("Session rejects wrong lengths and keeps private copies", () => {
  assert.throws(() => new Session(new Uint8Array(63), new Uint8Array(32)), {
    message: '"id" expected 64 bytes, got 63',
  });
  assert.throws(() => new Session(new Uint8Array(64), new Uint8Array(16)), {
    message: '"key" expected 32 bytes, got 16',
  });
  const key = new Uint8Array(32).fill(1);
  const s = new Session(new Uint8Array(64), key);
  key[0] = 9;
  s.key[1] = 9;
  assert.equal(s.key[0], 1);
  assert.equal(s.key[1], 1);
  assert.throws(() => s.dataKey(nobleCrypto, new Uint8Array(15)), TypeError);
});

test("Session derivations separate sessions and epochs", async () => {
  const a = Session.generate(nobleCrypto);
  const b = Session.generate(nobleCrypto);
  const ka = await a.keys(nobleCrypto);
  const kb = await b.keys(nobleCrypto);
  assert.notEqual(toHex(ka.routeId), toHex(kb.routeId));
  assert.notEqual(toHex(ka.streamTag), toHex(kb.streamTag));
  const e1 = nobleCrypto.randomBytes(16);
  const e2 = nobleCrypto.randomBytes(16);
  assert.notEqual(toHex(a.dataKey(nobleCrypto, e1)), toHex(a.dataKey(nobleCrypto, e2)));
  // The same id with another key is another session entirely.
  const c = new Session(a.id, b.key);
  assert.notEqual(toHex((await c.keys(nobleCrypto)).routeId), toHex(ka.routeId));
});
