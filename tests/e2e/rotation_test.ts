/**
 * Rotation and revocation (issue 22 part 3; docs/CAPABILITIES.md "Rotation and revocation"):
 * `producer.rotate()` ends the stream with an END naming the next generation and starts the next
 * stream on the same connection. Readers granted the new generation continue without a gap and
 * see `rotated`; readers holding only the old one are ended `revoked` (by the relay, and by
 * themselves at the END) and cannot join again; frames of one generation spliced into another
 * are refused.
 */

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { nativeCrypto } from "../../src/crypto/native.ts";
import { RelayError } from "../../src/errors.ts";
import { ReadCapability } from "../../src/protocol/capability.ts";
import { ControlKind } from "../../src/protocol/control.ts";
import { Role } from "../../src/protocol/join.ts";
import { Session } from "../../src/protocol/session.ts";
import { TAMPER } from "../../src/server/_tamper.ts";
import { RelayServer } from "../../src/server/relay.ts";
import type { RelayOptions } from "../../src/server/options.ts";
import { cleanupTemp, within } from "../_helpers.ts";
import { memoryAndNativeTcp, onConsumers, relayOn } from "./_fixtures.ts";
import { RawClient } from "./_raw_client.ts";

after(cleanupTemp);

const crypto = nativeCrypto();
const N = 20;
const SEQ_AT = 14;

function msg(i: number): Uint8Array {
  const m = new Uint8Array(24);
  new DataView(m.buffer).setUint32(0, i);
  m.fill(i & 0xff, 4);
  return m;
}

function indexOf(m: Uint8Array): number {
  return new DataView(m.buffer, m.byteOffset).getUint32(0);
}

interface Read {
  got: number[];
  events: string[];
  error?: RelayError;
}

