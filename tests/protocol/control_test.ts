/**
 * Control messages, join options, stream-start signatures and the relay hello
 * (docs/PROTOCOL.md §3.1, §6): round trips, and strict rejection of malformed input.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { nobleCrypto } from "../../src/crypto/noble.ts";
import { RelayError } from "../../src/errors.ts";
import {
  ControlKind,
  type ControlMessage,
  decodeControl,
  decodeHello,
  decodeJoinOptions,
  encodeControl,
  encodeHello,
  encodeJoinOptions,
  signStreamStart,
  verifyStreamStart,
} from "../../src/protocol/control.ts";
import { Role } from "../../src/protocol/join.ts";
import { Session } from "../../src/protocol/session.ts";

const tag = new Uint8Array(8).fill(7);
const samples: ControlMessage[] = [
  {
    kind: ControlKind.Join,
    role: Role.Consumer,
    routeId: new Uint8Array(32).fill(1),
    options: new Uint8Array([1, 1, 3]),
    proof: new Uint8Array(64).fill(2),
  },
  { kind: ControlKind.Joined, tag, role: Role.Producer },
  { kind: ControlKind.Error, code: "producer-exists", tag, role: 1, message: "taken ✓" },
  {
    kind: ControlKind.StreamStart,
    tag,
    epoch: new Uint8Array(16).fill(3),
    startedAt: 1_700_000_000_000n,
    generation: 7,
    firstSeq: 5n,
    signature: new Uint8Array(64).fill(4),
  },
  { kind: ControlKind.Lagged, tag, from: 3n, to: 90n },
  { kind: ControlKind.ProducerLeft, tag, reason: 2 },
  { kind: ControlKind.Ping, nonce: 2n ** 64n - 1n },
  { kind: ControlKind.Pong, nonce: 0n },
  { kind: ControlKind.Ack, tag, seq: 12345n },
  { kind: ControlKind.Close, reason: 2, message: "" },
  { kind: ControlKind.Leave, tag, role: Role.Consumer },
];

test("encodeControl/decodeControl round-trip every message kind", () => {
  for (const m of samples) assert.deepEqual(decodeControl(encodeControl(m)), m);
});

test("decodeControl rejects every truncation and any trailing byte with protocol-error", () => {
  for (const m of samples) {
    const bytes = encodeControl(m);
    for (let n = 0; n < bytes.length; n++) {
      assert.throws(
        () => decodeControl(bytes.subarray(0, n)),
        isProtocolError,
        `kind ${m.kind} cut at ${n}`,
      );
    }
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    assert.throws(() => decodeControl(longer), isProtocolError);
  }
});

test("decodeControl rejects unknown kinds, roles, error codes, reasons and bad UTF-8", () => {
  const bad = [
    [0x00],
    [0x99],
    [ControlKind.Joined, ...tag, 3],
    [ControlKind.Error, 42, ...tag, 0, 0, 0],
    [ControlKind.Error, 1, ...tag, 0, 0, 2, 0xff, 0xfe],
    [ControlKind.ProducerLeft, ...tag, 9],
    [ControlKind.Lagged, ...tag, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5],
  ];
  for (const b of bad) assert.throws(() => decodeControl(new Uint8Array(b)), isProtocolError);
  assert.throws(() => decodeControl(new Uint8Array(5000)), isProtocolError);
});

test("decodeControl throws nothing but RelayError on random input", () => {
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  for (let i = 0; i < 20_000; i++) {
    const bytes = new Uint8Array(Math.floor(rand() * 200));
    for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rand() * 256);
    if (bytes.length > 0) bytes[0] = 1 + Math.floor(rand() * 11);
    try {
      decodeControl(bytes);
    } catch (e) {
      assert.ok(e instanceof RelayError, String(e));
    }
  }
});

test("join options: policy and resume round-trip, unknown types are skipped, bad values rejected", () => {
  const epoch = new Uint8Array(16).fill(9);
  const o = decodeJoinOptions(
    encodeJoinOptions({ policy: "block", resume: { epoch, nextSeq: 77n } }),
  );
  assert.equal(o.policy, "block");
  assert.deepEqual(o.resume, { epoch, nextSeq: 77n });
  assert.deepEqual(decodeJoinOptions(new Uint8Array([9, 2, 0, 0, 1, 1, 2])), { policy: "drop" });
  assert.deepEqual(decodeJoinOptions(new Uint8Array(0)), {});
  for (const b of [[1, 1, 7], [1, 2, 1, 1], [2, 3, 0, 0, 0], [1], [1, 5, 1]]) {
    assert.throws(() => decodeJoinOptions(new Uint8Array(b)), isProtocolError);
  }
  assert.throws(() => encodeJoinOptions({ policy: "nope" as "drop" }), RangeError);
});

test("stream start: the producer's signature verifies; any other field or key does not", async () => {
  const session = Session.generate(nobleCrypto);
  const { signer, routeId } = await session.keys(nobleCrypto);
  const epoch = new Uint8Array(16).fill(5);
  const signature = await signStreamStart(signer, routeId, {
    epoch,
    startedAt: 10n,
    generation: 0,
  });
  assert.ok(
    await verifyStreamStart(nobleCrypto, routeId, {
      epoch,
      startedAt: 10n,
      generation: 0,
      signature,
    }),
  );
  assert.ok(
    !await verifyStreamStart(nobleCrypto, routeId, {
      epoch,
      startedAt: 11n,
      generation: 0,
      signature,
    }),
  );
  assert.ok(
    !await verifyStreamStart(nobleCrypto, routeId, {
      epoch,
      startedAt: 10n,
      generation: 1,
      signature,
    }),
    "a stream start moved to another generation",
  );
  const other = new Uint8Array(epoch);
  other[0] = 6;
  assert.ok(
    !await verifyStreamStart(nobleCrypto, routeId, {
      epoch: other,
      startedAt: 10n,
      generation: 0,
      signature,
    }),
  );
  const { routeId: otherRoute } = await Session.generate(nobleCrypto).keys(nobleCrypto);
  assert.ok(
    !await verifyStreamStart(nobleCrypto, otherRoute, {
      epoch,
      startedAt: 10n,
      generation: 0,
      signature,
    }),
  );
});

test("relay hello round-trips, tolerates extensions and rejects truncation", () => {
  const h = {
    version: 1,
    status: 5,
    maxFrame: 4 << 20,
    heartbeatMs: 10_000,
    ringFrames: 1024,
    ringBytes: 16 << 20,
    policy: 1,
    message: "relay at its connection limit",
  };
  const bytes = encodeHello(h);
  assert.deepEqual(decodeHello(bytes), h);
  const extended = new Uint8Array(bytes.length + 3);
  extended.set(bytes);
  assert.deepEqual(decodeHello(extended), h);
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decodeHello(bytes.subarray(0, n)), isProtocolError);
  }
});

function isProtocolError(e: unknown): boolean {
  return e instanceof RelayError && e.code === "protocol-error";
}
