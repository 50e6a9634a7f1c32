/**
 * Metrics, health and graceful drain (issue 6, parts 1–2): `/metrics` scraped over real HTTP
 * and validated by Prometheus' own `promtool check metrics` (Debian package `prometheus`;
 * CI installs it), `/healthz` and `/readyz`, and `serve` draining on SIGTERM.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { describe, test } from "node:test";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { serveMetrics } from "../../src/cli/metrics_http.ts";
import { RelayError } from "../../src/errors.ts";
import { Session } from "../../src/protocol/session.ts";
import { METRICS_CONTENT_TYPE } from "../../src/server/metrics.ts";
import { RelayServer } from "../../src/server/relay.ts";
import { defaultTransport } from "../../src/transport/default.ts";
import { parseAddr } from "../../src/transport/addr.ts";
import { cleanStop, runCli, selfRt, serveCli, waitForOutput } from "./_run.ts";

const rt = selfRt();
const promtool = spawnSync("promtool", ["--version"]).status === 0;
if (!promtool && process.env.HYDRA_REQUIRE_PROMTOOL !== undefined) {
  throw new Error("promtool is missing: install it with `apt-get install -y prometheus`");
}

/** Runs `promtool check metrics`; returns its complaints (empty when clean). */
function promtoolCheck(text: string): string {
  const r = spawnSync("promtool", ["check", "metrics"], { input: text });
  assert.equal(r.error, undefined, String(r.error));
  return `${r.stdout}${r.stderr}`.trim() + (r.status === 0 ? "" : ` (exit ${r.status})`);
}

/** The value of one sample, e.g. `value(text, 'hydra_connections{role="producer"}')`. */
function value(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  assert.ok(line !== undefined, `no sample ${series} in:\n${text}`);
  return Number(line.slice(series.length + 1));
}

async function get(url: string): Promise<{ status: number; type: string | null; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
}

