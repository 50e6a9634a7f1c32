/**
 * The `hydra-relay` CLI as a subprocess on the runtime running the tests, plus cross-runtime
 * interop: relay, producer and consumers in separate processes on different runtimes.
 */

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { ReadCapability } from "../../src/protocol/capability.ts";
import { Session } from "../../src/protocol/session.ts";
import { cleanStop, finished, type Rt, runCli, selfRt, serveCli, startCli } from "./_run.ts";

const rt = selfRt();
const dir = mkdtempSync(join(tmpdir(), "hydra-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) {
    globalThis.crypto.getRandomValues(out.subarray(off, Math.min(off + 65536, n)));
  }
  return out;
}

async function keygen(on: Rt): Promise<string> {
  const r = await runCli(on, ["keygen"]);
  assert.equal(r.code, 0, r.stderr);
  return new TextDecoder().decode(r.stdout).trim();
}

/** pub on one runtime → relay → sub on others; returns what each sub printed. */
async function roundTrip(
  relayRt: Rt,
  pubRt: Rt,
  subRts: Rt[],
  input: Uint8Array,
  mode: "raw" | "line",
): Promise<Uint8Array[]> {
  const relay = await serveCli(relayRt, ["--log-level", "warn"]);
  try {
    const token = await keygen(pubRt);
    const common = ["--relay", relay.addr, "--relay-key", relay.key, "--mode", mode];
    const subs = subRts.map((r) => {
      const child = startCli(r, ["sub", ...common], { env: { HYDRA_TOKEN: token } });
      child.stdin!.end();
      return finished(child);
    });
    // Consumers may join before the producer: they wait and get the stream from its start.
    await new Promise((r) => setTimeout(r, 300));
    const pub = await runCli(pubRt, ["pub", "--token", token, ...common], { stdin: input });
    assert.equal(pub.code, 0, pub.stderr);
    const results = await Promise.all(subs);
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    return results.map((r) => r.stdout);
  } finally {
    const stopped = await relay.stop();
    assert.ok(cleanStop(stopped), `serve after SIGTERM: ${stopped.code} ${stopped.stderr}`);
  }
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

describe(`hydra-relay CLI on ${rt}`, () => {
  test("keygen prints a token that parses", async () => {
    const token = await keygen(rt);
    assert.match(token, /^hydra1_[A-Za-z0-9_-]{134}$/);
    Session.fromToken(token);
  });

  test("keygen --read-only makes a read token: sub reads with it, pub refuses it in one sentence", async () => {
    const write = await keygen(rt);
    const r = await runCli(rt, ["keygen", "--read-only", write]);
    assert.equal(r.code, 0, r.stderr);
    const read = new TextDecoder().decode(r.stdout).trim();
    assert.match(read, /^hydra2r_[A-Za-z0-9_-]{267}$/);
    ReadCapability.fromToken(read);
    const relay = await serveCli(rt, ["--log-level", "warn"]);
    try {
      const common = ["--relay", relay.addr, "--relay-key", relay.key];
      const refused = await runCli(rt, ["pub", "--token", read, ...common], {
        stdin: new TextEncoder().encode("x\n"),
      });
      assert.equal(refused.code, 2);
      assert.equal(refused.stderr.trim().split("\n").length, 1, refused.stderr);
      assert.match(refused.stderr, /read token .* can only consume/);
      const child = startCli(rt, ["sub", ...common], { env: { HYDRA_TOKEN: read } });
      child.stdin!.end();
      const reading = finished(child);
      await new Promise((r) => setTimeout(r, 300));
      const pub = await runCli(rt, ["pub", "--token", write, ...common], {
        stdin: new TextEncoder().encode("a\nb\nc\n"),
      });
      assert.equal(pub.code, 0, pub.stderr);
      const got = await reading;
      assert.equal(got.code, 0, got.stderr);
      assert.equal(new TextDecoder().decode(got.stdout), "a\nb\nc\n");
    } finally {
      await relay.stop();
    }
    const bad = await runCli(rt, ["keygen", "--read-only", "hydra1_nope"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--read-only: session token/);
  });

  test("pub --generation rotates read tokens: the new one reads, the old one is revoked", async () => {
    const write = await keygen(rt);
    const readOf = async (g: number) => {
      const r = await runCli(rt, ["keygen", "--read-only", write, "--generation", String(g)]);
      assert.equal(r.code, 0, r.stderr);
      return new TextDecoder().decode(r.stdout).trim();
    };
    const [g0, g1] = await Promise.all([readOf(0), readOf(1)]);
    assert.notEqual(g0, g1);
    const relay = await serveCli(rt, ["--log-level", "warn"]);
    try {
      const common = ["--relay", relay.addr, "--relay-key", relay.key];
      const subs = [g1, g0].map((token) => {
        const child = startCli(rt, ["sub", ...common], { env: { HYDRA_TOKEN: token } });
        child.stdin!.end();
        return finished(child);
      });
      await new Promise((r) => setTimeout(r, 300));
      const pub = await runCli(rt, ["pub", "--token", write, "--generation", "1", ...common], {
        stdin: new TextEncoder().encode("x\ny\n"),
      });
      assert.equal(pub.code, 0, pub.stderr);
      const [fresh, old] = await Promise.all(subs);
      assert.equal(fresh!.code, 0, fresh!.stderr);
      assert.equal(new TextDecoder().decode(fresh!.stdout), "x\ny\n");
      assert.equal(old!.code, 1, old!.stderr);
      assert.equal(old!.stdout.length, 0);
      assert.match(old!.stderr, /generation 1/);
      const bad = await runCli(rt, ["pub", "--token", write, "--generation", "-1", ...common]);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--generation/);
    } finally {
      await relay.stop();
    }
  });

  test("keygen | pub → relay → sub round-trips a 10 MiB file byte-exact", async () => {
    const input = randomBytes(10 * 1024 * 1024);
    const [output] = await roundTrip(rt, rt, [rt], input, "raw");
    assert.ok(same(output!, input), `got ${output!.length} bytes`);
  });

  test("line mode delivers one message per line", async () => {
    const lines = Array.from({ length: 1000 }, (_, i) => `line ${i} ${"x".repeat(i % 50)}`);
    const input = new TextEncoder().encode(lines.join("\n") + "\n");
    const [output] = await roundTrip(rt, rt, [rt], input, "line");
    assert.equal(new TextDecoder().decode(output), lines.join("\n") + "\n");
  });

  test("--help works for every command", async () => {
    for (const cmd of ["serve", "keygen", "pub", "sub"]) {
      const r = await runCli(rt, [cmd, "--help"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(new TextDecoder().decode(r.stdout), new RegExp(`Usage: hydra-relay ${cmd}`));
    }
    for (const args of [["help"], ["--help"], ["-h"]]) {
      const top = await runCli(rt, args);
      assert.equal(top.code, 0, top.stderr);
      assert.match(new TextDecoder().decode(top.stdout), /Commands:/, args[0]);
    }
  });

  test("mistakes print one clear sentence, no stack trace", async () => {
    const cases: [string[], number, RegExp][] = [
      [["frobnicate"], 2, /unknown command "frobnicate"/],
      [["pub"], 2, /no session token: pass --token or set HYDRA_TOKEN/],
      [["sub", "--token", "nope"], 2, /session token must start with "hydra1_"/],
      [["serve", "--policy", "maybe"], 2, /--policy must be disconnect, drop or block/],
      [["serve", "--bogus"], 2, /unknown option --bogus/],
      [
        ["sub", "--token", Session.generate().token(), "--relay", "127.0.0.1:1"],
        1,
        /is a relay running there\?/,
      ],
    ];
    for (const [args, code, message] of cases) {
      const r = await runCli(rt, args);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "stack trace printed");
    }
  });

  test("serve logs to LOG_FILE at LOG_LEVEL and never logs the token or key", async () => {
    const logFile = join(dir, `relay-${rt}.log`);
    const relay = await serveCli(rt, [], { env: { LOG_FILE: logFile, LOG_LEVEL: "debug" } });
    const session = Session.generate();
    const token = session.token();
    try {
      const pub = await runCli(rt, ["pub", "--relay", relay.addr, "--token", token], {
        stdin: new TextEncoder().encode("hello\n"),
      });
      assert.equal(pub.code, 0, pub.stderr);
    } finally {
      assert.ok(cleanStop(await relay.stop()));
    }
    const log = readFileSync(logFile, "utf8");
    assert.match(log, /event=join conn=\d+ route=[0-9a-f]{8} role=producer/);
    assert.match(log, /event=conn.close/);
    const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    for (const secret of [token, token.slice(7, 40), hex(session.key), hex(session.id)]) {
      assert.ok(!log.includes(secret), "a secret reached the log");
    }
  });

  test("a key file is created with mode 0600 and reused: the relay key stays the same", async () => {
    const keyFile = join(dir, `relay-${rt}.key`);
    const start = () =>
      startCli(rt, ["serve", "--port", "0", "--key-file", keyFile, "--log-level", "off"]);
    const keys: string[] = [];
    for (let i = 0; i < 2; i++) {
      const child = start();
      const done = finished(child);
      let text = "";
      await new Promise<void>((resolve) => {
        child.stdout!.on("data", (c: Uint8Array) => {
          text += new TextDecoder().decode(c);
          const m = /relay key ([0-9a-f]{64})/.exec(text);
          if (m !== null) {
            keys.push(m[1]!);
            resolve();
          }
        });
      });
      child.kill("SIGINT");
      assert.ok(cleanStop(await done));
    }
    assert.equal(keys[0], keys[1]);
    const { statSync } = await import("node:fs");
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
  });
});

describe("Cross-runtime interop (separate processes)", () => {
  // Run once, from the Node test run (the built package exists there by construction).
  const permutations: [Rt, Rt, Rt[]][] = rt === "node"
    ? [["deno", "bun", ["node", "node"]], ["bun", "node", ["deno", "bun"]]]
    : [];
  for (const [relayRt, pubRt, subRts] of permutations) {
    test(`relay on ${relayRt}, producer on ${pubRt}, consumers on ${subRts.join(" and ")}`, async () => {
      const input = randomBytes(2 * 1024 * 1024);
      const outputs = await roundTrip(relayRt, pubRt, subRts, input, "raw");
      for (const o of outputs) assert.ok(same(o, input), `got ${o.length} bytes`);
    });
  }
});
