/**
 * Property tests of every parser that reads bytes from the network (issue 5, part 4): the
 * framer, control messages, join options, the relay hello, data headers and batches, the
 * Noise handshake messages, and session tokens. Inputs are random and mutated valid encodings;
 * the property is always the same: a parser either returns a well-formed value (which
 * encodes back to an equivalent value) or throws its documented error — never anything else,
 * never an out-of-bounds view, never an allocation beyond its limit.
 *
 * `HYDRA_FUZZ_RUNS` (default 2,000 per property) and `HYDRA_FUZZ_SEED` scale and vary it.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { nativeCrypto } from "../../src/crypto/native.ts";
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
  type JoinOptions,
  PROLOGUE,
  WireError,
} from "../../src/protocol/control.ts";
import {
  DataFlag,
  decodeBatch,
  encodeBatch,
  openData,
  parseDataHeader,
  sealData,
} from "../../src/protocol/data_frame.ts";
import { encodeFrame, FRAME_HEADER, FrameDecoder, FrameType } from "../../src/protocol/framer.ts";
import { NoiseHandshake } from "../../src/protocol/noise.ts";
import { Session } from "../../src/protocol/session.ts";
import { fuzzRuns, fuzzSeed, mutate, Rand } from "../_fuzz.ts";

const RUNS = fuzzRuns(2000);
const crypto = nativeCrypto();

/** Runs `check` on `RUNS` inputs; a failure names the seed that reproduces it. */
async function forAll(
  name: string,
  check: (r: Rand, i: number) => void | Promise<void>,
): Promise<void> {
  const base = new Rand(fuzzSeed() ^ hash(name));
  for (let i = 0; i < RUNS; i++) {
    const r = base.fork();
    try {
      await check(r, i);
    } catch (e) {
      throw new Error(`${name}: case ${i} (seed ${r.seed}) failed: ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Calls `parse`; only `RelayError` with one of `codes` may escape. */
function parsesOrRefuses<T>(parse: () => T, codes: readonly string[]): T | undefined {
  try {
    return parse();
  } catch (e) {
    if (!(e instanceof RelayError)) throw new Error(`threw ${String(e)}`);
    assert.ok(codes.includes(e.code), `unexpected code ${e.code}: ${e.message}`);
    return undefined;
  }
}

function randomJoinOptions(r: Rand): JoinOptions {
  return {
    ...(r.chance(0.5) ? { policy: r.pick(["disconnect", "drop", "block"] as const) } : {}),
    ...(r.chance(0.5) ? { resume: { epoch: r.bytes(16), nextSeq: BigInt(r.u32()) } } : {}),
  };
}

function randomControl(r: Rand): ControlMessage {
  const tag = r.bytes(8);
  const seq = () => BigInt(r.u32()) * BigInt(r.u32());
  switch (r.int(11)) {
    case 0:
      return {
        kind: ControlKind.Join,
        role: r.pick([1, 2] as const),
        routeId: r.bytes(32),
        options: encodeJoinOptions(randomJoinOptions(r)),
        proof: r.bytes(64),
      };
    case 1:
      return { kind: ControlKind.Joined, tag, role: r.pick([1, 2] as const) };
    case 2:
      return {
        kind: ControlKind.Error,
        code: r.pick(Object.values(WireError)),
        tag,
        role: r.int(3),
        message: "x".repeat(r.size(200)),
      };
    case 3:
      return {
        kind: ControlKind.StreamStart,
        tag,
        epoch: r.bytes(16),
        startedAt: seq(),
        generation: r.int(4),
        firstSeq: seq(),
        signature: r.bytes(64),
      };
    case 4: {
      const from = seq();
      return { kind: ControlKind.Lagged, tag, from, to: from + 1n + BigInt(r.u32()) };
    }
    case 5:
      return { kind: ControlKind.ProducerLeft, tag, reason: r.pick([1, 2]) };
    case 6:
      return { kind: ControlKind.Ping, nonce: seq() };
    case 7:
      return { kind: ControlKind.Pong, nonce: seq() };
    case 8:
      return { kind: ControlKind.Ack, tag, seq: seq() };
    case 9:
      return {
        kind: ControlKind.Close,
        reason: r.pick([1, 2, 3]),
        message: "bye".repeat(r.int(5)),
      };
    default:
      return { kind: ControlKind.Leave, tag, role: r.pick([1, 2] as const) };
  }
}

describe("Parsers under random and mutated input", () => {
  test("control messages: valid ones round-trip; mutations decode to a valid message or protocol-error", async () => {
    await forAll("control", (r) => {
      const m = randomControl(r);
      const bytes = encodeControl(m);
      assert.deepEqual(decodeControl(bytes), m);
      const input = r.chance(0.1) ? r.bytes(r.size(300)) : mutate(r, bytes);
      const d = parsesOrRefuses(() => decodeControl(input), ["protocol-error"]);
      if (d !== undefined) assert.deepEqual(decodeControl(encodeControl(d)), d);
    });
  });

  test("join options: round-trip, and mutations parse or fail as protocol-error", async () => {
    await forAll("join-options", (r) => {
      const o = randomJoinOptions(r);
      const bytes = encodeJoinOptions(o);
      assert.deepEqual(decodeJoinOptions(bytes), o);
      const d = parsesOrRefuses(() => decodeJoinOptions(mutate(r, bytes)), ["protocol-error"]);
      if (d !== undefined) assert.deepEqual(decodeJoinOptions(encodeJoinOptions(d)), d);
    });
  });

  test("relay hello: round-trip, and mutations parse or fail as protocol-error", async () => {
    await forAll("hello", (r) => {
      const h = {
        version: 1,
        status: r.int(10),
        maxFrame: r.u32(),
        heartbeatMs: r.u32(),
        ringFrames: r.u32(),
        ringBytes: r.u32(),
        policy: 1 + r.int(3),
        message: "m".repeat(r.size(100)),
      };
      const bytes = encodeHello(h);
      assert.deepEqual(decodeHello(bytes), h);
      const d = parsesOrRefuses(() => decodeHello(mutate(r, bytes)), [
        "protocol-error",
        "unsupported",
      ]);
      if (d !== undefined) assert.deepEqual(decodeHello(encodeHello(d)), d);
    });
  });

  test("framer: random streams give frames within the limit or frame-too-large, buffering bounded", async () => {
    await forAll("framer", (r) => {
      const limit = r.pick([0, 16, 1024, 65535]);
      const decoder = new FrameDecoder(limit);
      const valid = Array.from(
        { length: r.int(6) },
        () => encodeFrame(r.int(256), r.bytes(r.int(limit + 1))),
      );
      let stream = new Uint8Array(valid.reduce((n, f) => n + f.length, 0));
      let off = 0;
      for (const f of valid) {
        stream.set(f, off);
        off += f.length;
      }
      if (r.chance(0.5)) stream = mutate(r, stream);
      try {
        for (let at = 0; at < stream.length;) {
          const n = r.chance(0.5) ? 1 + r.int(16) : 1 + r.int(8192);
          for (const f of decoder.push(stream.slice(at, at + n))) {
            assert.ok(f.body.length <= limit);
            assert.equal(f.bytes.length, FRAME_HEADER + f.body.length);
            assert.equal(f.body.buffer, f.bytes.buffer);
          }
          assert.ok(decoder.buffered <= FRAME_HEADER + limit);
          at += n;
        }
      } catch (e) {
        if (!(e instanceof RelayError) || e.code !== "frame-too-large") throw e;
      }
    });
  });

  test("data frames: headers parse or fail as protocol-error; a mutated frame never opens", async () => {
    const aead = await crypto.aesGcm(crypto.randomBytes(32));
    await forAll("data", async (r) => {
      const plaintext = r.bytes(r.size(200));
      const sealed = await sealData(aead, {
        streamTag: r.bytes(8),
        seq: BigInt(r.u32()),
        flags: r.pick([0, DataFlag.End, DataFlag.Batch]),
        plaintext,
      });
      const mutated = mutate(r, sealed);
      const body = mutated.subarray(Math.min(FRAME_HEADER, mutated.length));
      const frame = { type: FrameType.Data, body, bytes: mutated };
      const header = parsesOrRefuses(() => parseDataHeader(frame), ["protocol-error"]);
      if (header === undefined) return;
      // The length prefix (bytes 0-3) is framing, checked by the framer, not the AEAD.
      const same = mutated.length === sealed.length &&
        mutated.every((b, i) => i < 4 || b === sealed[i]);
      try {
        const opened = await openData(aead, frame);
        assert.ok(same, "a mutated frame opened");
        assert.deepEqual(opened.plaintext, plaintext);
      } catch (e) {
        if (!(e instanceof RelayError)) throw e;
        assert.ok(!same || e.code !== "auth-failed");
      }
    });
  });

  test("batches: decode within bounds or fail as protocol-error; valid ones round-trip", async () => {
    await forAll("batch", (r) => {
      const messages = Array.from({ length: r.int(8) }, () => r.bytes(r.size(100)));
      const bytes = encodeBatch(messages);
      assert.deepEqual(decodeBatch(bytes), messages);
      const input = mutate(r, bytes);
      const d = parsesOrRefuses(() => decodeBatch(input), ["protocol-error"]);
      if (d !== undefined) assert.deepEqual(encodeBatch(d), input);
    });
  });

  test("handshake: mutated messages fail with a typed error on both sides", async () => {
    const relayKey = await crypto.x25519KeyPair();
    await forAll("handshake", async (r) => {
      const client = new NoiseHandshake(crypto, {
        pattern: "NX",
        initiator: true,
        prologue: PROLOGUE,
      });
      const relay = new NoiseHandshake(crypto, {
        pattern: "NX",
        initiator: false,
        prologue: PROLOGUE,
        staticKey: relayKey,
      });
      const m1 = await client.writeMessage(new Uint8Array([1]));
      const attackRelay = r.chance(0.5);
      if (attackRelay) {
        // What a client can send a relay: the relay either reads a payload or refuses.
        try {
          await relay.readMessage(mutate(r, m1));
        } catch (e) {
          if (!(e instanceof RelayError)) throw e;
        }
        return;
      }
      await relay.readMessage(m1);
      const m2 = await relay.writeMessage(encodeHello({
        version: 1,
        status: 0,
        maxFrame: 1,
        heartbeatMs: 1,
        ringFrames: 2,
        ringBytes: 2,
        policy: 1,
        message: "",
      }));
      const bad = mutate(r, m2);
      const same = bad.length === m2.length && bad.every((b, i) => b === m2[i]);
      try {
        await client.readMessage(bad);
        assert.ok(same, "a mutated handshake message was accepted");
      } catch (e) {
        if (!(e instanceof RelayError)) throw e;
      }
    });
  });

  test("session tokens: mutated tokens are refused with TypeError or parse to themselves", async () => {
    await forAll("token", (r) => {
      const token = Session.generate(crypto).token();
      const bytes = new TextEncoder().encode(token);
      const text = new TextDecoder().decode(mutate(r, bytes));
      try {
        const s = Session.fromToken(text);
        assert.equal(s.token(), text.trim());
      } catch (e) {
        if (!(e instanceof TypeError)) throw e;
        assert.ok(!e.message.includes(token.slice(8, 40)), "the error echoes the token");
      }
    });
  });
});