async function rawGarbage(addr: string): Promise<void> {
  const conn = await defaultTransport().connect(parseAddr(addr));
  await conn.write(new Uint8Array([0, 0, 0, 3, 9, 1, 2, 3]));
  await conn.read().catch(() => null);
  conn.close();
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe(`metrics and health on ${rt}`, () => {
  test("/metrics counts roles, traffic and failures by kind, and passes promtool", async () => {
    const relay = await RelayServer.listen({ port: 0 });
    const http = await serveMetrics(relay, { kind: "tcp", hostname: "127.0.0.1", port: 0 });
    const base = `http://127.0.0.1:${http.addr.port}`;
    const addr = `127.0.0.1:${relay.addr.kind === "tcp" ? relay.addr.port : 0}`;
    try {
      const session = Session.generate();
      const consumers = await Promise.all(
        [0, 1].map(() => Consumer.connect(relay.addr, session, { reconnect: false })),
      );
      const producer = await Producer.connect(relay.addr, session, { reconnect: false });
      await assert.rejects(
        Producer.connect(relay.addr, session, { reconnect: false }),
        (e: unknown) => e instanceof RelayError && e.code === "producer-exists",
      );
      await rawGarbage(addr);
      for (let i = 0; i < 10; i++) await producer.broadcast(new Uint8Array(100).fill(i));
      for (const c of consumers) for (let i = 0; i < 10; i++) await c.recv();
      await until("the failed handshake to be counted", () => relay.stats().handshakeFailures > 0);

      const m = await get(`${base}/metrics`);
      assert.equal(m.status, 200);
      assert.equal(m.type, METRICS_CONTENT_TYPE);
      const t = m.body;
      assert.equal(value(t, 'hydra_connections{role="producer"}'), 1);
      assert.equal(value(t, 'hydra_connections{role="consumer"}'), 2);
      assert.equal(value(t, "hydra_sessions"), 1);
      assert.equal(value(t, "hydra_producers"), 1);
      assert.equal(value(t, "hydra_consumers"), 2);
      // Small messages travel batched: count frames, whatever the batching did.
      const frames = value(t, "hydra_received_frames_total");
      assert.ok(frames >= 1 && frames <= 10, `${frames} frames`);
      assert.equal(value(t, "hydra_sent_frames_total"), 2 * frames);
      assert.ok(value(t, "hydra_sent_bytes_total") >= 20 * 100);
      assert.ok(value(t, "hydra_received_bytes_total") >= 10 * 100);
      assert.equal(value(t, 'hydra_join_failures_total{kind="producer-exists"}'), 1);
      assert.equal(value(t, 'hydra_join_failures_total{kind="auth-failed"}'), 0);
      assert.equal(value(t, 'hydra_handshake_failures_total{kind="protocol-error"}'), 1);
      assert.equal(value(t, "hydra_ring_frames"), frames + 1); // and the stream-start event
      assert.ok(value(t, "hydra_ring_bytes") > 10 * 100);
      assert.ok(value(t, "hydra_ring_budget_bytes") > 0);
      assert.ok(value(t, "process_resident_memory_bytes") > 1 << 20);
      assert.ok(value(t, "hydra_uptime_seconds") > 0);
      assert.equal(value(t, "hydra_draining"), 0);
      // The refused producer's connection and the garbage one are closed by now.
      assert.ok(value(t, 'hydra_disconnects_total{reason="protocol-error"}') >= 1);
      if (promtool) assert.equal(promtoolCheck(t), "");
      else console.log("# promtool not installed: exposition format not validated here");

      const head = await fetch(`${base}/metrics`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), "");
      assert.equal((await fetch(`${base}/metrics`, { method: "POST" })).status, 405);
      assert.equal((await get(`${base}/nope`)).status, 404);
      assert.deepEqual(await get(`${base}/healthz`), {
        status: 200,
        type: "text/plain",
        body: "ok\n",
      });
      assert.equal((await get(`${base}/readyz`)).status, 200);

      // Draining: not ready any more, while still answering.
      await producer.close();
      for (const c of consumers) await c.close();
      const closing = relay.close({ drainMs: 2000 });
      const r = await get(`${base}/readyz`);
      assert.deepEqual([r.status, r.body], [503, "draining\n"]);
      assert.equal(value((await get(`${base}/metrics`)).body, "hydra_draining"), 1);
      await closing;
      const after = (await get(`${base}/metrics`)).body;
      assert.equal(value(after, 'hydra_connections{role="consumer"}'), 0);
      assert.ok(value(after, 'hydra_disconnects_total{reason="normal"}') >= 3);
    } finally {
      await relay.close();
      await http.close();
    }
  });

  test("a metrics address in use is one clear sentence, and serve exits 1", async () => {
    const relay = await RelayServer.listen({ port: 0 });
    const first = await serveMetrics(relay, { kind: "tcp", hostname: "127.0.0.1", port: 0 });
    try {
      await assert.rejects(
        serveMetrics(relay, first.addr),
        (e: unknown) =>
          e instanceof RelayError && e.code === "addr-in-use" && /metrics/.test(e.message),
      );
      const taken = `127.0.0.1:${first.addr.port}`;
      const args = ["serve", "--ephemeral", "--port", "0", "--log-level", "warn"];
      const r = await runCli(rt, [...args, "--metrics", taken]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /^hydra-relay: metrics: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/,
      );
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      const bad = await runCli(rt, ["serve", "--ephemeral", "--metrics", "unix:/tmp/x"]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--metrics needs HOST:PORT/);
    } finally {
      await first.close();
      await relay.close();
    }
  });

  test("serve --metrics: scraped over HTTP; SIGTERM drains clients, who reconnect, and exits 0", async () => {
    const relay = await serveCli(rt, ["--metrics", "127.0.0.1:0", "--drain-timeout", "3000"]);
    const url = (await waitForOutput(relay, /metrics on (http:\/\/\S+)/))[1]!;
    const session = Session.generate();
    const consumer = await Consumer.connect(relay.addr, session, {
      reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
    });
    const producer = await Producer.connect(relay.addr, session, { reconnect: false });
    try {
      for (let i = 0; i < 50; i++) await producer.broadcast(new Uint8Array([i]));
      for (let i = 0; i < 50; i++) assert.deepEqual(await consumer.recv(), new Uint8Array([i]));
      const t = (await get(url)).body;
      assert.equal(value(t, 'hydra_connections{role="consumer"}'), 1);
      const frames = value(t, "hydra_received_frames_total");
      assert.ok(frames >= 1 && frames <= 50, `${frames} frames`);
      assert.equal(value(t, "hydra_sent_frames_total"), frames);
      if (promtool) assert.equal(promtoolCheck(t), "");
      assert.equal((await get(url.replace("/metrics", "/readyz"))).status, 200);

      let reconnecting: RelayError | undefined;
      consumer.on("reconnecting", (r) => (reconnecting ??= r.error as RelayError));
      const stopped = await relay.stop();
      assert.ok(cleanStop(stopped), `serve after SIGTERM: ${stopped.code} ${stopped.stderr}`);
      const err = stopped.stderr;
      assert.match(err, /draining 2 connections \(up to 3000 ms/);
      assert.match(new TextDecoder().decode(stopped.stdout), /stopped \(2 connections closed\)/);
      // The producer was told the relay is going away; the consumer takes it as a reason to
      // reconnect (and keeps trying), not as a failure.
      assert.equal((await producer.connection.closed)?.code, "going-away");
      await until("the consumer to start reconnecting", () => reconnecting !== undefined);
      assert.equal(reconnecting?.code, "going-away");
      await assert.rejects(fetch(url));
    } finally {
      await consumer.close().catch(() => {});
      await producer.close().catch(() => {});
    }
  });
});
