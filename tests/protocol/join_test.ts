import assert from "node:assert/strict";
import { test } from "node:test";
import { fromHex, toHex } from "../../src/bytes.ts";
import { nobleCrypto } from "../../src/crypto/noble.ts";
import { joinMessage, Role, signJoin, verifyJoin } from "../../src/protocol/join.ts";
import { Session } from "../../src/protocol/session.ts";
import { providers } from "../crypto/_providers.ts";
import { KAT } from "./_kat.ts";

const claim = {
  handshakeHash: new Uint8Array(32).fill(0x11),
  role: Role.Consumer,
  options: new Uint8Array([1, 2, 3]),
};

for (const c of providers()) {
  test(`signJoin/verifyJoin (${c.name}) reproduce the documented proof and verify it`, async () => {
    const keys = await KAT.session.keys(c);
    assert.equal(toHex(await signJoin(keys.signer, claim)), KAT.proof);
    assert.equal(
      await verifyJoin(c, { ...claim, routeId: keys.routeId, proof: fromHex(KAT.proof) }),
      true,
    );
  });
}

test("verifyJoin rejects a proof moved to another connection, role, options or session", async () => {
  const keys = await KAT.session.keys(nobleCrypto);
  const proof = await signJoin(keys.signer, claim);
  const ok = { ...claim, routeId: keys.routeId, proof };
  assert.equal(await verifyJoin(nobleCrypto, ok), true);
  const otherHash = new Uint8Array(32).fill(0x12);
  assert.equal(
    await verifyJoin(nobleCrypto, { ...ok, handshakeHash: otherHash }),
    false,
    "replayed on another connection",
  );
  assert.equal(
    await verifyJoin(nobleCrypto, { ...ok, role: Role.Producer }),
    false,
    "consumer proof used as producer",
  );
  assert.equal(
    await verifyJoin(nobleCrypto, { ...ok, options: new Uint8Array([1, 2, 4]) }),
    false,
    "options changed",
  );
  const other = await Session.generate(nobleCrypto).keys(nobleCrypto);
  assert.equal(
    await verifyJoin(nobleCrypto, { ...ok, routeId: other.routeId }),
    false,
    "another session's route id",
  );
  // A key holder of another session cannot join this one.
  assert.equal(
    await verifyJoin(nobleCrypto, { ...ok, proof: await signJoin(other.signer, claim) }),
    false,
  );
});

test("verifyJoin answers false, never throws, for malformed input", async () => {
  const keys = await KAT.session.keys(nobleCrypto);
  const base = { ...claim, routeId: keys.routeId, proof: new Uint8Array(64) };
  for (
    const attempt of [
      { ...base, role: 0 },
      { ...base, role: 3 },
      { ...base, handshakeHash: new Uint8Array(31) },
      { ...base, proof: new Uint8Array(63) },
      { ...base, routeId: new Uint8Array(5) },
      { ...base, options: "x" as unknown as Uint8Array },
    ]
  ) {
    assert.equal(await verifyJoin(nobleCrypto, attempt), false);
  }
});

test("joinMessage frames the options length so fields cannot be shifted", () => {
  const a = joinMessage({ ...claim, options: new Uint8Array([1]) });
  const b = joinMessage({ ...claim, options: new Uint8Array([1, 0]) });
  assert.notEqual(toHex(a), toHex(b.subarray(0, a.length)));
  assert.throws(() => joinMessage({ ...claim, role: 9 as Role }), RangeError);
});
