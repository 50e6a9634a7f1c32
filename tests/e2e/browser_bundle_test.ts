/**
 * The browser bundle (npm/dist/hydra-relay.browser.js, built by `npm run build`), loaded as
 * plain ESM on the runtime under test: its Consumer and Producer, over its WebSocket
 * transport, interoperate with the library's TCP clients through a relay. (Real-browser tests
 * in Chromium are issue 7, part 4.)
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, test } from "node:test";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { Session } from "../../src/protocol/session.ts";
import { RelayServer } from "../../src/server/relay.ts";
import type { WebSocketConstructor } from "../../src/transport/websocket.ts";
import { repoRoot } from "../_helpers.ts";
import { selfRt } from "../cli/_run.ts";

const bundlePath = join(repoRoot(), "npm", "dist", "hydra-relay.browser.js");

// deno-lint-ignore no-explicit-any
type Bundle = any;

async function loadBundle(): Promise<Bundle> {
  assert.ok(existsSync(bundlePath), `${bundlePath} missing: run npm run build first`);
  return await import(pathToFileURL(bundlePath).href);
}

async function webSocketClass(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global !== undefined) return global;
  const name = "ws";
  return (await import(name) as { WebSocket: WebSocketConstructor }).WebSocket;
}

describe(`browser bundle on ${selfRt()}`, () => {
  test("is one self-contained ESM file: no node: imports, no bare imports", () => {
    assert.ok(existsSync(bundlePath), `${bundlePath} missing: run npm run build first`);
    const code = readFileSync(bundlePath, "utf8");
    assert.doesNotMatch(code, /\bfrom\s*["'](node:|@noble|[a-z])/);
    assert.doesNotMatch(code, /\bimport\s*\(\s*["']/);
  });

  test("carries no socket adapter: package.json's browser field swaps in default_browser.ts", () => {
    const code = readFileSync(bundlePath, "utf8");
    for (const runtime of ["deno", "bun", "node"]) {
      // Each adapter's one unmistakable string (its refusal outside its runtime).
      assert.doesNotMatch(code, new RegExp(`the ${runtime} transport needs`), runtime);
    }
    const pkg = JSON.parse(readFileSync(join(repoRoot(), "npm", "package.json"), "utf8"));
    assert.deepEqual(pkg.browser, {
      "./src/transport/default.js": "./src/transport/default_browser.js",
    });
  });

  test("its Consumer (WebSocket) gets a TCP producer's stream; its Producer reaches a TCP consumer", async () => {
    const hydra = await loadBundle();
    const WebSocket = await webSocketClass();
    const relay = await RelayServer.listen({ port: 0, websocket: { port: 0 } });
    try {
      const ws = hydra.websocketTransport({ WebSocket });
      // Tokens cross between the bundle's Session and the library's.
      const session = Session.generate();
      const bundled = hydra.Session.fromToken(session.token());
      const consumer = await hydra.Consumer.connect(relay.websocketAddr, bundled, {
        transport: ws,
        codec: hydra.textCodec,
      });
      const producer = await Producer.connect(relay.addr, session);
      for (let i = 0; i < 100; i++) await producer.broadcast(new TextEncoder().encode(`m${i}`));
      await producer.close();
      const got: string[] = [];
      for await (const m of consumer) got.push(m);
      assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => `m${i}`));

      const session2 = hydra.Session.generate();
      const tcpConsumer = await Consumer.connect(relay.addr, Session.fromToken(session2.token()));
      const wsProducer = await hydra.Producer.connect(relay.websocketAddr, session2, {
        transport: ws,
      });
      await wsProducer.broadcast(new Uint8Array([7, 7, 7]));
      await wsProducer.close();
      assert.deepEqual(await tcpConsumer.recv(), new Uint8Array([7, 7, 7]));
      assert.equal(await tcpConsumer.recv(), null);
    } finally {
      await relay.close();
    }
  });
});
