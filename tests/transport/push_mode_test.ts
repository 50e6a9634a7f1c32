/**
 * Push-mode reading (`Conn.startReading`), on every adapter the running runtime offers, over
 * TCP and Unix sockets: the relay reads its connections this way, so these are the contract
 * its connection state machine relies on (src/server/connection.ts).
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, test } from "node:test";
import { RelayError } from "../../src/errors.ts";
import type { Conn, ConnSink } from "../../src/transport/types.ts";
import { addrKinds, availableTransports, cleanupTemp, pair, sleep, within } from "../_helpers.ts";

after(cleanupTemp);

/** A sink that records what it gets and signals its end. */
function recorder(): ConnSink & {
  chunks: Uint8Array[];
  bytes: number;
  ended: Promise<unknown>;
  endCount: number;
} {
  let resolve!: (e: unknown) => void;
  const ended = new Promise<unknown>((r) => (resolve = r));
  const sink = {
    chunks: [] as Uint8Array[],
    bytes: 0,
    ended,
    endCount: 0,
    onData(chunk: Uint8Array) {
      sink.chunks.push(chunk);
      sink.bytes += chunk.length;
    },
    onEnd(error: unknown) {
      sink.endCount++;
      resolve(error);
    },
  };
  return sink;
}

/** Writes `total` bytes of a deterministic pattern in varied chunk sizes; returns its hash. */
async function writePattern(conn: Conn, total: number): Promise<string> {
  const sent = createHash("sha256");
  let seed = 1;
  for (let off = 0; off < total;) {
    const size = Math.min(total - off, 1 + ((seed * 7919) % (64 * 1024)));
    const chunk = new Uint8Array(size);
    for (let i = 0; i < size; i += 512) chunk[i] = (seed + i) & 0xff;
    chunk[size - 1] = seed & 0xff;
    sent.update(chunk);
    await conn.write(chunk);
    off += size;
    seed++;
  }
  await conn.closeWrite();
  return sent.digest("hex");
}

for (const t of availableTransports()) {
  for (const kind of addrKinds()) {
    const name = `${t.name}/${kind.name}`;

    test(`Conn (${name}) startReading hands every chunk to the sink in order, kept intact, then the end once`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      const sink = recorder();
      server.startReading(sink);
      const hash = await writePattern(client, 8 * 1024 * 1024);
      assert.equal(await within(sink.ended, 10_000), undefined, "end of stream, no error");
      const got = createHash("sha256");
      for (const c of sink.chunks) got.update(c);
      assert.equal(sink.bytes, 8 * 1024 * 1024);
      assert.equal(got.digest("hex"), hash, "every chunk kept untouched, in order");
      assert.equal(sink.endCount, 1);
      server.close();
      await listener.close();
    });

    test(`Conn (${name}) pauseReading holds chunks back and bounds the sender; resumeReading hands them over in order`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      const sink = recorder();
      server.startReading(sink);
      server.pauseReading();
      const chunk = new Uint8Array(16 * 1024);
      let written = 0;
      let pending: Promise<void> | undefined;
      // Write until a write stops resolving: a paused sink must be backpressure, not memory.
      while (written < 256 * 1024 * 1024) {
        new DataView(chunk.buffer).setUint32(0, written / chunk.length);
        const p = client.write(chunk.slice());
        written += chunk.length;
        if ((await within(p, 300)) === "timeout") {
          pending = p;
          break;
        }
      }
      assert.ok(pending !== undefined, `write never waited after ${written} bytes`);
      const heldBytes = sink.bytes;
      server.resumeReading();
      assert.notEqual(await within(pending, 10_000), "timeout", "writer resumed");
      await client.closeWrite();
      assert.equal(await within(sink.ended, 10_000), undefined);
      assert.equal(sink.bytes, written, `all bytes arrived (${heldBytes} before resuming)`);
      // Chunk boundaries may differ from the writes; the stamps must read back in order.
      const all = new Uint8Array(sink.bytes);
      let at = 0;
      for (const c of sink.chunks) {
        all.set(c, at);
        at += c.length;
      }
      const v = new DataView(all.buffer);
      for (let i = 0; i < written / chunk.length; i++) {
        assert.equal(v.getUint32(i * chunk.length), i, `chunk ${i} in order`);
      }
      server.close();
      await listener.close();
    });

    test(`Conn (${name}) a sink pausing inside onData gets nothing more until it resumes`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      let inside = false;
      let overlapped = false;
      let bytes = 0;
      let resolveEnd!: (e: unknown) => void;
      const ended = new Promise((r) => (resolveEnd = r));
      server.startReading({
        onData(c) {
          if (inside) overlapped = true;
          inside = true;
          bytes += c.length;
          server.pauseReading();
          // Resume from a later task, as the relay does after an awaited step.
          setTimeout(() => {
            inside = false;
            server.resumeReading();
          }, 0);
        },
        onEnd: (e) => resolveEnd(e),
      });
      const total = 2 * 1024 * 1024;
      await writePattern(client, total);
      assert.equal(await within(ended, 20_000), undefined);
      assert.equal(bytes, total);
      assert.equal(overlapped, false, "onData called while paused");
      server.close();
      await listener.close();
    });

    test(`Conn (${name}) close() ends a reading sink with closed; the peer's close ends it too`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      const local = recorder();
      server.startReading(local);
      const remote = recorder();
      client.startReading(remote);
      server.close();
      const e = await within(local.ended, 5000);
      assert.ok(e instanceof RelayError && e.code === "closed", `local close: ${String(e)}`);
      const r = await within(remote.ended, 5000);
      assert.ok(
        r === undefined || (r instanceof RelayError && r.code === "connection-lost"),
        `peer's close: ${String(r)}`,
      );
      await sleep(10);
      assert.equal(local.endCount, 1);
      assert.equal(remote.endCount, 1);
      await assert.rejects(
        server.read(),
        (e: unknown) => e instanceof TypeError || (e instanceof RelayError && e.code === "closed"),
      );
      client.close();
      await listener.close();
    });

    test(`Conn (${name}) startReading twice is a TypeError`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      server.startReading(recorder());
      assert.throws(() => server.startReading(recorder()), TypeError);
      client.close();
      server.close();
      await listener.close();
    });
  }
}
