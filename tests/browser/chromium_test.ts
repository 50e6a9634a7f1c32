/**
 * Real-browser tests (issue 7, part 4): Debian's Chromium, headless, driven by playwright-core,
 * loads pages that use the browser bundle (npm/dist/hydra-relay.browser.js) over WebSockets:
 * a browser consumer receives what the CLI's `pub` sends, byte-exact; a browser producer
 * reaches a Node consumer. They run in the Node stage of `npm test` (playwright drives the
 * browser from Node); CI installs chromium with apt and sets HYDRA_REQUIRE_CHROMIUM.
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import process from "node:process";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { tmpdir } from "node:os";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { nativeCrypto } from "../../src/crypto/native.ts";
import { ControlKind } from "../../src/protocol/control.ts";
import { sealData } from "../../src/protocol/data_frame.ts";
import { Role } from "../../src/protocol/join.ts";
import { Session } from "../../src/protocol/session.ts";
import type { RelayOptions } from "../../src/server/options.ts";
import { RelayServer } from "../../src/server/relay.ts";
import { TAMPER, type Tamper } from "../../src/server/_tamper.ts";
import { repoRoot } from "../_helpers.ts";
import { runCli, selfRt, serveCli, waitForOutput } from "../cli/_run.ts";

const CHROMIUM = process.env.HYDRA_CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

/** The parts of playwright-core used here. */
interface Page {
  goto(url: string): Promise<unknown>;
  waitForFunction(f: string, arg?: unknown, o?: { timeout: number }): Promise<unknown>;
  evaluate<T>(f: string): Promise<T>;
  on(
    event: "console" | "pageerror",
    f: (m: { text?: () => string; message?: string }) => void,
  ): void;
  textContent(selector: string): Promise<string | null>;
  screenshot(o: { path?: string; fullPage?: boolean }): Promise<Uint8Array>;
  setViewportSize(s: { width: number; height: number }): Promise<void>;
}
interface Browser {
  newPage(): Promise<Page>;
  close(): Promise<void>;
}
interface Playwright {
  chromium: {
    launch(o: { executablePath: string; args: string[]; headless: boolean }): Promise<Browser>;
  };
}

const bundle = join(repoRoot(), "npm", "dist", "hydra-relay.browser.js");

function msg(i: number): Uint8Array {
  return Uint8Array.from({ length: 24 }, (_, k) => (i * 13 + k) & 0xff);
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const CONSUMER_PAGE = `<!doctype html><meta charset="utf-8"><title>hydra consumer</title>
<script type="module">
import { Consumer, ReadCapability, Session } from "/hydra-relay.browser.js";
const q = new URLSearchParams(location.search);
const token = q.get("token");
const messages = [];
const events = [];
try {
  const cap = token.startsWith("hydra2r_") ? ReadCapability.fromToken(token) : Session.fromToken(token);
  const consumer = await Consumer.connect(q.get("relay"), cap, { reconnect: false });
  consumer.on("rotated", (e) => events.push("rotated:" + e.generation));
  if (q.get("grant")) await consumer.grant(ReadCapability.fromToken(q.get("grant")));
  window.hydraReady = true;
  for await (const m of consumer) messages.push(Array.from(m, (b) => b.toString(16).padStart(2, "0")).join(""));
  window.hydraResult = { ok: true, messages, events, crypto: consumer.connection ? "ok" : "?" };
} catch (e) {
  window.hydraResult = { ok: false, error: String(e && e.stack || e), code: e && e.code, messages, events };
}
</script>`;

const PRODUCER_PAGE = `<!doctype html><meta charset="utf-8"><title>hydra producer</title>
<script type="module">
import { Producer, Session } from "/hydra-relay.browser.js";
const q = new URLSearchParams(location.search);
try {
  const producer = await Producer.connect(q.get("relay"), Session.fromToken(q.get("token")));
  const n = Number(q.get("n"));
  for (let i = 0; i < n; i++) {
    const m = new Uint8Array(1 + (i * 131) % 5000);
    for (let k = 0; k < m.length; k++) m[k] = (i * 7 + k) & 255;
    await producer.broadcast(m);
  }
  await producer.close();
  window.hydraResult = { ok: true };
} catch (e) {
  window.hydraResult = { ok: false, error: String(e && e.stack || e) };
}
</script>`;

function serveStatic(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const body = path === "/hydra-relay.browser.js"
      ? readFileSync(bundle)
      : path === "/consumer.html"
      ? CONSUMER_PAGE
      : path === "/producer.html"
      ? PRODUCER_PAGE
      : undefined;
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    const type = path.endsWith(".js") ? "text/javascript" : "text/html; charset=utf-8";
    res.writeHead(200, { "content-type": type }).end(body);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const a = server.address() as { port: number };
      resolve({ server, url: `http://127.0.0.1:${a.port}` });
    })
  );
}

async function result(
  page: Page,
): Promise<{ ok: boolean; error?: string; code?: string; messages?: string[] }> {
  await page.waitForFunction("window.hydraResult !== undefined", undefined, { timeout: 60_000 });
  return await page.evaluate("window.hydraResult");
}

