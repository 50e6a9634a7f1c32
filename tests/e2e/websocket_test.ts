/**
 * The WebSocket transport (issue 7, part 1): the relay accepts WebSocket clients next to TCP
 * ones (Deno.serve / Bun.serve / the ws package), and `websocketTransport()` connects
 * producers and consumers with the standard `WebSocket` API (the ws package's on Node 20,
 * which has no global one). Mixed sessions deliver identical bytes to both kinds.
 */

import assert from "node:assert/strict";
import process from "node:process";
import { describe, test } from "node:test";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { RelayError } from "../../src/errors.ts";
import { Session } from "../../src/protocol/session.ts";
import { RelayServer } from "../../src/server/relay.ts";
import type { Addr } from "../../src/transport/types.ts";
import { type WebSocketConstructor, websocketTransport } from "../../src/transport/websocket.ts";
import { cleanStop, runCli, selfRt, serveCli, waitForOutput } from "../cli/_run.ts";
import { payloadPool, sameBytes } from "./_fixtures.ts";

const rt = selfRt();

/** The global WebSocket, or the ws package's where there is none (Node 20). */
async function webSocketClass(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global !== undefined) return global;
  const name = "ws";
  return (await import(name) as { WebSocket: WebSocketConstructor }).WebSocket;
}

async function relayWithWs(): Promise<RelayServer & { websocketAddr: Addr }> {
  const relay = await RelayServer.listen({ port: 0, websocket: { port: 0 } });
  assert.ok(relay.websocketAddr !== undefined);
  return relay as RelayServer & { websocketAddr: Addr };
}

