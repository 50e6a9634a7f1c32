/**
 * The malicious-client suite (issue 5, part 3): bad and replayed join proofs, joins without
 * the session key, and protocol violations in every connection state, sent by a hand-driven
 * client. Each one ends that client's join or connection with the documented error; the relay
 * stays up and a legitimate session running alongside loses nothing.
 */

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { nativeCrypto } from "../../src/crypto/native.ts";
import {
  ControlKind,
  type ControlMessage,
  encodeJoinOptions,
  MAX_CONTROL,
  WireError,
} from "../../src/protocol/control.ts";
import { DataFlag, sealData } from "../../src/protocol/data_frame.ts";
import { encodeFrame, FrameType } from "../../src/protocol/framer.ts";
import { Role } from "../../src/protocol/join.ts";
import { Session } from "../../src/protocol/session.ts";
import type { RelayServer } from "../../src/server/relay.ts";
import { cleanupTemp, waitFor } from "../_helpers.ts";
import { lastErrorCode, RawClient } from "./_raw_client.ts";
import { memoryAndNativeTcp, relayOn, type Setup } from "./_fixtures.ts";

after(cleanupTemp);

const crypto = nativeCrypto();

/** A legitimate producer → consumer session that must lose nothing while attacks run. */
class Bystander {
  #sent = 0;
  #received = 0;
  #running = true;
  readonly #done: Promise<void>;
  readonly #reading: Promise<void>;

  private constructor(readonly producer: Producer, readonly consumer: Consumer) {
    this.#done = (async () => {
      while (this.#running) {
        await producer.broadcast(counter(this.#sent++));
        await new Promise((r) => setTimeout(r, 2));
      }
      await producer.close();
    })();
    this.#reading = (async () => {
      for await (const m of consumer) {
        assert.deepEqual(m, counter(this.#received), "bystander lost or reordered a message");
        this.#received++;
      }
    })();
  }

  static async start(relay: RelayServer, setup: Setup): Promise<Bystander> {
    const session = Session.generate();
    const t = setup.transport;
    const consumer = await Consumer.connect(relay.addr, session, { transport: t });
    const producer = await Producer.connect(relay.addr, session, { transport: t });
    return new Bystander(producer, consumer);
  }

