import assert from "node:assert/strict";
import { test } from "node:test";
import { fromHex, toHex } from "../../src/bytes.ts";
import { nobleCrypto } from "../../src/crypto/noble.ts";
import type { Aead } from "../../src/crypto/types.ts";
import { RelayError } from "../../src/errors.ts";
import {
  DATA_HEADER,
  DataFlag,
  decodeBatch,
  encodeBatch,
  openChecked,
  openData,
  parseDataHeader,
  sealData,
} from "../../src/protocol/data_frame.ts";
import { FrameDecoder, FrameType } from "../../src/protocol/framer.ts";
import { providers } from "../crypto/_providers.ts";
import { KAT } from "./_kat.ts";

const one = (bytes: Uint8Array) => new FrameDecoder(1 << 20).push(bytes)[0]!;
const isAuth = (e: unknown) => e instanceof RelayError && e.code === "auth-failed";
const isProtocol = (e: unknown) => e instanceof RelayError && e.code === "protocol-error";
const tag = fromHex(KAT.streamTag);
/** The documented KAT frame's input. */
const hello = {
  streamTag: tag,
  seq: 7n,
  flags: DataFlag.End,
  plaintext: new TextEncoder().encode("hello"),
};

for (const c of providers()) {
  test(`sealData/openData (${c.name}) reproduce the documented frame and open each other's`, async () => {
    const aead = await c.aesGcm(fromHex(KAT.dataKey));
    const frame = await sealData(aead, hello);
    assert.equal(toHex(frame), KAT.frame);
    const { header, plaintext } = await openData(
      await nobleCrypto.aesGcm(fromHex(KAT.dataKey)),
      one(frame),
    );
    assert.equal(new TextDecoder().decode(plaintext), "hello");
    assert.equal(header.seq, 7n);
    assert.equal(header.flags, DataFlag.End);
    assert.equal(toHex(header.streamTag), KAT.streamTag);
  });
}

for (const c of providers()) {
  test(`openChecked (${c.name}) opens a frame in place, its nonce from the wire's seq bytes`, async () => {
    const aead = await c.aesGcm(fromHex(KAT.dataKey));
    for (const seq of [0n, 7n, 2n ** 32n + 5n, 2n ** 53n + 1n, 2n ** 64n - 1n]) {
      const frame = await sealData(aead, { ...hello, seq });
      const plaintext = await openChecked(aead, frame);
      assert.equal(new TextDecoder().decode(plaintext), "hello", `seq ${seq}`);
      const bad = frame.slice();
      bad[DATA_HEADER - 1]! ^= 1; // the seq's last byte: another nonce and another AAD
      await assert.rejects(openChecked(aead, bad), isAuth, `seq ${seq}`);
    }
  });
}

test("openChecked rejects (never throws) when a custom AEAD throws instead of rejecting", async () => {
  const inner = await nobleCrypto.aesGcm(fromHex(KAT.dataKey));
  const throwing: Aead = {
    seal: (nonce, plaintext, aad) => inner.seal(nonce, plaintext, aad),
    open: () => {
      throw new RelayError("auth-failed", "refused synchronously");
    },
  };
  let p: Promise<Uint8Array> | undefined;
  assert.doesNotThrow(() => (p = openChecked(throwing, fromHex(KAT.frame))));
  await assert.rejects(p!, isAuth);
});

test("sealData builds the documented frame with an AEAD that ignores headroom (custom provider)", async () => {
  const inner = await nobleCrypto.aesGcm(fromHex(KAT.dataKey));
  const plain: Aead = {
    seal: (nonce, plaintext, aad) => inner.seal(nonce, plaintext, aad),
    open: (nonce, sealed, aad) => inner.open(nonce, sealed, aad),
  };
  const frame = await sealData(plain, hello);
  assert.equal(toHex(frame), KAT.frame);
});

test("openData detects a change to any byte: header fields, ciphertext and tag", async () => {
  const aead = await nobleCrypto.aesGcm(fromHex(KAT.dataKey));
  const frame = fromHex(KAT.frame);
  // Byte 4 is the frame type: changing it makes the frame something else (checked below).
  for (let at = 5; at < frame.length; at++) {
    const bad = frame.slice();
    bad[at]! ^= at === 5 ? 0x02 : 0x01; // on the flags byte, flip into another known flag
    await assert.rejects(openData(aead, one(bad)), isAuth, `byte ${at}`);
  }
});

test("openData rejects a data frame whose type byte was changed", async () => {
  const aead = await nobleCrypto.aesGcm(fromHex(KAT.dataKey));
  const bad = fromHex(KAT.frame);
  bad[4] = FrameType.Control;
  await assert.rejects(openData(aead, one(bad)), isProtocol);
});

test("openData refuses a frame sealed with another stream's key", async () => {
  const other = await nobleCrypto.aesGcm(KAT.session.dataKey(nobleCrypto, new Uint8Array(16)));
  await assert.rejects(openData(other, one(fromHex(KAT.frame))), isAuth);
});

test("parseDataHeader reads what the relay routes by and rejects malformed frames", () => {
  const h = parseDataHeader(one(fromHex(KAT.frame)));
  assert.equal(h.seq, 7n);
  assert.equal(toHex(h.streamTag), KAT.streamTag);
  const short = new Uint8Array([0, 0, 0, 10, FrameType.Data, ...new Uint8Array(10)]);
  assert.throws(() => parseDataHeader(one(short)), isProtocol);
  const unknownFlag = fromHex(KAT.frame);
  unknownFlag[5] = 0x80;
  assert.throws(() => parseDataHeader(one(unknownFlag)), isProtocol);
  assert.throws(
    () => parseDataHeader(one(new Uint8Array([0, 0, 0, 0, FrameType.Control]))),
    isProtocol,
  );
});

test("encodeBatch/decodeBatch round-trip and reject overruns", async () => {
  const msgs = [new Uint8Array(0), new Uint8Array([1, 2, 3]), new Uint8Array(1000).fill(9)];
  assert.deepEqual(decodeBatch(encodeBatch(msgs)), msgs);
  assert.deepEqual(decodeBatch(new Uint8Array(0)), []);
  assert.throws(() => decodeBatch(new Uint8Array([0, 0, 0, 5, 1])), isProtocol);
  assert.throws(() => decodeBatch(new Uint8Array([0, 0, 1])), isProtocol);
  const aead = await nobleCrypto.aesGcm(fromHex(KAT.dataKey));
  const frame = await sealData(aead, {
    streamTag: tag,
    seq: 0n,
    flags: DataFlag.Batch,
    plaintext: encodeBatch(msgs),
  });
  const { header, plaintext } = await openData(aead, one(frame));
  assert.equal(header.flags, DataFlag.Batch);
  assert.deepEqual(decodeBatch(plaintext), msgs);
  assert.equal(frame.length, DATA_HEADER + encodeBatch(msgs).length + 16);
});

test("sealData rejects bad arguments", async () => {
  const aead = await nobleCrypto.aesGcm(new Uint8Array(32));
  await assert.rejects(
    sealData(aead, {
      streamTag: new Uint8Array(7),
      seq: 0n,
      flags: 0,
      plaintext: new Uint8Array(0),
    }),
    TypeError,
  );
  await assert.rejects(
    sealData(aead, { streamTag: tag, seq: 0n, flags: 0x40, plaintext: new Uint8Array(0) }),
    RangeError,
  );
  await assert.rejects(
    sealData(aead, { streamTag: tag, seq: 1n << 64n, flags: 0, plaintext: new Uint8Array(0) }),
    RangeError,
  );
});