if (selfRt() !== "node") {
  console.log("# real-browser tests run in the Node stage (playwright drives Chromium from Node)");
} else {
  const present = existsSync(CHROMIUM);
  if (!present && process.env.HYDRA_REQUIRE_CHROMIUM !== undefined) {
    throw new Error(`${CHROMIUM} is missing: install it with \`apt-get install -y chromium\``);
  }
  describe(`Chromium (${CHROMIUM}) as a producer and a consumer`, {
    skip: present ? false : `${CHROMIUM} not installed (apt-get install -y chromium)`,
  }, () => {
    let browser: Browser;
    let relay: RelayServer;
    let site: { server: Server; url: string };
    let relayWs: string;

    before(async () => {
      assert.ok(existsSync(bundle), `${bundle} missing: run npm run build first`);
      const name = "playwright-core";
      const pw = await import(name) as Playwright;
      browser = await pw.chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
      relay = await RelayServer.listen({ port: 0, websocket: { port: 0 } });
      relayWs = `127.0.0.1:${relay.websocketAddr!.port}`;
      site = await serveStatic();
    });

    after(async () => {
      await browser?.close();
      await relay?.close();
      site?.server.close();
    });

    async function open(path: string): Promise<Page> {
      const page = await browser.newPage();
      page.on("pageerror", (e) => console.log(`# page error: ${e.message}`));
      await page.goto(`${site.url}${path}`);
      return page;
    }

    test("a browser consumer and a TCP consumer both receive what `hydra-relay pub` sends, byte-exact", async () => {
      const session = Session.generate();
      const tcp = await Consumer.connect(relay.addr, session);
      const tcpGot = (async () => {
        const got: string[] = [];
        for await (const m of tcp) got.push(new TextDecoder().decode(m));
        return got;
      })();
      const page = await open(
        `/consumer.html?relay=${relayWs}&token=${encodeURIComponent(session.token())}`,
      );
      // The consumer joins first and waits for the producer.
      await new Promise((r) => setTimeout(r, 500));
      const lines = Array.from(
        { length: 500 },
        (_, i) => `${i} ${"é✓x".repeat(i % 40)} ${(i * 2654435761) >>> 0}`,
      );
      const addr = relay.addr.kind === "tcp" ? `127.0.0.1:${relay.addr.port}` : "";
      const pub = await runCli("node", ["pub", "--relay", addr, "--token", session.token()], {
        stdin: new TextEncoder().encode(lines.join("\n") + "\n"),
      });
      assert.equal(pub.code, 0, pub.stderr);
      const r = await result(page);
      assert.ok(r.ok, r.error);
      const got = r.messages!.map((hex) =>
        new TextDecoder().decode(Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16)))
      );
      assert.deepEqual(got, lines);
      assert.deepEqual(await tcpGot, lines);
    });

    test("a browser consumer with a read token verifies the stream and refuses a reader's forgery", async () => {
      const session = Session.generate();
      const read = await session.readOnly(nativeCrypto());
      const keys = await read.keys(nativeCrypto());
      let forged: Uint8Array | undefined;
      const consumers = new Set<number>();
      // The relay run by a read-token holder: frame 10 to consumers becomes one it sealed.
      const attacked = await RelayServer.listen({
        port: 0,
        websocket: { port: 0 },
        logLevel: "off",
        [TAMPER]: ((conn, out) => {
          if (out.kind === "control" && out.message.kind === ControlKind.Joined) {
            if (out.message.role === Role.Consumer) consumers.add(conn);
            return [out];
          }
          if (!consumers.has(conn)) return [out];
          if (out.kind === "control" && out.message.kind === ControlKind.StreamStart) {
            const epoch = out.message.epoch.slice();
            void nativeCrypto().aesGcm(read.dataKey(nativeCrypto(), epoch, 0, 0)).then((a) =>
              sealData(a, { streamTag: keys.streamTag, seq: 10n, flags: 0, plaintext: msg(999) })
            ).then((f) => (forged = f));
          }
          const seq = out.kind === "data"
            ? new DataView(out.bytes.buffer, out.bytes.byteOffset).getBigUint64(14)
            : -1n;
          if (seq === 10n) return forged === undefined ? [] : [{ kind: "data", bytes: forged }];
          return [out];
        }) as Tamper,
      } as RelayOptions);
      try {
        const ws = `127.0.0.1:${attacked.websocketAddr!.port}`;
        const honest = await open(
          `/consumer.html?relay=${relayWs}&token=${encodeURIComponent(read.token())}`,
        );
        const victim = await open(
          `/consumer.html?relay=${ws}&token=${encodeURIComponent(read.token())}`,
        );
        await new Promise((r) => setTimeout(r, 500)); // both join before the producers
        for (const r of [relay, attacked]) {
          const p = await Producer.connect(r.addr, session, {
            batchThreshold: 0,
            segmentFrames: 1,
          });
          for (let i = 0; i < 30; i++) {
            await p.broadcast(msg(i));
            if (i === 5) await new Promise((s) => setTimeout(s, 50));
          }
          await p.close().catch(() => {});
        }
        const want = Array.from({ length: 30 }, (_, i) => hex(msg(i)));
        const h = await result(honest);
        assert.ok(h.ok, h.error);
        assert.deepEqual(h.messages, want);
        const v = await result(victim);
        assert.equal(v.ok, false);
        assert.equal(v.code, "tampered", v.error);
        assert.deepEqual(
          v.messages,
          want.slice(0, 10),
          "only the producer's frames, up to the forgery",
        );
      } finally {
        await attacked.close({ drainMs: 100 });
      }
    });

    test("rotation in the browser: a granted page reads on without a gap, an old token is revoked", async () => {
      const session = Session.generate();
      const c = nativeCrypto();
      const [g0, g1] = await Promise.all([session.readOnly(c, 0), session.readOnly(c, 1)]);
      const q = (token: string) =>
        `/consumer.html?relay=${relayWs}&token=${encodeURIComponent(token)}`;
      const keeper = await open(`${q(g0.token())}&grant=${encodeURIComponent(g1.token())}`);
      const old = await open(q(g0.token()));
      for (const page of [keeper, old]) {
        await page.waitForFunction("window.hydraReady === true", undefined, { timeout: 60_000 });
      }
      const p = await Producer.connect(relay.addr, session);
      for (let i = 0; i < 10; i++) await p.broadcast(msg(i));
      assert.equal((await p.rotate()).generation, 1);
      for (let i = 10; i < 20; i++) await p.broadcast(msg(i));
      await p.close();
      const want = Array.from({ length: 20 }, (_, i) => hex(msg(i)));
      const k = await result(keeper) as {
        ok: boolean;
        error?: string;
        messages?: string[];
        events?: string[];
      };
      assert.ok(k.ok, k.error);
      assert.deepEqual(k.messages, want);
      assert.deepEqual(k.events, ["rotated:1"]);
      const o = await result(old);
      assert.equal(o.ok, false);
      assert.equal(o.code, "revoked", o.error);
      assert.deepEqual(o.messages, want.slice(0, 10), "the old stream whole, nothing of the new");
    });

    test("the demo (serve --ws --demo): the page charts a stream; screenshot checked", async () => {
      const served = await serveCli("node", [
        "--ws",
        "127.0.0.1:0",
        "--demo",
        "127.0.0.1:0",
        "--log-level",
        "warn",
      ]);
      try {
        const demoUrl = (await waitForOutput(served, /demo on (\S+)/))[1]!;
        const session = Session.generate();
        const page = await browser.newPage();
        await page.setViewportSize({ width: 1000, height: 800 });
        await page.goto(`${demoUrl}#token=${encodeURIComponent(session.token())}`);
        await page.waitForFunction(
          "document.getElementById('status').textContent.startsWith('connected')",
          undefined,
          { timeout: 30_000 },
        );
        const producer = await Producer.connect(served.addr, session);
        const values = Array.from({ length: 100 }, (_, i) => 50 + 40 * Math.sin(i / 8));
        for (const v of values) await producer.broadcast(new TextEncoder().encode(v.toFixed(2)));
        await producer.close();
        await page.waitForFunction("document.body.dataset.done === '1'", undefined, {
          timeout: 30_000,
        });
        const status = await page.textContent("#status");
        assert.match(status ?? "", new RegExp(`^100 messages · last ${values.at(-1)!.toFixed(2)}`));
        // The chart: the line's blue pixels are on the canvas, spread over its width.
        const drawn = await page.evaluate<{ blue: number; columns: number }>(`(() => {
          const c = document.getElementById("chart");
          const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
          let blue = 0; const cols = new Set();
          for (let i = 0; i < d.length; i += 4) {
            if (d[i + 2] > 200 && d[i] < 80 && d[i + 3] > 0) { blue++; cols.add((i / 4) % c.width); }
          }
          return { blue, columns: cols.size };
        })()`);
        assert.ok(drawn.blue > 2000 && drawn.columns > 1400, JSON.stringify(drawn));
        const shot = join(tmpdir(), `hydra-demo-${process.pid}.png`);
        const png = await page.screenshot({ path: shot, fullPage: true });
        assert.ok(png.length > 10_000, `screenshot of ${png.length} bytes`);
        assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
        console.log(`# demo screenshot: ${shot} (${png.length} bytes)`);
      } finally {
        await served.stop();
      }
    });

    test("a browser producer reaches a Node consumer, byte-exact", async () => {
      const session = Session.generate();
      const consumer = await Consumer.connect(relay.addr, session);
      const n = 300;
      const page = await open(
        `/producer.html?relay=${relayWs}&n=${n}&token=${encodeURIComponent(session.token())}`,
      );
      const r = await result(page);
      assert.ok(r.ok, r.error);
      let i = 0;
      for await (const m of consumer) {
        assert.equal(m.length, 1 + (i * 131) % 5000, `message ${i} length`);
        for (let k = 0; k < m.length; k++) {
          if (m[k] !== ((i * 7 + k) & 255)) assert.fail(`message ${i} byte ${k} differs`);
        }
        i++;
      }
      assert.equal(i, n);
    });
  });
}
