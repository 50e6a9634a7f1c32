/**
 * The relay's deadlines and shutdown (design.md §3 "Limits"): handshake timeout against a
 * silent client, wait-for-producer, idle timeout, and `close()` telling clients it is going
 * away. Over every transport and address kind.
 */

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { RelayConnection } from "../../src/client/connection.ts";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { RelayError } from "../../src/errors.ts";
import { Session } from "../../src/protocol/session.ts";
import { nativeCrypto } from "../../src/crypto/native.ts";
import { PROLOGUE, PROTOCOL_VERSION } from "../../src/protocol/control.ts";
import { encodeFrame, FrameType } from "../../src/protocol/framer.ts";
import { NoiseHandshake } from "../../src/protocol/noise.ts";
import { cleanupTemp, sleep, waitFor } from "../_helpers.ts";
import { freezableTransport, relayOn, setups } from "./_fixtures.ts";

after(cleanupTemp);

for (const setup of setups()) {
  const t = setup.transport;
  describe(`Relay deadlines over ${setup.name}`, () => {
    test("a client that never completes the handshake is closed at the handshake timeout", async () => {
      const relay = await relayOn(setup, { handshakeTimeoutMs: 100 });
      try {
        const raw = await t.connect(relay.addr);
        await raw.write(new Uint8Array([0, 0])); // half a frame header, then silence
        const started = Date.now();
        assert.equal(await raw.read().catch(() => null), null);
        assert.ok(Date.now() - started < 2000);
        raw.close();
        await waitFor(() => relay.stats().connections === 0);
        assert.equal(relay.stats().handshakeFailures, 1);
      } finally {
        await relay.close();
      }
    });

    test("a consumer waiting longer than wait-for-producer gets a timeout error", async () => {
      const relay = await relayOn(setup, { waitForProducerMs: 100 });
      try {
        const consumer = await Consumer.connect(relay.addr, Session.generate(), { transport: t });
        await assert.rejects(consumer.recv(), (e: unknown) => {
          assert.ok(e instanceof RelayError && e.code === "timeout");
          assert.match(e.message, /no producer joined within 0.1 s/);
          return true;
        });
        await consumer.close();
      } finally {
        await relay.close();
      }
    });

    test("a connection silent past the idle timeout is closed; pinging clients stay", async () => {
      // The live client calls the relay silent after ~2 heartbeats without a byte; 150 ms leaves a
      // loaded machine's timer and pong delays room (50 ms failed once on Deno under the full suite).
      const relay = await relayOn(setup, { heartbeatMs: 150, idleTimeoutMs: 500 });
      try {
        const live = await RelayConnection.connect(relay.addr, { transport: t });
        // A client that completes the handshake and then never sends another byte.
        const raw = await t.connect(relay.addr);
        const noise = new NoiseHandshake(nativeCrypto(), {
          pattern: "NX",
          initiator: true,
          prologue: PROLOGUE,
        });
        await raw.write(
          encodeFrame(
            FrameType.Handshake,
            await noise.writeMessage(new Uint8Array([PROTOCOL_VERSION])),
          ),
        );
        const started = Date.now();
        while (await raw.read().catch(() => null) !== null) {
          // the relay's handshake reply, then its goodbye, then EOF
        }
        const silentFor = Date.now() - started;
        assert.ok(silentFor >= 400 && silentFor < 4000, `closed after ${silentFor} ms`);
        raw.close();
        await sleep(600); // several more heartbeats for the pinging client
        assert.equal(live.error, undefined);
        assert.equal(relay.stats().connections, 1);
        await live.close();
      } finally {
        await relay.close();
      }
    });

    test("close() tells connected clients the relay is going away", async () => {
      const relay = await relayOn(setup);
      const session = Session.generate();
      // Without reconnecting, so the going-away reason itself surfaces.
      const opts = { transport: t, reconnect: false } as const;
      const consumer = await Consumer.connect(relay.addr, session, opts);
      const producer = await Producer.connect(relay.addr, session, opts);
      await producer.broadcast(new Uint8Array([1]));
      assert.deepEqual(await consumer.recv(), new Uint8Array([1]));
      await relay.close({ drainMs: 500 });
      await assert.rejects(
        consumer.recv(),
        (e: unknown) => e instanceof RelayError && e.code === "going-away",
      );
      assert.equal((await producer.connection.closed)?.code, "going-away");
      assert.equal(relay.stats().connections, 0);
    });

    // Liveness (issue 5, part 2): a peer that vanished without FIN or RST is detected within
    // 2 × heartbeat on both sides. The bounds carry slack for timer jitter on a busy machine.
    const HB = 200;

    test("a client notices a vanished relay within 2 × heartbeat", async () => {
      const relay = await relayOn(setup, { heartbeatMs: HB });
      const net = freezableTransport(t);
      try {
        const session = Session.generate();
        const consumer = await Consumer.connect(relay.addr, session, {
          transport: net,
          reconnect: false,
        });
        await sleep(HB); // a few heartbeats answered first
        assert.equal(net.freeze(), 1);
        const started = Date.now();
        await assert.rejects(consumer.recv(), (e: unknown) => {
          assert.ok(e instanceof RelayError && e.code === "timeout", String(e));
          assert.match(e.message, /relay silent for/);
          return true;
        });
        const took = Date.now() - started;
        assert.ok(took <= 2 * HB + 250, `detected after ${took} ms`);
        await consumer.close();
      } finally {
        net.release();
        await relay.close();
      }
    });

    test("the relay drops a vanished client within 2 × heartbeat; the session goes on", async () => {
      const relay = await relayOn(setup, { heartbeatMs: HB });
      const net = freezableTransport(t);
      try {
        const session = Session.generate();
        const gone = await Consumer.connect(relay.addr, session, {
          transport: net,
          reconnect: false,
        });
        const stays = await Consumer.connect(relay.addr, session, { transport: t });
        const producer = await Producer.connect(relay.addr, session, { transport: t });
        await waitFor(() => relay.stats().consumers === 2);
        assert.equal(net.freeze(), 1);
        const started = Date.now();
        await waitFor(() => relay.stats().consumers === 1, 5000);
        const took = Date.now() - started;
        assert.ok(took <= 2 * HB + 250, `dropped after ${took} ms`);
        await producer.broadcast(new Uint8Array([7]));
        assert.deepEqual(await stays.recv(), new Uint8Array([7]));
        await producer.close();
        assert.equal(await stays.recv(), null);
        await gone.close();
      } finally {
        net.release();
        await relay.close();
      }
    });

    test("a consumer whose link went dead reconnects and resumes without loss", async () => {
      const relay = await relayOn(setup, { heartbeatMs: HB });
      const net = freezableTransport(t);
      try {
        const session = Session.generate();
        // block: the replay after resuming must not be cut as a slow consumer on a busy machine
        const consumer = await Consumer.connect(relay.addr, session, {
          transport: net,
          policy: "block",
        });
        let reconnected = 0;
        consumer.on("reconnected", () => reconnected++);
        const producer = await Producer.connect(relay.addr, session, { transport: t });
        const n = 400;
        const reading = (async () => {
          for (let i = 0; i < n; i++) {
            const m = await consumer.recv();
            assert.equal(m![0], i % 256);
            assert.equal(m!.length, 1 + (i >> 8));
          }
        })();
        for (let i = 0; i < n; i++) {
          await producer.broadcast(new Uint8Array(1 + (i >> 8)).fill(i % 256));
          if (i === 100) net.freeze();
          await sleep(2);
        }
        await reading;
        assert.equal(reconnected, 1);
        await producer.close();
        assert.equal(await consumer.recv(), null);
      } finally {
        net.release();
        await relay.close();
      }
    });
  });
}
