/**
 * The malicious-relay suite (issue 5, part 3; docs/SECURITY.md). The real relay, with the
 * `_tamper.ts` hook, plays an operator who holds the relay's Noise keys and attacks the
 * frames it sends to consumers: bit flips in ciphertext, GCM tag and header, rewritten
 * seq, reordering, replay, drops, truncation (END removed), frames spliced from another
 * stream of the same session and from another session, and forged control messages.
 *
 * Every case checks two things: the consumer detects the attack with a typed error or an
 * explicit gap event, and every message it delivered is one the producer sent, at its
 * position, byte for byte — no tampered byte is ever delivered.
 */

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { nativeCrypto } from "../../src/crypto/native.ts";
import { RelayError } from "../../src/errors.ts";
import { ControlKind, type ControlMessage, LeftReason } from "../../src/protocol/control.ts";
import { DataFlag, sealData } from "../../src/protocol/data_frame.ts";
import { Role } from "../../src/protocol/join.ts";
import { Session } from "../../src/protocol/session.ts";
import { type Outbound, TAMPER, type Tamper } from "../../src/server/_tamper.ts";
import { RelayServer } from "../../src/server/relay.ts";
import type { RelayOptions } from "../../src/server/options.ts";
import { cleanupTemp, sleep, within } from "../_helpers.ts";
import { memoryAndNativeTcp, onConsumers, type Setup } from "./_fixtures.ts";

after(cleanupTemp);

/** Messages per stream, and the frame the attacks aim at. */
const N = 40;
const K = 20;

// Wire offsets in a data frame: u32 length ‖ u8 type ‖ flags ‖ tag[8] ‖ seq u64 ‖ ct ‖ gcm tag.
const FLAGS_AT = 5;
const TAG_AT = 6;
const SEQ_AT = 14;
const CT_AT = 22;

function msg(i: number): Uint8Array {
  const m = new Uint8Array(48);
  const v = new DataView(m.buffer);
  v.setUint32(0, i);
  for (let j = 4; j < m.length; j++) m[j] = (i * 31 + j) & 0xff;
  return m;
}

function indexOf(m: Uint8Array): number {
  return new DataView(m.buffer, m.byteOffset, 4).getUint32(0);
}

function seqOf(frame: Uint8Array): bigint {
  return new DataView(frame.buffer, frame.byteOffset).getBigUint64(SEQ_AT);
}

/** A copy of a frame with one bit flipped (the ring is shared: never mutate in place). */
function flip(frame: Uint8Array, at: number, bit = 1): Uint8Array {
  const c = frame.slice();
  c[at < 0 ? c.length + at : at]! ^= bit;
  return c;
}

function tagOf(frame: Uint8Array): Uint8Array {
  return frame.slice(TAG_AT, TAG_AT + 8);
}

function withSeq(frame: Uint8Array, seq: bigint): Uint8Array {
  const c = frame.slice();
  new DataView(c.buffer).setBigUint64(SEQ_AT, seq);
  return c;
}

function data(bytes: Uint8Array): Outbound {
  return { kind: "data", bytes };
}

function control(message: ControlMessage): Outbound {
  return { kind: "control", message };
}

/** What one attacked consumer saw. */
interface Outcome {
  delivered: Uint8Array[];
  error: RelayError | undefined;
  gaps: { from: bigint; to: bigint }[];
  ended: boolean;
  producerLeft: boolean[];
}

function isData(out: Outbound, seq?: bigint): out is { kind: "data"; bytes: Uint8Array } {
  return out.kind === "data" && (seq === undefined || seqOf(out.bytes) === seq);
}

function maliciousRelay(setup: Setup, tamper: Tamper, options: RelayOptions = {}) {
  return RelayServer.listen({
    transport: setup.transport,
    addr: setup.addr(),
    logLevel: "off",
    ...options,
    [TAMPER]: tamper,
  } as RelayOptions);
}