describe(`WebSocket transport on ${rt}`, () => {
  test("a mixed session: TCP producer, WebSocket and TCP consumers get identical bytes", async () => {
    const relay = await relayWithWs();
    const ws = websocketTransport({ WebSocket: await webSocketClass() });
    try {
      const session = Session.generate();
      // Policy block: 30 MB outrun a 16 MiB ring; this tests the transport, not the policy.
      const block = { policy: "block" } as const;
      const consumers = await Promise.all([
        Consumer.connect(relay.websocketAddr, session, { transport: ws, ...block }),
        Consumer.connect(relay.websocketAddr, session, { transport: ws, ...block }),
        Consumer.connect(relay.addr, session, block),
      ]);
      const producer = await Producer.connect(relay.addr, session);
      const pool = payloadPool(new Uint8Array([0x68, 0x79]), 1 << 20);
      // Sizes from 0 B to 200 KiB: frames spanning many WebSocket messages, and many frames
      // in one message.
      const sizes = Array.from({ length: 300 }, (_, i) => (i * 7919) % (200 * 1024) * (i % 3));
      const sent = sizes.map((n, i) => pool.subarray(i, i + n));
      const reading = consumers.map(async (c) => {
        const got: Uint8Array[] = [];
        for await (const m of c) got.push(m.slice());
        return got;
      });
      for (const m of sent) await producer.broadcast(m);
      await producer.close();
      for (const got of await Promise.all(reading)) {
        assert.equal(got.length, sent.length);
        got.forEach((m, i) => assert.ok(sameBytes(m, sent[i]!), `message ${i} differs`));
      }
      const stats = relay.stats();
      assert.ok(stats.bytesOut > 0);
    } finally {
      await relay.close();
    }
  });

  test("a WebSocket producer (the browser case) reaches TCP consumers", async () => {
    const relay = await relayWithWs();
    const ws = websocketTransport({ WebSocket: await webSocketClass() });
    try {
      const session = Session.generate();
      const consumer = await Consumer.connect(relay.addr, session);
      const producer = await Producer.connect(relay.websocketAddr, session, { transport: ws });
      for (let i = 0; i < 1000; i++) await producer.broadcast(new Uint8Array(64).fill(i & 255));
      await producer.close();
      let n = 0;
      for await (const m of consumer) {
        assert.ok(m.length === 64 && m.every((b) => b === (n & 255)), `message ${n}`);
        n++;
      }
      assert.equal(n, 1000);
    } finally {
      await relay.close();
    }
  });

  test("plain HTTP gets 426, a text message closes that one connection, the relay goes on", async () => {
    const relay = await relayWithWs();
    const Ws = await webSocketClass();
    try {
      const a = relay.websocketAddr as { hostname: string; port: number };
      const res = await fetch(`http://${a.hostname}:${a.port}/`);
      assert.equal(res.status, 426);
      await res.text();

      const text = new Ws(`ws://${a.hostname}:${a.port}/`) as unknown as {
        addEventListener(t: string, f: (e: { code?: number }) => void): void;
        send(s: string): void;
      };
      const closed = new Promise<number | undefined>((resolve) => {
        text.addEventListener("close", (e) => resolve(e.code));
      });
      await new Promise<void>((resolve) => text.addEventListener("open", () => resolve()));
      text.send("hello");
      assert.ok(await closed !== 1000, "closed for the text message");

      // The relay still serves WebSocket and TCP clients.
      const session = Session.generate();
      const ws = websocketTransport({ WebSocket: Ws });
      const consumer = await Consumer.connect(relay.websocketAddr, session, { transport: ws });
      const producer = await Producer.connect(relay.addr, session);
      await producer.broadcast(new Uint8Array([1, 2, 3]));
      assert.deepEqual(await consumer.recv(), new Uint8Array([1, 2, 3]));
      await producer.close();
      await consumer.close();
    } finally {
      await relay.close();
    }
  });

  test("connect failures and a missing WebSocket class are clear errors", async () => {
    const relay = await relayWithWs();
    const port = (relay.websocketAddr as { port: number }).port;
    await relay.close();
    const ws = websocketTransport({ WebSocket: await webSocketClass() });
    await assert.rejects(
      ws.connect({ kind: "tcp", hostname: "127.0.0.1", port }),
      (e: unknown) => e instanceof RelayError && e.code === "connect-failed",
    );
    await assert.rejects(
      ws.listen({ kind: "tcp", hostname: "127.0.0.1", port: 0 }),
      (e: unknown) => e instanceof RelayError && e.code === "unsupported",
    );
    if ((globalThis as { WebSocket?: unknown }).WebSocket === undefined) {
      await assert.rejects(
        websocketTransport().connect({ kind: "tcp", hostname: "127.0.0.1", port }),
        (e: unknown) =>
          e instanceof RelayError && e.code === "unsupported" && /ws package/.test(e.message),
      );
    } else {
      assert.ok(process.versions !== undefined); // a global WebSocket exists here: nothing to miss
    }
  });

  test("serve --ws: a WebSocket consumer gets what `hydra-relay pub` sends", async () => {
    const relay = await serveCli(rt, ["--ws", "127.0.0.1:0", "--log-level", "warn"]);
    try {
      const url = await waitForOutput(relay, /websocket on ws:\/\/([\d.]+):(\d+)\//);
      const session = Session.generate();
      const consumer = await Consumer.connect(
        { kind: "tcp", hostname: url[1]!, port: Number(url[2]) },
        session,
        { transport: websocketTransport({ WebSocket: await webSocketClass() }) },
      );
      const pub = await runCli(rt, ["pub", "--relay", relay.addr, "--token", session.token()], {
        stdin: new TextEncoder().encode("one\ntwo\nthree\n"),
      });
      assert.equal(pub.code, 0, pub.stderr);
      const got: string[] = [];
      for await (const m of consumer) got.push(new TextDecoder().decode(m));
      assert.deepEqual(got, ["one", "two", "three"]);
    } finally {
      assert.ok(cleanStop(await relay.stop()));
    }
  });

  test("serve --demo serves the pages, the bundle and where the relay takes WebSockets", async () => {
    const misuse = await runCli(rt, ["serve", "--ephemeral", "--demo", "127.0.0.1:0"]);
    assert.equal(misuse.code, 2);
    assert.match(misuse.stderr, /--demo needs --ws HOST:PORT too/);
    const relay = await serveCli(rt, [
      "--ws",
      "127.0.0.1:0",
      "--demo",
      "127.0.0.1:0",
      "--log-level",
      "warn",
    ]);
    try {
      const demo = (await waitForOutput(relay, /demo on (\S+)/))[1]!;
      const ws = (await waitForOutput(relay, /websocket on ws:\/\/(\S+)\//))[1]!;
      const page = await fetch(demo);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /hydra relay · live stream/);
      assert.match(await (await fetch(`${demo}producer.html`)).text(), /hydra relay · producer/);
      assert.deepEqual(await (await fetch(`${demo}demo.json`)).json(), { websocket: ws });
      const js = await fetch(`${demo}hydra-relay.browser.js`);
      assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
      assert.ok((await js.text()).length > 50_000);
      assert.equal((await fetch(`${demo}nope`)).status, 404);
    } finally {
      assert.ok(cleanStop(await relay.stop()));
    }
  });

  test("a WebSocket address in use is refused with addr-in-use; the TCP listener is released", async () => {
    const first = await relayWithWs();
    try {
      const port = (first.websocketAddr as { port: number }).port;
      await assert.rejects(
        RelayServer.listen({ port: 0, websocket: { port } }),
        (e: unknown) => e instanceof RelayError && e.code === "addr-in-use",
      );
    } finally {
      await first.close();
    }
  });
});
