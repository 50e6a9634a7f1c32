/**
 * The relay's handshake rate limit (src/server/_admission.ts) on a fake clock: the bucket's
 * burst, the pace after it, the listeners paused while out of tokens and resumed when the next
 * one is due, and the count of what was turned away.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { HandshakeGate } from "../../src/server/_admission.ts";
import type { Conn, Listener } from "../../src/transport/types.ts";

/** A listener that only records pauses; `away` stands for what its runtime turned away. */
function fakeListener(): Listener & { paused: boolean; pauses: number; away: number } {
  return {
    addr: { kind: "tcp", hostname: "127.0.0.1", port: 1 },
    paused: false,
    pauses: 0,
    away: 0,
    accept: () => Promise.resolve<Conn | null>(null),
    pause() {
      if (!this.paused) this.pauses++;
      this.paused = true;
    },
    resume() {
      this.paused = false;
    },
    get turnedAway() {
      return this.away;
    },
    close: () => Promise.resolve(),
    async *[Symbol.asyncIterator]() {},
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("HandshakeGate admits a second's burst, then pauses its listeners until a token is due", async () => {
  let now = 0;
  const l = fakeListener();
  let throttles = 0;
  const gate = new HandshakeGate(10, [l], () => throttles++, () => now);
  try {
    // A full bucket: ten at once; taking the last token pauses the listener at once.
    for (let i = 0; i < 10; i++) assert.equal(gate.admit(), true, `admission ${i}`);
    assert.equal(l.paused, true);
    assert.equal(throttles, 1);
    // One that the runtime let through before the pause took effect: closed here, counted.
    assert.equal(gate.admit(), false);
    assert.equal(gate.throttled, 1);
    l.away = 4; // what the paused listener turned away itself
    assert.equal(gate.throttled, 5);
    // The next token is due 100 ms later (10/s); the resume timer is set for then.
    now = 100;
    await sleep(150);
    assert.equal(l.paused, false);
    assert.equal(gate.admit(), true);
    assert.equal(l.paused, true, "the last token went again");
    assert.equal(l.pauses, 2);
    // Refilled over time, never above one second's worth.
    now = 10_000;
    await sleep(150);
    for (let i = 0; i < 10; i++) assert.equal(gate.admit(), true);
    assert.equal(gate.admit(), false);
  } finally {
    gate.close();
  }
});

test("HandshakeGate with rate 0 admits everything and never pauses", () => {
  const l = fakeListener();
  const gate = new HandshakeGate(0, [l], () => assert.fail("throttled"), () => 0);
  for (let i = 0; i < 100_000; i++) assert.equal(gate.admit(), true);
  assert.equal(l.pauses, 0);
  assert.equal(gate.throttled, 0);
  gate.close();
});

test("HandshakeGate.close() cancels a pending resume", async () => {
  const l = fakeListener();
  const gate = new HandshakeGate(1, [l], () => {}, () => 0);
  assert.equal(gate.admit(), true);
  assert.equal(l.paused, true);
  gate.close();
  await sleep(1100);
  assert.equal(l.paused, true, "no timer left behind to resume a closed relay's listeners");
});