/** Reads until END, an error, or `quietMs` without progress. */
async function consume(c: Consumer, quietMs = 1500): Promise<Outcome> {
  const o: Outcome = { delivered: [], error: undefined, gaps: [], ended: false, producerLeft: [] };
  c.on("lagged", (g) => o.gaps.push(g));
  c.on("end", () => (o.ended = true));
  c.on("producer-left", (e) => o.producerLeft.push(e.resumable));
  while (true) {
    const r = await within(c.recv(), quietMs).catch((e: unknown) => e);
    if (r === "timeout" || r === null) break;
    if (r instanceof RelayError) {
      o.error = r;
      break;
    }
    if (r instanceof Error) throw r;
    o.delivered.push(r as Uint8Array);
  }
  await c.close();
  return o;
}

/**
 * No tampered byte delivered: every message is one the producer sent, byte for byte, in
 * increasing order without repeats, and every missing one lies inside a reported gap
 * (stream seq = message index here: one message per frame, from seq 0).
 */
function assertAuthentic(o: Outcome): void {
  let expected = 0;
  for (const m of o.delivered) {
    const i = indexOf(m);
    assert.deepEqual(m, msg(i), `message ${i} altered`);
    while (expected < i) {
      const e = BigInt(expected);
      assert.ok(
        o.gaps.some((g) => g.from <= e && e < g.to),
        `message ${expected} missing without a gap event`,
      );
      expected++;
    }
    assert.equal(i, expected, `message ${i} delivered out of order or twice`);
    expected++;
  }
}

/** The stream ran to its END with exactly one reported gap `[from, to)`. */
function assertGap(o: Outcome, from: number, to: number): void {
  assert.equal(o.error, undefined);
  assert.deepEqual(o.gaps, [{ from: BigInt(from), to: BigInt(to) }]);
  assert.equal(o.delivered.length, N - (to - from));
  assert.ok(o.ended);
}

function assertCode(o: Outcome, code: string): void {
  assert.ok(o.error !== undefined, `no error (delivered ${o.delivered.length}, ended ${o.ended})`);
  assert.equal(o.error.code, code, o.error.message);
  assert.equal(o.ended, false);
}

/** A consumer that does not reconnect (an attack must end in an error, not a retry). */
function consumerOn(relay: RelayServer, setup: Setup, session: Session): Promise<Consumer> {
  return Consumer.connect(relay.addr, session, { transport: setup.transport, reconnect: false });
}

/** A producer sending one message per frame, each frame signed (a segment of its own). */
function producerOn(
  relay: RelayServer,
  setup: Setup,
  session: Session,
  reconnect?: false,
): Promise<Producer> {
  return Producer.connect(relay.addr, session, {
    transport: setup.transport,
    batchThreshold: 0,
    segmentFrames: 1,
    ...(reconnect === false ? { reconnect } : {}),
  });
}

/** One producer stream of N messages (one frame each) through the relay to one consumer. */
async function attackStream(
  setup: Setup,
  attack: (out: Outbound, conn: number) => Outbound[],
  options: RelayOptions = {},
  session: Session = Session.generate(),
): Promise<Outcome> {
  const relay = await maliciousRelay(setup, onConsumers(attack), options);
  try {
    const consumer = await consumerOn(relay, setup, session);
    const producer = await producerOn(relay, setup, session);
    const reading = consume(consumer);
    for (let i = 0; i < N; i++) await producer.broadcast(msg(i));
    await producer.close();
    const o = await reading;
    assertAuthentic(o);
    return o;
  } finally {
    await relay.close({ drainMs: 100 });
  }
}

