/**
 * 1 producer → many consumers over every transport and address kind: byte-exact, in order,
 * and no plaintext in the relay's traffic.
 */

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { Session } from "../../src/protocol/session.ts";
import { RelayServer } from "../../src/server/relay.ts";
import { cleanupTemp } from "../_helpers.ts";
import {
  Finder,
  payloadPool,
  prng,
  relayOn,
  sameBytes,
  setups,
  tapTransport,
} from "./_fixtures.ts";

after(cleanupTemp);

/** Sizes 0 B–256 KiB, log-uniform, with both ends always present. */
function sizes(count: number, seed: number): number[] {
  const rand = prng(seed);
  const out = [0, 256 * 1024];
  while (out.length < count) out.push(Math.floor(2 ** (rand() * 18.0001)) - 1);
  return out;
}

async function fanOut(
  setupIndex: number,
  { messages, consumers, seed }: { messages: number; consumers: number; seed: number },
): Promise<void> {
  const setup = setups()[setupIndex]!;
  const marker = globalThis.crypto.getRandomValues(new Uint8Array(16));
  const finder = new Finder(marker);
  const transport = tapTransport(setup.transport, (c) => finder.push(c));
  const relay = await RelayServer.listen({
    transport,
    addr: setup.addr(),
    logLevel: "off",
    policy: "block", // consumers decrypting on a busy machine must not be dropped
  });
  try {
    const pool = payloadPool(marker);
    const rand = prng(seed + 1);
    const plan = sizes(messages, seed).map((size) => {
      const off = Math.floor(rand() * (pool.length - size));
      return pool.subarray(off, off + size);
    });
    const session = Session.generate();
    const opts = { transport: setup.transport, relayKey: relay.publicKey };
    const readers = await Promise.all(
      Array.from({ length: consumers }, () => Consumer.connect(relay.addr, session, opts)),
    );
    const received = readers.map(async (consumer) => {
      let i = 0;
      for await (const m of consumer) {
        assert.ok(i < plan.length, "more messages than sent");
        if (!sameBytes(m, plan[i]!)) assert.fail(`message ${i} differs (seed ${seed})`);
        i++;
      }
      return i;
    });
    // Under policy block the relay takes the END (and acknowledges it) only once the slowest of
    // the consumers, all decrypting in this process, has made room; on a loaded machine that is
    // more than close()'s default 5 s after the last broadcast (seen once on Bun in CI).
    const producer = await Producer.connect(relay.addr, session, {
      ...opts,
      closeTimeoutMs: 60_000,
    });
    for (const m of plan) await producer.broadcast(m);
    await producer.close();
    const counts = await Promise.all(received);
    assert.deepEqual(counts, readers.map(() => messages));
    const plainBytes = plan.reduce((n, m) => n + m.length, 0);
    assert.ok(finder.scanned > plainBytes * (consumers + 1), "the tap saw the traffic");
    assert.equal(finder.hits, 0, "plaintext marker seen in the relay's traffic");
    // Positive control: the finder does see the marker when it is there.
    const control = new Finder(marker);
    control.push(pool.subarray(0, 100));
    assert.equal(control.hits, 1);
  } finally {
    await relay.close();
  }
}

describe("Relay fan-out", () => {
  test("1 producer → 16 consumers, 10,000 messages of 0 B–256 KiB, native TCP: all, byte-exact, in order, no plaintext on the wire", async () => {
    // The runtime's own adapter over TCP: the last-but-one setup is <native>/tcp, or node/tcp.
    const all = setups();
    const native = all.findIndex((s) => s.name === `${all.at(-1)!.transport.name}/tcp`);
    await fanOut(native, { messages: 10_000, consumers: 16, seed: 1 });
  });

  setups().forEach((setup, index) => {
    test(`1 producer → 4 consumers, 1,000 messages over ${setup.name}`, async () => {
      await fanOut(index, { messages: 1000, consumers: 4, seed: 100 + index });
    });
  });
});

describe("Relay session semantics", () => {
  for (const setup of setups()) {
    test(`a consumer that joins before the producer receives the stream from its start (${setup.name})`, async () => {
      const relay = await relayOn(setup);
      try {
        const session = Session.generate();
        const consumer = await Consumer.connect(relay.addr, session, {
          transport: setup.transport,
        });
        await new Promise((r) => setTimeout(r, 20));
        const producer = await Producer.connect(relay.addr, session, {
          transport: setup.transport,
        });
        for (let i = 0; i < 100; i++) await producer.broadcast(new Uint8Array([i]));
        await producer.close();
        const got: number[] = [];
        for await (const m of consumer) got.push(m[0]!);
        assert.equal(consumer.stream?.firstSeq, 0n);
        assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
      } finally {
        await relay.close();
      }
    });
  }
});
