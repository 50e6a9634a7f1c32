/**
 * The accept queue behind the push-based adapters' listeners (src/transport/_listener.ts): a
 * crowd of joins can leave thousands of connections waiting in it; these hold it to first in,
 * first out, and to closing what was never taken when the listener closes.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { AcceptQueue } from "../../src/transport/_listener.ts";

/** A stand-in connection that records whether it was closed. */
class Fake {
  closed = false;
  constructor(readonly id: number) {}
  close(): void {
    this.closed = true;
  }
}

test("AcceptQueue hands out thousands of waiting connections in arrival order, interleaved with arrivals", async () => {
  const q = new AcceptQueue<Fake>();
  let next = 0;
  let expected = 0;
  // Bursts of thousands, taken partly, so connections still wait while more arrive.
  for (const [arrive, take] of [[3000, 1700], [500, 1800], [2500, 1000], [0, 500]]) {
    for (let i = 0; i < arrive!; i++) q.push(new Fake(next++));
    for (let i = 0; i < take!; i++) assert.equal((await q.accept())!.id, expected++);
  }
  assert.equal(expected, 5000);
  // Drained: the next accept waits for the next arrival.
  const waiting = q.accept();
  q.push(new Fake(next++));
  assert.equal((await waiting)!.id, expected++);
  // Closing closes exactly the connections never taken, and ends the accepts.
  const left = Array.from({ length: 1200 }, () => new Fake(next++));
  for (const c of left) q.push(c);
  const taken = (await q.accept())!;
  q.close();
  assert.equal(taken.closed, false);
  assert.deepEqual(left.slice(1).filter((c) => !c.closed), []);
  assert.equal(await q.accept(), null);
  const late = new Fake(-1);
  q.push(late);
  assert.equal(late.closed, true, "a connection arriving after close is closed at once");
});

test("AcceptQueue resolves every pending accept with null on close", async () => {
  const q = new AcceptQueue<Fake>();
  const pending = [q.accept(), q.accept(), q.accept()];
  q.push(new Fake(1));
  q.close();
  assert.deepEqual((await Promise.all(pending)).map((c) => c?.id ?? null), [1, null, null]);
});
