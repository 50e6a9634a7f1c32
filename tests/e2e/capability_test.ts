/**
 * Read-only consumers (issue 22; docs/CAPABILITIES.md, docs/SECURITY.md): a consumer holding only
 * a read token reads the stream; nobody holding only a read token — alone, or as the relay's
 * operator with the relay's help — can produce, start a stream, end one, or make another
 * consumer accept a frame the producer did not send. The attacker here holds a read token and
 * runs the relay (the `_tamper.ts` hook): it derives the stream's data key as any reader can,
 * seals frames of its own with it, and injects them into what the relay sends.
 */

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { nativeCrypto } from "../../src/crypto/native.ts";
import { RelayError } from "../../src/errors.ts";
import { ReadCapability } from "../../src/protocol/capability.ts";
import {
  ControlKind,
  type ControlMessage,
  signStreamStart,
  type StreamStart,
} from "../../src/protocol/control.ts";
import { DataFlag, encodeBatch, sealData } from "../../src/protocol/data_frame.ts";
import { Role } from "../../src/protocol/join.ts";
import { Session } from "../../src/protocol/session.ts";
import { TAMPER, type Tamper } from "../../src/server/_tamper.ts";
import { RelayServer } from "../../src/server/relay.ts";
import type { RelayOptions } from "../../src/server/options.ts";
import { cleanupTemp, within } from "../_helpers.ts";
import { memoryAndNativeTcp, onConsumers, relayOn, type Setup } from "./_fixtures.ts";
import { RawClient } from "./_raw_client.ts";

after(cleanupTemp);

const crypto = nativeCrypto();
const N = 30;
const SEQ_AT = 14;

function msg(i: number): Uint8Array {
  const m = new Uint8Array(40);
  new DataView(m.buffer).setUint32(0, i);
  for (let j = 4; j < m.length; j++) m[j] = (i * 7 + j) & 0xff;
  return m;
}

function seqOf(frame: Uint8Array): bigint {
  return new DataView(frame.buffer, frame.byteOffset).getBigUint64(SEQ_AT);
}

/** Reads until END, an error, or a quiet second; closes the consumer. */
async function drain(c: Consumer): Promise<{ got: Uint8Array[]; error?: RelayError }> {
  const got: Uint8Array[] = [];
  while (true) {
    const r = await within(c.recv(), 1500).catch((e: unknown) => e);
    if (r === "timeout" || r === null) break;
    if (r instanceof RelayError) {
      await c.close();
      return { got, error: r };
    }
    if (r instanceof Error) throw r;
    got.push(r as Uint8Array);
  }
  await c.close();
  return { got };
}

/** Every delivered message is one the producer sent, at its position. */
function assertAuthentic(got: Uint8Array[]): void {
  got.forEach((m, i) => assert.deepEqual(m, msg(i), `message ${i} is not the producer's`));
}

function attackedRelay(setup: Setup, tamper: Tamper): Promise<RelayServer> {
  return RelayServer.listen({
    transport: setup.transport,
    addr: setup.addr(),
    logLevel: "off",
    [TAMPER]: tamper,
  } as RelayOptions);
}