  /** Stops the producer (END) and checks every message arrived, in order. */
  async finish(): Promise<number> {
    const before = this.#received;
    await waitFor(() => this.#received > before + 3, 5000);
    this.#running = false;
    await this.#done;
    await this.#reading;
    assert.equal(this.#received, this.#sent);
    return this.#received;
  }
}

function counter(i: number): Uint8Array {
  const m = new Uint8Array(16);
  new DataView(m.buffer).setUint32(0, i);
  return m;
}

/** Starts a relay with a bystander, runs `body`, then checks the relay and bystander. */
async function attacked(
  setup: Setup,
  body: (relay: RelayServer) => Promise<void>,
): Promise<RelayServer> {
  const relay = await relayOn(setup, { handshakeTimeoutMs: 2000 });
  try {
    const bystander = await Bystander.start(relay, setup);
    await body(relay);
    assert.ok(await bystander.finish() > 0);
    return relay;
  } finally {
    await relay.close({ drainMs: 100 });
  }
}

/** Expects the relay to end the connection, sending ERROR `code` last (or nothing). */
async function expectClosed(c: RawClient, code: string | undefined): Promise<void> {
  const seen = await c.untilClosed();
  assert.equal(
    lastErrorCode(seen),
    code,
    JSON.stringify(seen, (_k, v) => typeof v === "bigint" ? String(v) : v),
  );
}

/** Expects ERROR `code` for one join, the connection staying open. */
async function expectJoinRefused(c: RawClient, code: string): Promise<void> {
  const m = await c.nextControl();
  assert.ok(m !== null && m.kind === ControlKind.Error, `expected ERROR, got ${m?.kind}`);
  assert.equal(m.code, code);
  assert.equal(m.role === Role.Producer || m.role === Role.Consumer, true);
}

async function expectJoined(c: RawClient): Promise<void> {
  const m = await c.nextControl();
  assert.equal(m?.kind, ControlKind.Joined, `expected JOINED, got ${JSON.stringify(m?.kind)}`);
}

/** A raw producer past JOINED and a valid STREAM-START; returns what it needs to send data. */
async function rawProducer(relay: RelayServer, setup: Setup) {
  const c = await RawClient.connect(setup.transport, relay.addr);
  const { keys, frame: seal } = await c.produce(Session.generate());
  await expectJoined(c);
  const frame = (seq: bigint, flags = 0, plaintext = counter(Number(seq))) =>
    seal(seq, flags, plaintext);
  return { c, keys, frame };
}

for (const setup of memoryAndNativeTcp()) {
  const t = setup.transport;
  describe(`A malicious client over ${setup.name}`, () => {
    describe("during the handshake", () => {
      const cases: [string, Uint8Array][] = [
        [
          "a CONTROL frame instead of the handshake",
          encodeFrame(FrameType.Control, new Uint8Array(48)),
        ],
        ["a frame of an unknown type", encodeFrame(0x09, new Uint8Array(32))],
        [
          "a handshake message too short for a key",
          encodeFrame(FrameType.Handshake, new Uint8Array(7)),
        ],
        [
          "a low-order ephemeral key (all zeros)",
          encodeFrame(FrameType.Handshake, new Uint8Array(33)),
        ],
        ["a length prefix of 4 GiB", new Uint8Array([0xff, 0xff, 0xff, 0xff, 1])],
        ["a length prefix just over the handshake limit", new Uint8Array([0, 0, 4, 1, 1])],
        [
          "two handshake frames at once",
          (() => {
            const a = encodeFrame(FrameType.Handshake, crypto.randomBytes(33));
            const both = new Uint8Array(a.length * 2);
            both.set(a);
            both.set(a, a.length);
            return both;
          })(),
        ],
      ];
      for (const [name, bytes] of cases) {
        test(`${name} closes the connection`, async () => {
          const relay = await attacked(setup, async (relay) => {
            const conn = await t.connect(relay.addr);
            await conn.write(bytes).catch(() => {});
            while (await conn.read().catch(() => null) !== null) {
              // whatever the relay says, it must then close
            }
            conn.close();
            await waitFor(() => relay.stats().connections === 2);
          });
          assert.ok(relay.stats().handshakeFailures >= 1);
        });
      }

      test("a hydra/1 client, or any other version, gets a refusing hello saying so", async () => {
        for (const version of [1, 3, 255]) {
          await attacked(setup, async (relay) => {
            const c = await RawClient.connect(t, relay.addr, version);
            assert.equal(WireError[c.hello.status], "unsupported");
            assert.match(c.hello.message, /hydra\/2 only/);
            assert.equal(await c.next(), null);
            c.close();
          });
        }
      });
    });

    describe("after the handshake", () => {
      const cases: [string, (c: RawClient) => Promise<void>, string | undefined][] = [
        [
          "a frame of an unknown type",
          (c) => c.raw(encodeFrame(0x07, new Uint8Array(8))),
          "protocol-error",
        ],
        [
          "a data frame before any join",
          (c) => c.raw(encodeFrame(FrameType.Data, new Uint8Array(64))),
          "protocol-error",
        ],
        [
          "a CONTROL frame that fails authentication",
          (c) => c.raw(encodeFrame(FrameType.Control, new Uint8Array(40))),
          undefined,
        ],
        [
          "a sealed message of an unknown kind",
          (c) => c.sealed(new Uint8Array([0x7f, 1, 2, 3])),
          "protocol-error",
        ],
        ["a sealed empty message", (c) => c.sealed(new Uint8Array(0)), "protocol-error"],
        [
          "a truncated JOIN",
          (c) => c.sealed(new Uint8Array([ControlKind.Join, 1, 5])),
          "protocol-error",
        ],
        [
          "a control frame over the pre-join limit",
          (c) => c.raw(encodeFrame(FrameType.Control, new Uint8Array(MAX_CONTROL + 17))),
          "frame-too-large",
        ],
        [
          "JOINED from a client",
          (c) =>
            c.control({ kind: ControlKind.Joined, tag: new Uint8Array(8), role: Role.Consumer }),
          "protocol-error",
        ],
        [
          "ACK from a client",
          (c) => c.control({ kind: ControlKind.Ack, tag: new Uint8Array(8), seq: 0n }),
          "protocol-error",
        ],
        [
          "LAGGED from a client",
          (c) => c.control({ kind: ControlKind.Lagged, tag: new Uint8Array(8), from: 0n, to: 1n }),
          "protocol-error",
        ],
        [
          "PRODUCER-LEFT from a client",
          (c) => c.control({ kind: ControlKind.ProducerLeft, tag: new Uint8Array(8), reason: 1 }),
          "protocol-error",
        ],
        [
          "ERROR from a client",
          (c) =>
            c.control({
              kind: ControlKind.Error,
              code: "timeout",
              tag: new Uint8Array(8),
              role: 0,
              message: "",
            }),
          "protocol-error",
        ],
        [
          "STREAM-START without being the producer",
          (c) =>
            c.control({
              kind: ControlKind.StreamStart,
              tag: new Uint8Array(8),
              epoch: new Uint8Array(16),
              startedAt: 0n,
              generation: 0,
              firstSeq: 0n,
              signature: new Uint8Array(64),
            }),
          "protocol-error",
        ],
      ];
      for (const [name, send, code] of cases) {
        test(`${name} closes the connection (${code ?? "silently"})`, async () => {
          const relay = await attacked(setup, async (relay) => {
            const c = await RawClient.connect(t, relay.addr);
            await send(c);
            await expectClosed(c, code);
          });
          assert.ok(relay.stats().protocolErrors >= (code === undefined ? 0 : 1));
        });
      }
    });

    describe("joining", () => {
      test("a bad proof is refused as auth-failed; the connection can still join properly", async () => {
        await attacked(setup, async (relay) => {
          const c = await RawClient.connect(t, relay.addr);
          const good = await c.joinMessage(Session.generate(), Role.Consumer);
          await c.control({ ...good, proof: crypto.randomBytes(64) });
          await expectJoinRefused(c, "auth-failed");
          await c.control(good);
          await expectJoined(c);
          c.close();
          assert.equal(relay.stats().joinFailures, 1);
        });
      });

      test("a proof replayed from another connection is refused", async () => {
        await attacked(setup, async (relay) => {
          const session = Session.generate();
          const a = await RawClient.connect(t, relay.addr);
          const b = await RawClient.connect(t, relay.addr);
          const join = await a.joinMessage(session, Role.Consumer);
          await b.control(join); // b's handshake hash differs: the proof does not verify
          await expectJoinRefused(b, "auth-failed");
          await a.control(join);
          await expectJoined(a);
          a.close();
          b.close();
        });
      });

      test("joining a session without its key (someone else's route id) is refused", async () => {
        await attacked(setup, async (relay) => {
          const victim = await Session.generate().keys(crypto);
          const c = await RawClient.connect(t, relay.addr);
          const own = await c.joinMessage(Session.generate(), Role.Producer);
          await c.control({ ...own, routeId: victim.routeId });
          await expectJoinRefused(c, "auth-failed");
          c.close();
        });
      });

      test("a proof for the other role, or for other options, is refused", async () => {
        await attacked(setup, async (relay) => {
          const session = Session.generate();
          const c = await RawClient.connect(t, relay.addr);
          const asConsumer = await c.joinMessage(session, Role.Consumer);
          await c.control({ ...asConsumer, role: Role.Producer });
          await expectJoinRefused(c, "auth-failed");
          await c.control({ ...asConsumer, options: encodeJoinOptions({ policy: "drop" }) });
          await expectJoinRefused(c, "auth-failed");
          c.close();
        });
      });

      test("eight failed joins close the connection", async () => {
        await attacked(setup, async (relay) => {
          const c = await RawClient.connect(t, relay.addr);
          const join = await c.joinMessage(Session.generate(), Role.Consumer);
          for (let i = 0; i < 8; i++) await c.control({ ...join, proof: crypto.randomBytes(64) });
          const seen = await c.untilClosed();
          assert.equal(
            seen.filter((m) => m.kind === ControlKind.Error && m.code === "auth-failed").length,
            8,
          );
          assert.equal(lastErrorCode(seen), "protocol-error");
        });
      });

      test("joining twice in one role is refused; the first join stays", async () => {
        await attacked(setup, async (relay) => {
          const c = await RawClient.connect(t, relay.addr);
          const join = await c.joinMessage(Session.generate(), Role.Consumer);
          await c.control(join);
          await expectJoined(c);
          await c.control(join);
          await expectJoinRefused(c, "protocol-error");
          assert.equal(relay.stats().consumers, 2); // the bystander's and this one
          c.close();
        });
      });

      test("malformed join options under a valid proof close the connection", async () => {
        await attacked(setup, async (relay) => {
          const c = await RawClient.connect(t, relay.addr);
          await c.control(
            await c.joinMessage(Session.generate(), Role.Consumer, new Uint8Array([1, 0, 9])),
          );
          await expectClosed(c, "protocol-error");
        });
      });
    });

    describe("as a producer", () => {
      const cases: [
        string,
        (p: Awaited<ReturnType<typeof rawProducer>>) => Promise<void>,
        string,
      ][] = [
        ["a seq that skips ahead", async (p) => {
          await p.c.raw(await p.frame(0n));
          await p.c.raw(await p.frame(2n));
        }, "protocol-error"],
        ["a repeated seq", async (p) => {
          await p.c.raw(await p.frame(0n));
          await p.c.raw(await p.frame(0n));
        }, "protocol-error"],
        ["a data frame with unknown flags", async (p) => {
          const f = await p.frame(0n);
          f[5] = 0x80;
          await p.c.raw(f);
        }, "protocol-error"],
        [
          "a data frame too short to hold a tag",
          (p) => p.c.raw(encodeFrame(FrameType.Data, new Uint8Array(20))),
          "protocol-error",
        ],
        ["a data frame for a session it does not produce", async (p) => {
          const f = await p.frame(0n);
          f[6]! ^= 1;
          await p.c.raw(f);
        }, "protocol-error"],
        [
          "a data frame over the relay's limit",
          (p) => p.c.raw(new Uint8Array([0x7f, 0xff, 0xff, 0xff, FrameType.Data])),
          "frame-too-large",
        ],
        [
          "a second STREAM-START with a bad signature",
          (p) =>
            p.c.control({
              kind: ControlKind.StreamStart,
              tag: p.keys.streamTag,
              epoch: new Uint8Array(16),
              startedAt: 1n,
              generation: 0,
              firstSeq: 0n,
              signature: new Uint8Array(64),
            }),
          "auth-failed",
        ],
      ];
      for (const [name, send, code] of cases) {
        test(`${name} ends that producer's connection (${code})`, async () => {
          await attacked(setup, async (relay) => {
            const p = await rawProducer(relay, setup);
            await send(p);
            const seen = await p.c.untilClosed();
            // auth-failed is never explained to the peer (all auth failures look alike).
            assert.equal(lastErrorCode(seen), code === "auth-failed" ? undefined : code);
          });
        });
      }

      test("data before STREAM-START is a protocol error", async () => {
        await attacked(setup, async (relay) => {
          const c = await RawClient.connect(t, relay.addr);
          const session = Session.generate();
          await c.control(await c.joinMessage(session, Role.Producer));
          await expectJoined(c);
          const tag = (await session.keys(crypto)).streamTag;
          const aead = await crypto.aesGcm(session.dataKey(crypto, new Uint8Array(16)));
          await c.raw(
            await sealData(aead, {
              streamTag: tag,
              seq: 0n,
              flags: DataFlag.End,
              plaintext: new Uint8Array(0),
            }),
          );
          await expectClosed(c, "protocol-error");
        });
      });
    });

    describe("as a consumer", () => {
      const cases: [string, (c: RawClient, tag: Uint8Array) => Promise<void>][] = [
        ["sending data", (c, tag) => {
          const body = new Uint8Array(40);
          body.set(tag, 1);
          return c.raw(encodeFrame(FrameType.Data, body));
        }],
        [
          "announcing a stream",
          (c, tag) =>
            c.control({
              kind: ControlKind.StreamStart,
              tag,
              epoch: new Uint8Array(16),
              startedAt: 0n,
              generation: 0,
              firstSeq: 0n,
              signature: new Uint8Array(64),
            }) as Promise<void>,
        ],
      ];
      for (const [name, send] of cases) {
        test(`${name} is a protocol error`, async () => {
          await attacked(setup, async (relay) => {
            const c = await RawClient.connect(t, relay.addr);
            const session = Session.generate();
            await c.control(await c.joinMessage(session, Role.Consumer));
            await expectJoined(c);
            await send(c, (await session.keys(crypto)).streamTag);
            await expectClosed(c, "protocol-error");
          });
        });
      }
    });

    describe("not reading", () => {
      test("a client flooding pings before reading gets the latest pong and keeps its connection", async () => {
        await attacked(setup, async (relay) => {
          const c = await RawClient.connect(t, relay.addr);
          const ping: ControlMessage = { kind: ControlKind.Ping, nonce: 1n };
          for (let i = 0; i < 20_000; i++) await c.control({ ...ping, nonce: BigInt(i) });
          // Now read: the pongs that arrive are far fewer than the pings.
          let pongs = 0;
          let last = -1n;
          const reading = (async () => {
            for (let m = await c.nextControl(); m !== null; m = await c.nextControl()) {
              if (m.kind === ControlKind.Pong) {
                pongs++;
                last = m.nonce;
                if (last === 19_999n) return;
              }
            }
          })();
          await reading;
          assert.equal(last, 19_999n);
          assert.ok(pongs <= 20_000);
          assert.equal(relay.stats().connections, 3);
          c.close();
        });
      });
    });
  });
}
