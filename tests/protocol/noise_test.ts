/**
 * Noise handshake tests: replays the Cacophony test vectors (tests/protocol/vectors/
 * noise.json, the `25519_AESGCM_SHA256` suites of NN, NK, NX and XX) byte for byte with
 * every crypto provider, then checks failure behaviour.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { fromHex, toHex } from "../../src/bytes.ts";
import { nobleCrypto } from "../../src/crypto/noble.ts";
import type { CryptoProvider } from "../../src/crypto/types.ts";
import { RelayError } from "../../src/errors.ts";
import { NoiseHandshake, type NoiseHandshakeOptions } from "../../src/protocol/noise.ts";
import { providers } from "../crypto/_providers.ts";

interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_ephemeral: string;
  init_static?: string;
  init_remote_static?: string;
  resp_prologue: string;
  resp_ephemeral: string;
  resp_static?: string;
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

const vectorFile = new URL("./vectors/noise.json", import.meta.url);
// Node runs the compiled test from npm/tests/: the fixture stays in the source tree.
const path = fileURLToPath(vectorFile).replace(/([/\\])npm[/\\]tests[/\\]/, "$1tests$1");
const vectors = (JSON.parse(readFileSync(path, "utf8")) as { vectors: Vector[] }).vectors;
const aesgcm = vectors.filter((v) => v.protocol_name.includes("_AESGCM_"));

async function sides(c: CryptoProvider, v: Vector): Promise<[NoiseHandshake, NoiseHandshake]> {
  const pattern = v.protocol_name.split("_")[1] as NoiseHandshakeOptions["pattern"];
  const kp = async (hex: string | undefined) =>
    hex === undefined ? undefined : await c.x25519KeyPair(fromHex(hex));
  const opt = <T>(key: string, value: T | undefined) => value === undefined ? {} : { [key]: value };
  const init = new NoiseHandshake(c, {
    pattern,
    initiator: true,
    prologue: fromHex(v.init_prologue),
    ...opt("ephemeralKey", await kp(v.init_ephemeral)),
    ...opt("staticKey", await kp(v.init_static)),
    ...opt(
      "remoteStaticKey",
      v.init_remote_static === undefined ? undefined : fromHex(v.init_remote_static),
    ),
  });
  const resp = new NoiseHandshake(c, {
    pattern,
    initiator: false,
    prologue: fromHex(v.resp_prologue),
    ...opt("ephemeralKey", await kp(v.resp_ephemeral)),
    ...opt("staticKey", await kp(v.resp_static)),
  });
  return [init, resp];
}

test("noise vectors fixture holds the NN, NK, NX and XX AESGCM suites", () => {
  assert.deepEqual(aesgcm.map((v) => v.protocol_name.split("_")[1]).sort(), [
    "NK",
    "NN",
    "NX",
    "XX",
  ]);
});

for (const c of providers()) {
  for (const v of aesgcm) {
    test(`NoiseHandshake (${c.name}) reproduces ${v.protocol_name} byte for byte`, async () => {
      const [init, resp] = await sides(c, v);
      let i = 0;
      for (; !init.complete; i++) {
        const [w, r] = i % 2 === 0 ? [init, resp] : [resp, init];
        const { payload, ciphertext } = v.messages[i]!;
        const ct = await w.writeMessage(fromHex(payload));
        assert.equal(toHex(ct), ciphertext, `handshake message ${i}`);
        assert.equal(toHex(await r.readMessage(ct)), payload);
      }
      assert.ok(resp.complete);
      const ri = await init.result();
      const rr = await resp.result();
      assert.equal(toHex(ri.handshakeHash), v.handshake_hash);
      assert.equal(toHex(rr.handshakeHash), v.handshake_hash);
      if (v.resp_static !== undefined) {
        assert.equal(
          toHex(ri.remoteStaticKey!),
          toHex((await c.x25519KeyPair(fromHex(v.resp_static))).publicKey),
        );
      }
      for (; i < v.messages.length; i++) {
        const [w, r] = i % 2 === 0 ? [ri, rr] : [rr, ri];
        const { payload, ciphertext } = v.messages[i]!;
        const ct = await w.send.encryptWithAd(new Uint8Array(0), fromHex(payload));
        assert.equal(toHex(ct), ciphertext, `transport message ${i}`);
        assert.equal(toHex(await r.recv.decryptWithAd(new Uint8Array(0), ct)), payload);
      }
    });
  }
}

const nx = aesgcm.find((v) => v.protocol_name === "Noise_NX_25519_AESGCM_SHA256")!;
const isAuth = (e: unknown) => e instanceof RelayError && e.code === "auth-failed";
const isProtocol = (e: unknown) => e instanceof RelayError && e.code === "protocol-error";

test("NoiseHandshake rejects every single-bit flip of the NX responder message", async () => {
  const [init0, resp0] = await sides(nobleCrypto, nx);
  const m1 = await init0.writeMessage(fromHex(nx.messages[0]!.payload));
  await resp0.readMessage(m1);
  const m2 = await resp0.writeMessage(fromHex(nx.messages[1]!.payload));
  // Flipping a bit of the responder's ephemeral changes every key after it; flipping the
  // encrypted static or payload breaks a tag. Every byte position must fail.
  for (let at = 0; at < m2.length; at += 7) {
    const [init] = await sides(nobleCrypto, nx);
    await init.writeMessage(fromHex(nx.messages[0]!.payload));
    const bad = m2.slice();
    bad[at]! ^= 0x10;
    await assert.rejects(init.readMessage(bad), isAuth, `byte ${at}`);
    await assert.rejects(init.result(), isProtocol);
  }
});

test("NoiseHandshake rejects a truncated or empty NX responder message", async () => {
  for (const len of [0, 10, 32, 48, 95]) {
    const [init] = await sides(nobleCrypto, nx);
    await init.writeMessage(new Uint8Array(0));
    await assert.rejects(init.readMessage(new Uint8Array(len)), isAuth, `length ${len}`);
  }
});

test("NoiseHandshake rejects a low-order ephemeral from the peer with auth-failed", async () => {
  const relayKey = await nobleCrypto.x25519KeyPair();
  const prologue = new TextEncoder().encode("p");
  const resp = new NoiseHandshake(nobleCrypto, {
    pattern: "NX",
    initiator: false,
    prologue,
    staticKey: relayKey,
  });
  await assert.rejects(
    resp.readMessage(new Uint8Array(32)).then(() => resp.writeMessage(new Uint8Array(0))),
    isAuth,
  );
});

test("NoiseHandshake refuses out-of-turn calls and a mismatched prologue", async () => {
  const relayKey = await nobleCrypto.x25519KeyPair();
  const mk = (initiator: boolean, p: string) =>
    new NoiseHandshake(nobleCrypto, {
      pattern: "NX",
      initiator,
      prologue: new TextEncoder().encode(p),
      staticKey: relayKey,
    });
  const init = mk(true, "hydra/1");
  const resp = mk(false, "hydra/0");
  await assert.rejects(resp.writeMessage(new Uint8Array(0)), isProtocol);
  await assert.rejects(init.readMessage(new Uint8Array(48)), isProtocol);
  await resp.readMessage(await init.writeMessage(new Uint8Array(0)));
  // The prologue is hashed in: a different one makes the responder's tag fail.
  await assert.rejects(init.readMessage(await resp.writeMessage(new Uint8Array(0))), isAuth);
  assert.throws(
    () =>
      new NoiseHandshake(nobleCrypto, {
        pattern: "NX",
        initiator: false,
        prologue: new Uint8Array(0),
      }),
    TypeError,
  );
});

test("CipherState advances its nonce only when decryption succeeds", async () => {
  const [init, resp] = await sides(nobleCrypto, nx);
  await resp.readMessage(await init.writeMessage(new Uint8Array(0)));
  await init.readMessage(await resp.writeMessage(new Uint8Array(0)));
  const a = await init.result();
  const b = await resp.result();
  const ct = await a.send.encryptWithAd(new Uint8Array(0), new TextEncoder().encode("one"));
  const bad = ct.slice();
  bad[0]! ^= 1;
  await assert.rejects(b.recv.decryptWithAd(new Uint8Array(0), bad), isAuth);
  assert.equal(b.recv.nonce, 0n);
  assert.equal(new TextDecoder().decode(await b.recv.decryptWithAd(new Uint8Array(0), ct)), "one");
  assert.equal(b.recv.nonce, 1n);
  // A replay of the same ciphertext is a different nonce now, so it fails.
  await assert.rejects(b.recv.decryptWithAd(new Uint8Array(0), ct), isAuth);
});
