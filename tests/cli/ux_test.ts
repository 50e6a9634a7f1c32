/**
 * The CLI as people and machines meet it (issue 6, part 3): live progress on a terminal
 * (run under a pseudo-terminal with util-linux `script`), silence when piped, `--json`, a
 * config file with flags and environment taking precedence, and `bench`.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, describe, test } from "node:test";
import { cleanStop, cliCommand, finished, runCli, selfRt, serveCli, startCli } from "./_run.ts";

const rt = selfRt();
const dir = mkdtempSync(join(tmpdir(), "hydra-ux-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const quote = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;

/** Runs the CLI with stdin, stdout and stderr on a pseudo-terminal; returns what it drew. */
function onTerminal(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; screen: string }> {
  const [cmd, pre] = cliCommand(rt);
  const line = [cmd, ...pre, ...args].map(quote).join(" ");
  const child = spawn("script", ["-qfec", line, "/dev/null"], {
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let screen = "";
  child.stdout!.on("data", (c: Uint8Array) => (screen += new TextDecoder().decode(c)));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  return new Promise((resolve) => {
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, screen });
    });
  });
}

/** Starts `serve` with JSON output and waits for its banner object. */
async function serveJson(args: string[], env: Record<string, string> = {}) {
  const child = startCli(rt, ["serve", ...args], { env });
  const done = finished(child);
  let text = "";
  child.stdout!.on("data", (c: Uint8Array) => (text += new TextDecoder().decode(c)));
  const deadline = Date.now() + 20_000;
  while (!text.includes("\n")) {
    if (Date.now() > deadline) throw new Error(`no JSON banner from serve: ${text}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const banner = JSON.parse(text.split("\n")[0]!) as Record<string, unknown>;
  return {
    banner,
    /** SIGTERM; resolves once it exited, after checking it said so in JSON. */
    stop: async () => {
      child.kill("SIGTERM");
      const r = await done;
      const last = new TextDecoder().decode(r.stdout).trim().split("\n").at(-1)!;
      assert.equal(JSON.parse(last).event, "stopped", `serve after SIGTERM: ${r.stderr}`);
      return r;
    },
  };
}

describe(`hydra-relay as people and machines use it, on ${rt}`, () => {
  test("bench on a terminal draws a live progress bar, then a summary table", async () => {
    const r = await onTerminal(["bench", "--seconds", "1.5", "--consumers", "2", "--size", "256"]);
    assert.equal(r.code, 0, r.screen);
    // The live line: rewritten in place (carriage return + erase), with a bar and rates.
    assert.ok(r.screen.includes("\r\x1b[2Kbench: "), r.screen);
    assert.match(r.screen, /bench: [\d,]+ messages · .* msg\/s · .*\[[#-]{20}\] \d+%/);
    assert.match(r.screen, /hydra-relay bench on \w+: 1 producer -> 2 consumers, 256 B messages/);
    const got = /each consumer got\s+([\d,]+) of ([\d,]+) messages/.exec(r.screen);
    assert.ok(got !== null && got[1] === got[2] && got[1] !== "0", r.screen);
    assert.match(r.screen, /latency p99\s+[\d.]+ ms/);
  });

  test("bench --json prints one JSON object and nothing on a piped stderr", async () => {
    const r = await runCli(rt, ["bench", "--seconds", "1", "--consumers", "3", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const result = JSON.parse(new TextDecoder().decode(r.stdout));
    assert.equal(result.consumers, 3);
    assert.ok(result.sent > 0);
    assert.deepEqual(result.received, [result.sent, result.sent, result.sent]);
    assert.ok(result.deliveredPerSecond > 0 && result.latencyMs.p50 >= 0);
    const bad = await runCli(rt, ["bench", "--transport", "carrier-pigeon"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^hydra-relay: --transport must be tcp, unix or memory/);
  });

  test("sub on a terminal shows a live count and a summary; pub piped stays quiet", async () => {
    const relay = await serveCli(rt, ["--log-level", "warn"]);
    try {
      const token = new TextDecoder().decode((await runCli(rt, ["keygen"])).stdout).trim();
      const common = ["--relay", relay.addr, "--relay-key", relay.key];
      const pubProc = (async () => {
        await new Promise((r) => setTimeout(r, 1500)); // the consumer waits for the producer
        const lines = Array.from({ length: 2000 }, (_, i) => `line ${i}`).join("\n") + "\n";
        return await runCli(rt, ["pub", ...common], {
          env: { HYDRA_TOKEN: token },
          stdin: new TextEncoder().encode(lines),
        });
      })();
      const sub = await onTerminal(["sub", ...common], { HYDRA_TOKEN: token });
      const pub = await pubProc;
      assert.equal(pub.code, 0, pub.stderr);
      assert.equal(pub.stderr, "", "pub with a piped stderr prints nothing");
      assert.equal(sub.code, 0, sub.screen);
      assert.match(sub.screen, /line 1999\r?\n/);
      assert.match(sub.screen, /hydra-relay: received 2,000 messages \([\d.]+ KiB\) in [\d.]+ s/);
    } finally {
      assert.ok(cleanStop(await relay.stop()));
    }
  });

  test("--json: serve announces itself and its stop as JSON lines; pub/sub end with a JSON summary", async () => {
    const relay = await serveJson([
      "--ephemeral",
      "--port",
      "0",
      "--json",
      "--log-level",
      "warn",
      "--metrics",
      "127.0.0.1:0",
    ]);
    const { banner } = relay;
    assert.equal(banner.event, "listening");
    assert.match(String(banner.addr), /^127\.0\.0\.1:\d+$/);
    assert.match(String(banner.relayKey), /^[0-9a-f]{64}$/);
    const keygen = await runCli(rt, ["keygen", "--json"]);
    const token = JSON.parse(new TextDecoder().decode(keygen.stdout)).token as string;
    assert.match(token, /^hydra1_/);
    const common = ["--relay", String(banner.addr), "--json"];
    const subChild = startCli(rt, ["sub", ...common], { env: { HYDRA_TOKEN: token } });
    subChild.stdin!.end();
    const subDone = finished(subChild);
    await new Promise((r) => setTimeout(r, 500));
    const pub = await runCli(rt, ["pub", ...common], {
      env: { HYDRA_TOKEN: token },
      stdin: new TextEncoder().encode("a\nbb\nccc\n"),
    });
    assert.equal(pub.code, 0, pub.stderr);
    assert.deepEqual(
      { ...JSON.parse(pub.stderr), seconds: 0 },
      { event: "done", sent: 3, bytes: 6, seconds: 0 },
    );
    const sub = await subDone;
    assert.equal(sub.code, 0, sub.stderr);
    assert.equal(new TextDecoder().decode(sub.stdout), "a\nbb\nccc\n");
    assert.deepEqual(
      { ...JSON.parse(sub.stderr), seconds: 0 },
      { event: "done", received: 3, bytes: 6, seconds: 0 },
    );
    // The clients have exited; the relay learns of their sockets' ends a moment later (stopping
    // at once raced with the last one: "connections: 1" once under load). Wait until it has.
    const open = async () => {
      const text = await (await fetch(String(banner.metrics))).text();
      return [...text.matchAll(/^hydra_connections\{[^}]*\} (\d+)$/gm)]
        .reduce((n, m) => n + Number(m[1]), 0);
    };
    for (const end = Date.now() + 10_000; await open() !== 0;) {
      assert.ok(Date.now() < end, "the relay still counts connections 10 s after its clients left");
      await new Promise((r) => setTimeout(r, 20));
    }
    const stopped = await relay.stop();
    const lines = new TextDecoder().decode(stopped.stdout).trim().split("\n");
    assert.deepEqual(JSON.parse(lines.at(-1)!), { event: "stopped", connections: 0 });
  });

  test("a config file sets options; environment and flags win over it; mistakes are one sentence", async () => {
    const file = join(dir, "relay.json");
    const config = { port: 0, ephemeral: true, "log-level": "warn", json: true };
    writeFileSync(file, JSON.stringify({ ...config, metrics: "127.0.0.1:0" }));
    const relay = await serveJson(["--config", file]);
    assert.equal(relay.banner.event, "listening");
    assert.match(String(relay.banner.metrics), /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    await relay.stop();

    // A bad value in the file is overridden by the environment, and by a flag.
    writeFileSync(file, JSON.stringify({ ...config, "log-level": "loud" }));
    const refused = await runCli(rt, ["serve", "--config", file]);
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      /^hydra-relay: --log-level must be error, warn, info, debug or off, got "loud"\n$/,
    );
    for (
      const [args, env] of [[["--log-level", "warn"], {}], [[], { LOG_LEVEL: "warn" }]] as const
    ) {
      const r = await serveJson(["--config", file, ...args], env);
      assert.equal(r.banner.event, "listening");
      await r.stop();
    }
    // The file through HYDRA_CONFIG, too.
    const viaEnv = await runCli(rt, ["serve"], { env: { HYDRA_CONFIG: file } });
    assert.match(viaEnv.stderr, /got "loud"/);

    const mistakes: [string, RegExp][] = [
      ['{"colour": "blue"}', /config file \S+: unknown option "colour" \(see --help\)/],
      ["{port: 1}", /config file \S+ is not valid JSON/],
      ['["port"]', /config file \S+ must hold a JSON object of option names/],
      ['{"ephemeral": "yes"}', /"ephemeral" must be true or false/],
      ['{"port": [1]}', /"port" must be a string or a number/],
    ];
    for (const [text, message] of mistakes) {
      writeFileSync(file, text);
      const r = await runCli(rt, ["serve", "--config", file]);
      assert.equal(r.code, 2, text);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
    const missing = await runCli(rt, ["serve", "--config", join(dir, "nope.json")]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read config file \S+nope\.json \(no such file\)/);
  });
});
