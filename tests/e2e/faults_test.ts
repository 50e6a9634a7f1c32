/**
 * Fault injection with real processes (issue 5, part 6): `kill -9` of the producer, of a
 * consumer and of the relay mid-stream, each its own `hydra-relay` process (CLI `pub`,
 * `sub`, `serve` on this runtime). Consumers see every message exactly once or an explicit
 * gap, a cut stream is reported as such, and the survivors carry on.
 */

import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, describe, test } from "node:test";
import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import type { RelayError } from "../../src/errors.ts";
import { Session } from "../../src/protocol/session.ts";
import { defaultTransport } from "../../src/transport/default.ts";
import { sleep, waitFor } from "../_helpers.ts";
import { selfRt, serveCli, startCli } from "../cli/_run.ts";

const dir = mkdtempSync(join(tmpdir(), "hydra-faults-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const rt = selfRt();
const t = defaultTransport();
const text = (m: Uint8Array) => new TextDecoder().decode(m);

/**
 * `kill -9`, and resolves once the process is gone. The signal goes straight to the pid:
 * Deno's `ChildProcess.kill()` closes the child's stdin first, which a `pub` would take as
 * the end of its input and answer with a clean END.
 */
function kill9(child: ChildProcess): Promise<void> {
  const gone = new Promise<void>((r) => child.on("exit", () => r()));
  process.kill(child.pid!, "SIGKILL");
  return gone;
}

describe(`kill -9 mid-stream (${rt} processes)`, () => {
  test("the producer: consumers get everything it sent, then producer-left; a new producer carries on", async () => {
    const relay = await serveCli(rt, ["--log-level", "warn", "--producer-grace", "300"]);
    try {
      const session = Session.generate();
      const consumer = await Consumer.connect(relay.addr, session, { transport: t });
      const left: boolean[] = [];
      consumer.on("producer-left", (e) => left.push(e.resumable));
      const pub = startCli(rt, ["pub", "--relay", relay.addr, "--token", session.token()]);
      for (let i = 0; i < 100; i++) pub.stdin!.write(`m${i}\n`);
      for (let i = 0; i < 100; i++) assert.equal(text((await consumer.recv())!), `m${i}`);
      await kill9(pub);
      await assert.rejects(
        consumer.recv(),
        (e: unknown) => (e as RelayError).code === "producer-left",
      );
      assert.deepEqual(left, [true, false]);

      const next = startCli(rt, ["pub", "--relay", relay.addr, "--token", session.token()]);
      for (let i = 0; i < 10; i++) next.stdin!.write(`n${i}\n`);
      next.stdin!.end();
      for (let i = 0; i < 10; i++) assert.equal(text((await consumer.recv())!), `n${i}`);
      assert.equal(await consumer.recv(), null);
    } finally {
      await relay.stop();
    }
  });

  test("a consumer: the relay drops it, the producer and other consumers are unaffected", async () => {
    const relay = await serveCli(rt, ["--log-level", "warn"]);
    try {
      const session = Session.generate();
      const stays = await Consumer.connect(relay.addr, session, { transport: t });
      const sub = startCli(rt, ["sub", "--relay", relay.addr, "--token", session.token()]);
      let printed = "";
      sub.stdout!.on("data", (c: Uint8Array) => (printed += text(c)));
      const producer = await Producer.connect(relay.addr, session, { transport: t });
      let sent = 0;
      const reading = (async () => {
        for (let i = 0; i < 400; i++) assert.equal(text((await stays.recv())!), `x${i}`);
      })();
      while (!/x\d+\n(.|\n)*x\d+\n/.test(printed)) {
        await producer.broadcast(new TextEncoder().encode(`x${sent++}`));
        await sleep(2);
      }
      await kill9(sub);
      while (sent < 400) await producer.broadcast(new TextEncoder().encode(`x${sent++}`));
      await reading;
      await producer.close();
      assert.equal(await stays.recv(), null);
      // What it printed before dying is a run of consecutive messages (it joined mid-stream).
      const lines = printed.split("\n").filter((l) => l !== "").map((l) => Number(l.slice(1)));
      assert.ok(lines.length >= 2 && lines.every((v, i) => i === 0 || v === lines[i - 1]! + 1));
    } finally {
      await relay.stop();
    }
  });

  test("the relay: producer and consumer resume on the restarted relay; exactly once or an explicit gap", async () => {
    const keyFile = join(dir, "relay.key");
    let relay = await serveCli(rt, ["--log-level", "warn", "--key-file", keyFile]);
    const port = relay.addr.split(":").at(-1)!;
    const session = Session.generate();
    // `block`: the producer's resend burst after the restart may exceed a ring; the consumer
    // asks to hold it back rather than be cut (`disconnect`) or skipped (`drop`).
    const consumer = await Consumer.connect(relay.addr, session, { transport: t, policy: "block" });
    const producer = await Producer.connect(relay.addr, session, {
      transport: t,
      replayFrames: 4096, // what a restarted relay has lost, the producer resends
    });
    const gaps: { from: bigint; to: bigint }[] = [];
    consumer.on("lagged", (g) => gaps.push(g));
    let reconnects = 0;
    consumer.on("reconnected", () => reconnects++);
    producer.on("reconnected", () => reconnects++);
    const n = 2000;
    const got: number[] = [];
    const reading = (async () => {
      for await (const m of consumer) got.push(Number(text(m)));
    })();
    try {
      for (let i = 0; i < n; i++) {
        await producer.broadcast(new TextEncoder().encode(String(i)));
        if (i === n / 2) {
          await waitFor(() => got.length > n / 4, 10_000);
          await kill9(relay.child);
          relay = await serveCli(rt, [
            "--log-level",
            "warn",
            "--key-file",
            keyFile,
            "--port",
            port,
          ]);
        }
        if (i % 50 === 0) await sleep(1);
      }
      await producer.close();
      await reading;
    } finally {
      await relay.stop();
    }
    assert.ok(reconnects >= 2, `reconnected ${reconnects} times`);
    // Exactly once, in order; anything missing lies in a reported gap.
    let expected = 0;
    for (const i of got) {
      assert.ok(i >= expected, `message ${i} repeated or reordered`);
      for (; expected < i; expected++) {
        assert.ok(
          gaps.some((g) => g.from <= expected && expected < g.to),
          `message ${expected} lost silently`,
        );
      }
      expected = i + 1;
    }
    assert.equal(expected, n);
    console.log(
      `# relay killed: ${got.length}/${n} delivered, gaps ${
        JSON.stringify(gaps.map((g) => [Number(g.from), Number(g.to)]))
      }`,
    );
  });
});