for (const setup of memoryAndNativeTcp()) {
  describe(`A malicious relay over ${setup.name}`, () => {
    test("an honest relay (the hook passing everything) delivers the whole stream", async () => {
      const o = await attackStream(setup, (out) => [out]);
      assert.equal(o.error, undefined);
      assert.equal(o.delivered.length, N);
      assert.ok(o.ended);
    });

    const flips: [string, number][] = [
      ["a flipped ciphertext bit", CT_AT],
      ["a flipped GCM tag bit", -1],
      ["a flipped flags bit (END set in the authenticated header)", FLAGS_AT],
      ["a flipped seq bit", SEQ_AT + 7],
    ];
    for (const [name, at] of flips) {
      test(`${name} is detected as tampering`, async () => {
        const o = await attackStream(
          setup,
          (out) => isData(out, BigInt(K)) ? [data(flip(out.bytes, at))] : [out],
        );
        assertCode(o, "tampered");
        assert.equal(o.delivered.length, K);
      });
    }

    test("a flipped stream tag bit misroutes the frame: the next one reveals the hole", async () => {
      const o = await attackStream(
        setup,
        (out) => isData(out, BigInt(K)) ? [data(flip(out.bytes, TAG_AT))] : [out],
      );
      assertCode(o, "tampered");
      assert.match(o.error!.message, /seq 21 where 20 was due/);
      assert.equal(o.delivered.length, K);
    });

    test("a dropped frame is detected", async () => {
      const o = await attackStream(setup, (out) => isData(out, BigInt(K)) ? [] : [out]);
      assertCode(o, "tampered");
      assert.equal(o.delivered.length, K);
    });

    test("a dropped frame whose successor is renumbered fails authentication", async () => {
      const o = await attackStream(setup, (out) => {
        if (!isData(out)) return [out];
        const seq = seqOf(out.bytes);
        if (seq === BigInt(K)) return [];
        return seq > BigInt(K) ? [data(withSeq(out.bytes, seq - 1n))] : [out];
      });
      assertCode(o, "tampered");
      assert.match(o.error!.message, /failed authentication/);
      assert.equal(o.delivered.length, K);
    });

    test("reordered frames are detected", async () => {
      let held: Outbound | undefined;
      const o = await attackStream(setup, (out) => {
        if (isData(out, BigInt(K))) {
          held = out;
          return [];
        }
        if (isData(out, BigInt(K + 1))) return [out, held!];
        return [out];
      });
      assertCode(o, "tampered");
      assert.equal(o.delivered.length, K);
    });

    test("a replayed frame is detected", async () => {
      const o = await attackStream(setup, (out) => isData(out, BigInt(K)) ? [out, out] : [out]);
      assertCode(o, "tampered");
      assert.equal(o.delivered.length, K + 1);
    });

    test("a frame replayed much later is detected", async () => {
      let saved: Outbound | undefined;
      const o = await attackStream(setup, (out) => {
        if (isData(out, 3n)) saved = out;
        return isData(out, BigInt(K)) ? [saved!, out] : [out];
      });
      assertCode(o, "tampered");
      assert.equal(o.delivered.length, K);
    });

    test("a truncated frame body (length prefix adjusted) fails authentication", async () => {
      const o = await attackStream(setup, (out) => {
        if (!isData(out, BigInt(K))) return [out];
        const cut = out.bytes.slice(0, out.bytes.length - 1);
        new DataView(cut.buffer).setUint32(0, cut.length - 5);
        return [data(cut)];
      });
      assertCode(o, "tampered");
      assert.equal(o.delivered.length, K);
    });

    test("a drop admitted with a forged LAGGED is an explicit gap, nothing silent", async () => {
      const o = await attackStream(setup, (out) => {
        if (!isData(out, BigInt(K))) return [out];
        const tag = tagOf(out.bytes);
        return [control({ kind: ControlKind.Lagged, tag, from: BigInt(K), to: BigInt(K + 1) })];
      });
      assertGap(o, K, K + 1);
    });

    test("a LAGGED notice that does not match the stream is tampering", async () => {
      const o = await attackStream(setup, (out) => {
        if (!isData(out, BigInt(K))) return [out];
        const tag = tagOf(out.bytes);
        return [
          control({ kind: ControlKind.Lagged, tag, from: BigInt(K + 5), to: BigInt(K + 6) }),
          out,
        ];
      });
      assertCode(o, "tampered");
      assert.equal(o.delivered.length, K);
    });

    test("truncation: END removed and the producer reported gone is not a clean end", async () => {
      const o = await attackStream(setup, (out) => {
        if (!isData(out) || (out.bytes[FLAGS_AT]! & DataFlag.End) === 0) return [out];
        const tag = tagOf(out.bytes);
        return [control({ kind: ControlKind.ProducerLeft, tag, reason: LeftReason.Gone })];
      });
      assertCode(o, "producer-left");
      assert.deepEqual(o.producerLeft, [false]);
      assert.equal(o.delivered.length, N);
    });

    test("truncation: END withheld in silence never reads as the end of the stream", async () => {
      const o = await attackStream(
        setup,
        (out) => isData(out) && (out.bytes[FLAGS_AT]! & DataFlag.End) !== 0 ? [] : [out],
      );
      assert.equal(o.error, undefined);
      assert.equal(o.ended, false, "END was never delivered, so the stream must not end");
      assert.equal(o.delivered.length, N);
    });

    test("a frame sealed for another session, relabelled with this tag, fails authentication", async () => {
      const crypto = nativeCrypto();
      const session = Session.generate();
      const tag = (await session.keys(crypto)).streamTag;
      const other = Session.generate();
      const aead = await crypto.aesGcm(other.dataKey(crypto, new Uint8Array(16)));
      const forged = await sealData(aead, {
        streamTag: tag,
        seq: BigInt(K),
        flags: 0,
        plaintext: msg(K),
      });
      const o = await attackStream(
        setup,
        (out) => isData(out, BigInt(K)) ? [data(forged)] : [out],
        {},
        session,
      );
      assertCode(o, "tampered");
      assert.equal(o.delivered.length, K);
    });

    test("a frame spliced from an earlier stream of the same session fails authentication", async () => {
      // Stream 1 runs to its END; the relay keeps its frames. Stream 2's frame K is replaced
      // by stream 1's frame K: same tag, same seq, but sealed under stream 1's epoch key.
      const earlier = new Map<bigint, Uint8Array>();
      let stream = 0;
      const relay = await maliciousRelay(
        setup,
        onConsumers((out) => {
          if (out.kind === "control" && out.message.kind === ControlKind.StreamStart) stream++;
          if (!isData(out)) return [out];
          const seq = seqOf(out.bytes);
          if (stream === 1) earlier.set(seq, out.bytes.slice());
          if (stream === 2 && seq === BigInt(K)) return [data(earlier.get(seq)!)];
          return [out];
        }),
      );
      try {
        const session = Session.generate();
        const c1 = await consumerOn(relay, setup, session);
        const p1 = await producerOn(relay, setup, session);
        const r1 = consume(c1);
        for (let i = 0; i < N; i++) await p1.broadcast(msg(i));
        await p1.close();
        const o1 = await r1;
        assert.ok(o1.ended && o1.delivered.length === N);
        const c2 = await consumerOn(relay, setup, session);
        const p2 = await producerOn(relay, setup, session);
        const r2 = consume(c2);
        for (let i = 0; i < N; i++) await p2.broadcast(msg(i));
        await p2.close();
        const o2 = await r2;
        assertAuthentic(o2);
        assertCode(o2, "tampered");
        assert.equal(o2.delivered.length, K);
        assert.equal(earlier.size, N + 1);
      } finally {
        await relay.close({ drainMs: 100 });
      }
    });

    test("an earlier stream replayed to a consumer that saw it is detected", async () => {
      // Stream 1 is cut (producer lost, grace over); while the consumer waits for the next
      // stream, the relay replays stream 1's signed STREAM-START and frames instead of
      // stream 2's.
      const first: Outbound[] = [];
      let stream = 0;
      const relay = await maliciousRelay(
        setup,
        onConsumers((out) => {
          if (out.kind === "control" && out.message.kind === ControlKind.StreamStart) stream++;
          if (stream === 1) first.push(out);
          if (stream === 2) return first.splice(0);
          return [out];
        }),
        { producerGraceMs: 50 },
      );
      try {
        const session = Session.generate();
        const consumer = await consumerOn(relay, setup, session);
        const p1 = await producerOn(relay, setup, session, false);
        for (let i = 0; i < 5; i++) await p1.broadcast(msg(i));
        await p1.flush();
        for (let i = 0; i < 5; i++) assert.deepEqual(await consumer.recv(), msg(i));
        p1.connection.abort();
        await assert.rejects(
          consumer.recv(),
          (e: unknown) => (e as RelayError).code === "producer-left",
        );
        const reading = consume(consumer);
        const p2 = await producerOn(relay, setup, session);
        for (let i = 0; i < 5; i++) await p2.broadcast(msg(100 + i));
        await p2.close();
        const o = await reading;
        assertCode(o, "tampered");
        assert.match(o.error!.message, /earlier stream was replayed/);
        assert.equal(o.delivered.length, 0);
      } finally {
        await relay.close({ drainMs: 100 });
      }
    });

    const startForgeries: [string, (m: ControlMessage & { kind: 4 }) => ControlMessage][] = [
      ["a fresh epoch", (m) => ({ ...m, epoch: nativeCrypto().randomBytes(16) })],
      ["a changed start time", (m) => ({ ...m, startedAt: m.startedAt + 1n })],
      ["a flipped signature bit", (m) => ({ ...m, signature: flip(m.signature, 0) })],
    ];
    for (const [name, forge] of startForgeries) {
      test(`a STREAM-START forged with ${name} is rejected before any data`, async () => {
        const o = await attackStream(
          setup,
          (out) =>
            out.kind === "control" && out.message.kind === ControlKind.StreamStart
              ? [control(forge(out.message))]
              : [out],
        );
        assertCode(o, "tampered");
        assert.match(o.error!.message, /not signed by the producer/);
        assert.equal(o.delivered.length, 0);
      });
    }

    test("a STREAM-START re-announcing the stream at a later seq is an explicit gap", async () => {
      // The relay claims the stream resumed further on (as after a relay restart): the
      // consumer reports the skipped range instead of delivering around it silently.
      let start: ControlMessage | undefined;
      const o = await attackStream(setup, (out) => {
        if (out.kind === "control" && out.message.kind === ControlKind.StreamStart) {
          start = out.message;
        }
        if (isData(out, BigInt(K))) {
          return [control({ ...(start as ControlMessage & { kind: 4 }), firstSeq: BigInt(K + 2) })];
        }
        return isData(out, BigInt(K + 1)) ? [] : [out];
      });
      assertGap(o, K, K + 2);
    });

    test("forged JOINED for a join never asked for closes the connection", async () => {
      const o = await attackStream(setup, (out) => {
        if (!isData(out, BigInt(K))) return [out];
        const tag = tagOf(out.bytes);
        tag[0]! ^= 1;
        return [control({ kind: ControlKind.Joined, tag, role: Role.Consumer }), out];
      });
      assertCode(o, "protocol-error");
      assert.equal(o.delivered.length, K);
    });

    test("frames for a session the consumer never joined are never delivered", async () => {
      const crypto = nativeCrypto();
      const other = Session.generate();
      const otherTag = (await other.keys(crypto)).streamTag;
      const aead = await crypto.aesGcm(other.dataKey(crypto, new Uint8Array(16)));
      const foreign = await sealData(aead, {
        streamTag: otherTag,
        seq: 0n,
        flags: 0,
        plaintext: msg(999),
      });
      const o = await attackStream(
        setup,
        (out) => isData(out) ? [data(foreign), out] : [out],
      );
      assert.equal(o.error, undefined);
      assert.equal(o.delivered.length, N);
      assert.ok(o.ended);
    });

    test("a control message sealed with a wrong key closes the connection as auth-failed", async () => {
      // Forging below the Noise layer: a CONTROL frame the relay did not seal.
      const o = await attackStream(setup, (out) => {
        if (!isData(out, BigInt(K))) return [out];
        const bogus = new Uint8Array(5 + 32);
        new DataView(bogus.buffer).setUint32(0, 32);
        bogus[4] = 0x02;
        return [data(bogus)];
      });
      assertCode(o, "auth-failed");
      assert.equal(o.delivered.length, K);
    });

    test("an ACK for a frame never sent fails the producer, not silently", async () => {
      const relay = await maliciousRelay(setup, (_conn, out) => {
        if (out.kind === "control" && out.message.kind === ControlKind.Ack) {
          return [control({ ...out.message, seq: out.message.seq + 1000n })];
        }
        return [out];
      });
      try {
        const session = Session.generate();
        const producer = await Producer.connect(relay.addr, session, {
          transport: setup.transport,
          reconnect: false,
        });
        await producer.broadcast(msg(0));
        await assert.rejects(
          (async () => {
            for (let i = 1; i < 1000; i++) {
              await producer.broadcast(msg(i));
              await sleep(1);
            }
          })(),
          (e: unknown) => (e as RelayError).code === "protocol-error",
        );
      } finally {
        await relay.close({ drainMs: 100 });
      }
    });
  });
}
