/**
 * The transport conformance suite: every adapter available in the running runtime (memory
 * and node everywhere, deno under Deno, bun under Bun), over TCP and Unix sockets, must pass
 * every case here.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, test } from "node:test";
import { RelayError } from "../../src/errors.ts";
import { type Conn, DEFAULT_HIGH_WATER } from "../../src/transport/types.ts";
import {
  addrKinds,
  availableTransports,
  cleanupTemp,
  echo,
  pair,
  readAll,
  serveEcho,
  sleep,
  within,
} from "../_helpers.ts";

after(cleanupTemp);

const enc = new TextEncoder();
const dec = new TextDecoder();

for (const t of availableTransports()) {
  for (const kind of addrKinds()) {
    const name = `${t.name}/${kind.name}`;

    test(`Conn (${name}) echoes bytes back`, async () => {
      const listener = await t.listen(kind.make());
      const served = serveEcho(listener);
      const conn = await t.connect(listener.addr);
      await conn.write(enc.encode("hello "));
      await conn.write(enc.encode("hydra"));
      await conn.closeWrite();
      assert.equal(dec.decode(await readAll(conn)), "hello hydra");
      await conn.closed;
      await listener.close();
      await served;
    });

    test(`Conn (${name}) transfers 64 MiB byte-exact, chunks stay untouched after read`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      const total = 64 * 1024 * 1024;
      const sent = createHash("sha256");
      const writer = (async () => {
        let seed = 1;
        for (let off = 0; off < total;) {
          const size = Math.min(total - off, 1 + ((seed * 7919) % (256 * 1024)));
          const chunk = new Uint8Array(size);
          for (let i = 0; i < size; i += 4096) chunk[i] = (seed + i) & 0xff;
          chunk[size - 1] = seed & 0xff;
          sent.update(chunk);
          await client.write(chunk);
          off += size;
          seed++;
        }
        await client.closeWrite();
      })();
      // Keep every chunk until the end: an adapter that reuses a buffer it handed out
      // would corrupt the earlier chunks and change the hash.
      const kept: Uint8Array[] = [];
      let received = 0;
      while (true) {
        const c = await server.read();
        if (c === null) break;
        kept.push(c);
        received += c.length;
      }
      await writer;
      const got = createHash("sha256");
      for (const c of kept) got.update(c);
      assert.equal(received, total);
      assert.equal(got.digest("hex"), sent.digest("hex"));
      server.close();
      client.close();
      await listener.close();
    });

    test(`Conn (${name}) write() waits for a slow reader and keeps its queue bounded`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      const chunk = new Uint8Array(16 * 1024).fill(7);
      let written = 0;
      let pending: Promise<void> | undefined;
      // Write until a write stops resolving: the kernel buffers fill, then the adapter's.
      while (written < 256 * 1024 * 1024) {
        const p = client.write(chunk);
        written += chunk.length;
        if ((await within(p, 300)) === "timeout") {
          pending = p;
          break;
        }
      }
      assert.ok(pending !== undefined, `write never waited after ${written} bytes`);
      assert.ok(
        client.writableLength <= DEFAULT_HIGH_WATER + chunk.length,
        `queued ${client.writableLength} bytes, bound ${DEFAULT_HIGH_WATER + chunk.length}`,
      );
      let read = 0;
      const drained = (async () => {
        while (read < written) {
          const c = await server.read();
          if (c === null) break;
          read += c.length;
        }
      })();
      assert.notEqual(
        await within(pending, 10_000),
        "timeout",
        "write did not resume after the reader drained",
      );
      await drained;
      assert.equal(read, written);
      client.close();
      server.close();
      await listener.close();
    });

    test(`Conn (${name}) a written buffer is the caller's again once writableLength is 0`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      const size = 16 * 1024;
      const chunks: Uint8Array[] = [];
      let pending: Promise<void> | undefined;
      // Back the connection up with chunks filled with (index % 200), then let the peer read.
      while (chunks.length < 16 * 1024) {
        const chunk = new Uint8Array(size).fill(chunks.length % 200);
        chunks.push(chunk);
        const p = client.write(chunk);
        if ((await within(p, 300)) === "timeout") {
          pending = p;
          break;
        }
      }
      assert.ok(pending !== undefined && client.writableLength > 0, "never backed up");
      let bad = -1;
      const reader = (async () => {
        for (let at = 0; at < chunks.length * size;) {
          const c = await server.read();
          if (c === null) break;
          for (let i = 0; i < c.length && bad < 0; i++) {
            if (c[i] !== Math.floor((at + i) / size) % 200) bad = at + i;
          }
          at += c.length;
          await sleep(1); // a slow reader: the writer sees writableLength fall over time
        }
      })();
      // The moment the adapter says it holds nothing, the caller scribbles over every chunk
      // (0xEE never occurs in the pattern): the peer must still read the original bytes.
      while (client.writableLength > 0) await sleep(0);
      for (const c of chunks) c.fill(0xee);
      await pending;
      await reader;
      assert.equal(bad, -1, `byte ${bad} changed after writableLength was 0`);

      // After close(), writableLength reaches 0 (nothing sends the queued bytes any more).
      while (true) {
        const p = client.write(new Uint8Array(size));
        if ((await within(p, 300)) === "timeout") break;
      }
      assert.ok(client.writableLength > 0);
      client.close();
      const deadline = Date.now() + 2000;
      while (client.writableLength > 0 && Date.now() < deadline) await sleep(10);
      assert.equal(client.writableLength, 0, "writableLength after close()");
      server.close();
      await listener.close();
    });

    test(`Conn (${name}) closeWrite() half-closes: peer reads EOF and can still reply`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      await client.write(enc.encode("request"));
      await client.closeWrite();
      assert.equal(dec.decode(await readAll(server)), "request");
      await server.write(enc.encode("reply after EOF"));
      await server.closeWrite();
      assert.equal(dec.decode(await readAll(client)), "reply after EOF");
      assert.notEqual(await within(Promise.all([client.closed, server.closed]), 5000), "timeout");
      await assert.rejects(
        client.write(enc.encode("x")),
        (e: unknown) => e instanceof RelayError && e.code === "closed",
      );
      await listener.close();
    });

    test(`Conn (${name}) close() is seen by the peer as end of stream`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      await client.write(enc.encode("partial"));
      await sleep(20);
      client.close();
      const outcome = await within(
        readAll(server).then(
          (bytes) => `eof:${dec.decode(bytes)}`,
          (e: unknown) => (e instanceof RelayError ? `error:${e.code}` : `other:${e}`),
        ),
        5000,
      );
      assert.ok(outcome === "eof:partial" || outcome === "error:connection-lost", outcome);
      await assert.rejects(
        client.read(),
        (e: unknown) => e instanceof RelayError && e.code === "closed",
      );
      server.close();
      await listener.close();
    });

    test(`Transport (${name}) connect to a closed endpoint fails with connect-failed`, async () => {
      const listener = await t.listen(kind.make());
      const addr = listener.addr;
      await listener.close();
      await sleep(10);
      await assert.rejects(
        t.connect(addr),
        (e: unknown) =>
          e instanceof RelayError && e.code === "connect-failed" && /refused/.test(e.message),
      );
    });

    test(`Conn (${name}) write after the peer closed fails with connection-lost`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      server.close();
      // The first writes may still be taken by the kernel; a dead peer must surface soon.
      let error: unknown;
      for (let i = 0; i < 200 && error === undefined; i++) {
        try {
          await client.write(new Uint8Array(64 * 1024));
        } catch (e) {
          error = e;
        }
        await sleep(5);
      }
      assert.ok(error instanceof RelayError, `no error: ${error}`);
      assert.equal(error.code, "connection-lost");
      client.close();
      await listener.close();
    });

    test(`Listener (${name}) frees its address on close, so listening again succeeds`, async () => {
      const first = await t.listen(kind.make());
      await first.close();
      const again = await t.listen(first.addr);
      const served = serveEcho(again);
      const conn = await t.connect(again.addr);
      await conn.write(enc.encode("again"));
      await conn.closeWrite();
      assert.equal(dec.decode(await readAll(conn)), "again");
      await again.close();
      await served;
    });

    test(`Transport (${name}) listen on a taken address fails with addr-in-use`, async () => {
      const listener = await t.listen(kind.make());
      await assert.rejects(
        t.listen(listener.addr),
        (e: unknown) => e instanceof RelayError && e.code === "addr-in-use",
      );
      await listener.close();
    });

    test(`Listener (${name}) serves 500 concurrent connections that each echo correctly`, async () => {
      const listener = await t.listen(kind.make());
      const served = serveEcho(listener);
      const results = await Promise.all(
        Array.from({ length: 500 }, async (_, i) => {
          const conn = await t.connect(listener.addr);
          const msg = `connection ${i} `.repeat(1 + (i % 50));
          await conn.write(enc.encode(msg));
          await conn.closeWrite();
          const got = dec.decode(await readAll(conn));
          conn.close();
          return got === msg;
        }),
      );
      assert.equal(results.filter(Boolean).length, 500);
      await listener.close();
      await served;
    });

    test(`Listener (${name}) pause() turns new connections away (Deno: holds them) until resume()`, async () => {
      const listener = await t.listen(kind.make());
      try {
        const [before, accepted] = await pair(t, listener);
        listener.pause();
        listener.pause(); // idempotent
        // Arriving while paused: never handed to accept() while the pause lasts.
        const waiting = listener.accept();
        const early = await t.connect(listener.addr);
        assert.equal(await within(waiting, 300), "timeout");
        // A connection accepted before the pause is untouched.
        await before.write(enc.encode("x"));
        assert.equal(dec.decode((await accepted.read())!), "x");
        listener.resume();
        listener.resume(); // idempotent
        const late = await t.connect(listener.addr);
        await late.write(enc.encode("late"));
        const next = await within(waiting, 5000);
        assert.notEqual(next, "timeout");
        if (t.name === "deno") {
          // Deno's accept is a pull: the early one waited in the kernel's backlog, and comes
          // first now; nothing was turned away.
          assert.equal(listener.turnedAway, 0);
          const second = await within(listener.accept(), 5000);
          assert.notEqual(second, "timeout");
          assert.equal(dec.decode((await (second as Conn).read())!), "late");
          (second as Conn).close();
        } else {
          // Everywhere else the early one was closed unanswered and counted.
          assert.equal(await within(early.read().catch(() => null), 5000), null);
          assert.equal(listener.turnedAway, 1);
          assert.equal(dec.decode((await (next as Conn).read())!), "late");
        }
        for (const c of [before, accepted, early, late, next as Conn]) c.close();
      } finally {
        await listener.close();
      }
    });

    test(`Listener (${name}) close() stops accepting and leaves open connections working`, async () => {
      const listener = await t.listen(kind.make());
      const [client, server] = await pair(t, listener);
      const echoing = echo(server);
      const pendingAccept = listener.accept();
      await listener.close();
      assert.equal(await within(pendingAccept, 2000), null);
      assert.equal(await listener.accept(), null);
      await client.write(enc.encode("still here"));
      await client.closeWrite();
      assert.equal(dec.decode(await readAll(client)), "still here");
      await echoing;
      await assert.rejects(
        t.connect(listener.addr),
        (e: unknown) => e instanceof RelayError && e.code === "connect-failed",
      );
    });
  }
}

// Adapters speak plain TCP/Unix sockets, so any two interoperate: a Deno listener serves a
// node:net client and so on. This guards against an adapter depending on its own peer.
const sockets = availableTransports().filter((t) => t.name !== "memory");
for (const server of sockets) {
  for (const client of sockets) {
    if (server === client) continue;
    for (const kind of addrKinds()) {
      test(`Transports interoperate: ${server.name} listener, ${client.name} client (${kind.name})`, async () => {
        const listener = await server.listen(kind.make());
        const served = serveEcho(listener);
        const conn = await client.connect(listener.addr);
        const payload = new Uint8Array(1024 * 1024).map((_, i) => i * 31);
        const reading = readAll(conn);
        await conn.write(payload);
        await conn.closeWrite();
        assert.deepEqual(await reading, payload);
        await listener.close();
        await served;
      });
    }
  }
}