for (const setup of memoryAndNativeTcp()) {
  const t = setup.transport;
  describe(`Read capabilities over ${setup.name}`, () => {
    test("a consumer with only a read token receives the stream, every frame verified", async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const read = ReadCapability.fromToken((await ReadCapability.mint(crypto, session)).token());
        const reader = await Consumer.connect(relay.addr, read, { transport: t });
        const writer = await Consumer.connect(relay.addr, session, { transport: t });
        const producer = await Producer.connect(relay.addr, session, { transport: t });
        const reading = [drain(reader), drain(writer)];
        for (let i = 0; i < N; i++) await producer.broadcast(msg(i));
        // A burst: several frames under one signature.
        await Promise.all(Array.from({ length: N }, (_, i) => producer.broadcast(msg(N + i))));
        await producer.close();
        for (const o of await Promise.all(reading)) {
          assert.equal(o.error, undefined);
          assert.equal(o.got.length, 2 * N);
          assertAuthentic(o.got);
        }
      } finally {
        await relay.close();
      }
    });

    test("a read token cannot produce: refused by the client, and by the relay however it is tried", async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const read = await ReadCapability.mint(crypto, session);
        await assert.rejects(
          Producer.connect(relay.addr, read as unknown as Session, { transport: t }),
          /a read capability can only consume/,
        );
        const keys = await read.keys(crypto);
        // A raw producer JOIN carrying the reader's credentials (its proof is valid for them).
        const c = await RawClient.connect(t, relay.addr);
        const asReader = await c.joinWithKeys(keys, Role.Producer, {
          reader: { generation: 0, readerKey: keys.readerKey, grant: keys.grant },
        });
        assert.equal(asReader.kind === ControlKind.Error && asReader.code, "auth-failed");
        // A producer JOIN signed with the reader key but claiming the writer's route id.
        const plain = await c.joinWithKeys(keys, Role.Producer, {});
        assert.equal(plain.kind === ControlKind.Error && plain.code, "auth-failed");
        c.close();
        // A reader's grant for another reader key, or another generation, is refused too.
        const other = await ReadCapability.mint(crypto, session, 1);
        const k1 = await other.keys(crypto);
        const c2 = await RawClient.connect(t, relay.addr);
        const swapped = await c2.joinWithKeys(keys, Role.Consumer, {
          reader: { generation: 0, readerKey: keys.readerKey, grant: k1.grant },
        });
        assert.equal(swapped.kind === ControlKind.Error && swapped.code, "auth-failed");
        c2.close();
        assert.equal(relay.stats().producers, 0);
      } finally {
        await relay.close();
      }
    });

    test("a reader holding the relay cannot make a consumer accept frames it sealed", async () => {
      const session = Session.generate();
      const read = await ReadCapability.mint(crypto, session);
      const k = await read.keys(crypto);
      // What the attacker puts in place of frame 10, made once the stream's epoch is known:
      // valid AES-GCM under the stream's data key, which every reader derives.
      const forgeries: [string, (epoch: Uint8Array) => Promise<Uint8Array>][] = [
        ["a frame of the reader's own", async (epoch) => {
          const aead = await crypto.aesGcm(read.dataKey(crypto, epoch, 0, 0));
          return sealData(aead, {
            streamTag: k.streamTag,
            seq: 10n,
            flags: 0,
            plaintext: msg(999),
          });
        }],
        ["an END without the producer's signature", async (epoch) => {
          const aead = await crypto.aesGcm(read.dataKey(crypto, epoch, 0, 0));
          return sealData(aead, {
            streamTag: k.streamTag,
            seq: 10n,
            flags: DataFlag.End | DataFlag.Batch,
            plaintext: encodeBatch([]),
          });
        }],
        ["a frame signed by the reader's key", async (epoch) => {
          const aead = await crypto.aesGcm(read.dataKey(crypto, epoch, 0, 0));
          const frame = await sealData(aead, {
            streamTag: k.streamTag,
            seq: 10n,
            flags: DataFlag.Signed,
            plaintext: msg(999),
            trailer: 66,
          });
          const head = frame.subarray(0, frame.length - 66);
          const sig = await k.signer.sign(head);
          frame.set([0, 1], frame.length - 66);
          frame.set(sig, frame.length - 64);
          return frame;
        }],
      ];
      for (const [name, forge] of forgeries) {
        let forged: Uint8Array | undefined;
        const relay = await attackedRelay(
          setup,
          onConsumers((out) => {
            if (out.kind === "control" && out.message.kind === ControlKind.StreamStart) {
              void forge(out.message.epoch.slice()).then((f) => (forged = f));
            }
            if (out.kind === "data" && seqOf(out.bytes) === 10n) {
              return forged === undefined ? [] : [{ kind: "data", bytes: forged }];
            }
            return [out];
          }),
        );
        try {
          const consumer = await Consumer.connect(relay.addr, read, {
            transport: t,
            reconnect: false,
          });
          const producer = await Producer.connect(relay.addr, session, {
            transport: t,
            batchThreshold: 0,
            segmentFrames: 1,
          });
          const reading = drain(consumer);
          for (let i = 0; i < N; i++) {
            await producer.broadcast(msg(i));
            if (i === 5) await new Promise((r) => setTimeout(r, 50)); // the forgery is ready
          }
          await producer.close().catch(() => {});
          const o = await reading;
          assert.ok(forged !== undefined, `${name}: the forgery was not made in time`);
          assertAuthentic(o.got);
          assert.equal(o.got.length, 10, `${name}: delivered ${o.got.length}`);
          assert.equal(o.error?.code, "tampered", `${name}: ${o.error?.message}`);
        } finally {
          await relay.close({ drainMs: 100 });
        }
      }
    });

    test("a STREAM-START signed by a reader is refused before any data", async () => {
      const session = Session.generate();
      const read = await ReadCapability.mint(crypto, session);
      const k = await read.keys(crypto);
      const epoch = crypto.randomBytes(16);
      const start: Omit<StreamStart, "signature"> = {
        tag: k.streamTag,
        epoch,
        startedAt: 1n,
        generation: 0,
        firstSeq: 0n,
      };
      const forged: ControlMessage = {
        kind: ControlKind.StreamStart,
        ...start,
        signature: await signStreamStart(k.signer, k.routeId, start),
      };
      const relay = await attackedRelay(
        setup,
        onConsumers((out) => {
          if (out.kind !== "control" || out.message.kind !== ControlKind.StreamStart) return [out];
          return [{ kind: "control", message: forged }];
        }),
      );
      try {
        const consumer = await Consumer.connect(relay.addr, read, {
          transport: t,
          reconnect: false,
        });
        const producer = await Producer.connect(relay.addr, session, { transport: t });
        const reading = drain(consumer);
        for (let i = 0; i < 5; i++) await producer.broadcast(msg(i));
        await producer.close();
        const o = await reading;
        assert.equal(o.got.length, 0);
        assert.equal(o.error?.code, "tampered");
        assert.match(o.error!.message, /not signed by the producer/);
      } finally {
        await relay.close({ drainMs: 100 });
      }
    });

    test("a read token of an older generation cannot read the stream: revoked", async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const older = await ReadCapability.mint(crypto, session, 0);
        const consumer = await Consumer.connect(relay.addr, older, { transport: t });
        const producer = await Producer.connect(relay.addr, session, {
          transport: t,
          generation: 1,
        });
        const reading = drain(consumer);
        await producer.broadcast(msg(0));
        await producer.close();
        const o = await reading;
        assert.equal(o.got.length, 0);
        assert.equal(o.error?.code, "revoked");
      } finally {
        await relay.close();
      }
    });
  });
}