/** Reads until an error or a quiet second, recording messages and events in order. */
async function read(c: Consumer): Promise<Read> {
  const out: Read = { got: [], events: [] };
  c.on("rotated", (e) => out.events.push(`rotated:${e.generation}`));
  c.on("lagged", (e) => out.events.push(`lagged:${e.from}-${e.to}`));
  c.on("stream-start", () => out.events.push(`start@${out.got.length}`));
  c.on("end", () => out.events.push("end"));
  while (true) {
    const r = await within(c.recv(), 1000).catch((e: unknown) => e);
    if (r === "timeout" || r === null) break;
    if (r instanceof RelayError) {
      out.error = r;
      break;
    }
    if (r instanceof Error) throw r;
    out.got.push(indexOf(r as Uint8Array));
  }
  await c.close();
  return out;
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

for (const setup of memoryAndNativeTcp()) {
  const t = setup.transport;
  describe(`Rotation over ${setup.name}`, () => {
    test("granted readers continue without a gap; the others are revoked and cannot rejoin", async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const g0 = ReadCapability.fromToken((await session.readOnly(crypto, 0)).token());
        const g1 = ReadCapability.fromToken((await session.readOnly(crypto, 1)).token());
        const keeper = await Consumer.connect(relay.addr, g0, { transport: t });
        const dropped = await Consumer.connect(relay.addr, g0, { transport: t });
        const writer = await Consumer.connect(relay.addr, session, { transport: t });
        const ahead = await Consumer.connect(relay.addr, g1, { transport: t });
        const producer = await Producer.connect(relay.addr, session, { transport: t });
        const reading = [keeper, dropped, writer, ahead].map(read);
        const rotated: number[] = [];
        producer.on("rotated", (e) => rotated.push(e.generation));
        for (let i = 0; i < N; i++) await producer.broadcast(msg(i));
        await keeper.grant(g1);
        await keeper.grant(g1); // held already: nothing to do
        const oldEpoch = producer.epoch;
        const handed = await producer.rotate();
        assert.equal(handed.generation, 1);
        assert.equal(producer.generation, 1);
        assert.notDeepEqual(producer.epoch, oldEpoch);
        assert.deepEqual(rotated, [1]);
        for (let i = N; i < 2 * N; i++) await producer.broadcast(msg(i));
        await producer.close();
        const [k, d, w, a] = await Promise.all(reading);
        assert.equal(k!.error, undefined);
        assert.deepEqual(k!.got, range(0, 2 * N), "the granted reader lost or reordered messages");
        assert.deepEqual(k!.events, ["start@0", "rotated:1", `start@${N}`, "end"]);
        assert.deepEqual(w!.got, range(0, 2 * N));
        assert.deepEqual(w!.events, ["start@0", "rotated:1", `start@${N}`, "end"]);
        assert.deepEqual(d!.got, range(0, N), "the revoked reader got the old stream, whole");
        assert.equal(d!.error?.code, "revoked");
        // Minted ahead: it waited out generation 0 and reads generation 1 from its start.
        assert.deepEqual(a!.got, range(N, 2 * N));
        assert.deepEqual(a!.events, ["rotated:1", "start@0", "end"]);
        // The old token cannot join any more; the relay knows generation 1 now.
        await assert.rejects(
          Consumer.connect(relay.addr, g0, { transport: t, reconnect: false }),
          (e: unknown) => e instanceof RelayError && e.code === "revoked",
        );
      } finally {
        await relay.close();
      }
    });

    test("messages broadcast while rotate() runs go to the new stream, in order", async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const consumer = await Consumer.connect(relay.addr, session, { transport: t });
        const producer = await Producer.connect(relay.addr, session, { transport: t });
        const reading = read(consumer);
        for (let i = 0; i < N; i++) void producer.broadcast(msg(i));
        const rotation = producer.rotate(5);
        const sends = range(N, 2 * N).map((i) => producer.broadcast(msg(i)));
        const second = producer.rotate(); // queued behind the first: generation 6
        for (let i = 2 * N; i < 3 * N; i++) void producer.broadcast(msg(i));
        assert.equal((await rotation).generation, 5);
        assert.equal((await second).generation, 6);
        await Promise.all(sends);
        await producer.close();
        const o = await reading;
        assert.equal(o.error, undefined);
        // The parked messages (N..3N) all go to the last stream.
        assert.deepEqual(o.got, range(0, 3 * N));
        assert.deepEqual(o.events, [
          "start@0",
          "rotated:5",
          `start@${N}`,
          "rotated:6",
          `start@${N}`,
          "end",
        ]);
      } finally {
        await relay.close();
      }
    });

    test("rotate() and grant() refuse what cannot work, with a clear error", async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const other = Session.generate();
        const old = await Consumer.connect(relay.addr, await session.readOnly(crypto, 0), {
          transport: t,
          reconnect: false,
        });
        const consumer = await Consumer.connect(relay.addr, await session.readOnly(crypto, 2), {
          transport: t,
        });
        const producer = await Producer.connect(relay.addr, session, {
          transport: t,
          generation: 2,
        });
        await assert.rejects(producer.rotate(2), RangeError);
        await assert.rejects(producer.rotate(1), RangeError);
        await assert.rejects(
          consumer.grant(await other.readOnly(crypto, 3)),
          /another session/,
        );
        await assert.rejects(consumer.grant(session as unknown as ReadCapability), TypeError);
        // The relay saw generation 2 start: a grant of generation 1 comes too late, and the
        // reader of generation 0 is over — granting it anything now cannot bring it back.
        await assert.rejects(
          consumer.grant(await session.readOnly(crypto, 1)),
          (e: unknown) => e instanceof RelayError && e.code === "revoked",
        );
        await assert.rejects(
          old.recv(),
          (e: unknown) => e instanceof RelayError && e.code === "revoked",
        );
        await assert.rejects(
          old.grant(await session.readOnly(crypto, 2)),
          (e: unknown) => e instanceof RelayError && e.code === "revoked",
        );
        await producer.broadcast(msg(7));
        assert.equal(
          indexOf((await consumer.recv())!),
          7,
          "a refused grant keeps the reader joined",
        );
        await producer.close();
        // A producer restarted at an older generation would let old readers back in: refused.
        const stale = await Producer.connect(relay.addr, session, {
          transport: t,
          reconnect: false,
        });
        await assert.rejects(
          (async () => {
            await stale.broadcast(msg(0));
            await stale.close();
          })(),
          (e: unknown) => e instanceof RelayError && e.code === "revoked",
        );
        await consumer.close();
      } finally {
        await relay.close();
      }
    });

    test("a GRANT needs a valid grant and proof for a session the connection consumes", async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const k0 = await (await session.readOnly(crypto, 0)).keys(crypto);
        const k1 = await (await session.readOnly(crypto, 1)).keys(crypto);
        const c = await RawClient.connect(t, relay.addr);
        // Not joined: refused.
        const early = await c.joinWithKeys(k1, Role.Consumer, {
          reader: { generation: 1, readerKey: k1.readerKey, grant: k1.grant },
        }, ControlKind.Grant);
        assert.equal(early.kind === ControlKind.Error && early.code, "protocol-error");
        const joined = await c.joinWithKeys(k0, Role.Consumer, {
          reader: { generation: 0, readerKey: k0.readerKey, grant: k0.grant },
        });
        assert.equal(joined.kind, ControlKind.Joined);
        // Generation 1's reader key with generation 0's grant: refused, the join stays.
        const swapped = await c.joinWithKeys(k1, Role.Consumer, {
          reader: { generation: 1, readerKey: k1.readerKey, grant: k0.grant },
        }, ControlKind.Grant);
        assert.equal(swapped.kind === ControlKind.Error && swapped.code, "auth-failed");
        const good = await c.joinWithKeys(k1, Role.Consumer, {
          reader: { generation: 1, readerKey: k1.readerKey, grant: k1.grant },
        }, ControlKind.Grant);
        assert.equal(good.kind, ControlKind.Joined);
        assert.equal(relay.stats().consumers, 1);
        c.close();
      } finally {
        await relay.close();
      }
    });

    test("frames of the old generation spliced into the new stream are refused", async () => {
      const session = Session.generate();
      const g1 = await session.readOnly(crypto, 1);
      let old: Uint8Array | undefined;
      const streams = new Map<number, number>();
      const relay = await RelayServer.listen({
        transport: t,
        addr: setup.addr(),
        logLevel: "off",
        [TAMPER]: onConsumers((out, conn) => {
          if (out.kind === "control" && out.message.kind === ControlKind.StreamStart) {
            streams.set(conn, (streams.get(conn) ?? 0) + 1);
          }
          if (out.kind !== "data") return [out];
          const seq = new DataView(out.bytes.buffer, out.bytes.byteOffset).getBigUint64(SEQ_AT);
          const stream = streams.get(conn);
          if (stream === 1 && seq === 3n) old = out.bytes.slice();
          // The same seq of the new stream becomes the old stream's frame (signed, sealed).
          if (stream === 2 && seq === 3n && old !== undefined) {
            return [{ kind: "data", bytes: old }];
          }
          return [out];
        }),
      } as RelayOptions);
      try {
        const consumer = await Consumer.connect(relay.addr, session, {
          transport: t,
          reconnect: false,
        });
        const reader = await Consumer.connect(relay.addr, await session.readOnly(crypto, 0), {
          transport: t,
          reconnect: false,
        });
        await reader.grant(g1);
        const producer = await Producer.connect(relay.addr, session, {
          transport: t,
          segmentFrames: 1,
          batchThreshold: 0,
        });
        const reading = [read(consumer), read(reader)];
        for (let i = 0; i < 5; i++) await producer.broadcast(msg(i));
        await producer.rotate();
        for (let i = 5; i < 10; i++) await producer.broadcast(msg(i));
        await producer.close().catch(() => {});
        for (const o of await Promise.all(reading)) {
          assert.deepEqual(o.got, range(0, 8), "delivered past the spliced frame");
          assert.equal(o.error?.code, "tampered");
        }
      } finally {
        await relay.close({ drainMs: 100 });
      }
    });
  });
}
