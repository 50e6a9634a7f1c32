/**
 * @module
 * The `hydra-relay` command: `serve` (default), `keygen`, `pub`, `sub`. It runs unchanged on
 * Deno, Bun and Node through `node:process` and `node:fs`, which all three provide. User
 * mistakes print one sentence and exit 2; failures at run time print one sentence and exit 1;
 * no stack traces for either.
 */

import { createWriteStream, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { Consumer } from "../client/consumer.ts";
import { Producer } from "../client/producer.ts";
import { RelayError } from "../errors.ts";
import { Session } from "../protocol/session.ts";
import { parseLogLevel } from "../server/log.ts";
import { DEFAULT_LIMITS, DEFAULT_PORT, type RelayOptions } from "../server/options.ts";
import { RelayServer } from "../server/relay.ts";
import type { PolicyName } from "../protocol/control.ts";
import { parseAddr } from "../transport/addr.ts";
import type { TcpAddr } from "../transport/types.ts";
import {
  type FlagSpec,
  formatFlags,
  intFlag,
  parseConfig,
  parseFlags,
  UsageError,
} from "./args.ts";
import { runBench } from "./bench.ts";
import { bar, grouped, humanBytes, Progress } from "./progress.ts";
import { type DemoEndpoint, serveDemo } from "./demo_http.ts";
import { type MetricsEndpoint, serveMetrics } from "./metrics_http.ts";

const HELP = { name: "help", boolean: true, help: "show this help" } as const;
const JSON_FLAG = {
  name: "json",
  boolean: true,
  help: "machine-readable output (JSON lines)",
} as const;
const CONFIG = {
  name: "config",
  env: "HYDRA_CONFIG",
  value: "FILE",
  help: "read options from a JSON file (flags and environment win)",
} as const;

const SERVE_FLAGS: FlagSpec[] = [
  { name: "host", env: "HYDRA_HOST", default: "127.0.0.1", value: "HOST", help: "address to bind" },
  { name: "port", env: "HYDRA_PORT", default: String(DEFAULT_PORT), value: "N", help: "TCP port" },
  { name: "unix", env: "HYDRA_UNIX", value: "PATH", help: "listen on a Unix socket instead" },
  {
    name: "ws",
    env: "HYDRA_WS",
    value: "HOST:PORT",
    help: "also accept WebSocket clients (browsers) there",
  },
  {
    name: "cluster",
    env: "HYDRA_CLUSTER",
    value: "URL",
    help: "join a cluster of relays over NATS (nats://host:4222, comma-separated for several)",
  },
  {
    name: "cluster-prefix",
    env: "HYDRA_CLUSTER_PREFIX",
    default: "hydra",
    value: "NAME",
    help: "NATS subject prefix and bucket stem shared by the cluster",
  },
  {
    name: "slot-ttl",
    env: "HYDRA_SLOT_TTL",
    default: "5000",
    value: "MS",
    help: "a dead relay's producer slot expires after this (cluster mode)",
  },
  {
    name: "demo",
    env: "HYDRA_DEMO",
    value: "HOST:PORT",
    help: "serve the browser demo pages there (needs --ws)",
  },
  {
    name: "key-file",
    env: "HYDRA_KEY_FILE",
    default: "hydra-relay.key",
    value: "PATH",
    help: "relay static key, created (mode 0600) if missing",
  },
  { name: "ephemeral", boolean: true, help: "use a fresh key, no key file" },
  {
    name: "policy",
    env: "HYDRA_POLICY",
    default: DEFAULT_LIMITS.policy,
    value: "P",
    help: "slow consumers: disconnect | drop | block",
  },
  {
    name: "max-connections",
    env: "HYDRA_MAX_CONNECTIONS",
    value: "N",
    help: `connection cap (default ${DEFAULT_LIMITS.maxConnections})`,
  },
  {
    name: "max-frame",
    env: "HYDRA_MAX_FRAME",
    value: "BYTES",
    help: "largest frame, e.g. 4MiB (default 4MiB)",
  },
  {
    name: "ring-frames",
    env: "HYDRA_RING_FRAMES",
    value: "N",
    help: `ring capacity per session (default ${DEFAULT_LIMITS.ringFrames})`,
  },
  {
    name: "ring-bytes",
    env: "HYDRA_RING_BYTES",
    value: "BYTES",
    help: "ring bytes per session (default 16MiB)",
  },
  {
    name: "memory-budget",
    env: "HYDRA_MEMORY_BUDGET",
    value: "BYTES",
    help: "ring bytes of all sessions together (default 1GiB)",
  },
  {
    name: "heartbeat",
    env: "HYDRA_HEARTBEAT_MS",
    value: "MS",
    help: "client ping interval (default 10000)",
  },
  {
    name: "idle-timeout",
    env: "HYDRA_IDLE_TIMEOUT_MS",
    value: "MS",
    help: "close silent connections (default 2 x heartbeat)",
  },
  {
    name: "wait-for-producer",
    env: "HYDRA_WAIT_MS",
    value: "MS",
    help: "consumer wait, 0 = forever (default 60000)",
  },
  {
    name: "producer-grace",
    env: "HYDRA_GRACE_MS",
    value: "MS",
    help: "resume window after producer loss (default 5000)",
  },
  {
    name: "log-level",
    env: "LOG_LEVEL",
    default: "info",
    value: "LEVEL",
    help: "error | warn | info | debug | off",
  },
  { name: "log-file", env: "LOG_FILE", value: "PATH", help: "append logs there instead of stderr" },
  {
    name: "metrics",
    env: "HYDRA_METRICS",
    value: "HOST:PORT",
    help: "serve /metrics, /healthz and /readyz over HTTP there",
  },
  {
    name: "drain-timeout",
    env: "HYDRA_DRAIN_MS",
    default: "5000",
    value: "MS",
    help: "on SIGINT/SIGTERM, how long clients get to receive what is queued",
  },
  JSON_FLAG,
  CONFIG,
  HELP,
];

const CLIENT_FLAGS: FlagSpec[] = [
  {
    name: "relay",
    env: "HYDRA_RELAY",
    default: `127.0.0.1:${DEFAULT_PORT}`,
    value: "ADDR",
    help: "relay address, host:port or unix:/path; several relays of a cluster: a,b,c",
  },
  {
    name: "token",
    env: "HYDRA_TOKEN",
    value: "TOKEN",
    help: "session token from `hydra-relay keygen`",
  },
  {
    name: "relay-key",
    env: "HYDRA_RELAY_KEY",
    value: "HEX",
    help: "refuse a relay whose key differs",
  },
  {
    name: "mode",
    default: "line",
    value: "MODE",
    help: "line: one message per line; raw: bytes as they come",
  },
  JSON_FLAG,
  CONFIG,
  HELP,
];

const BENCH_FLAGS: FlagSpec[] = [
  { name: "consumers", default: "4", value: "N", help: "consumers (1-1000)" },
  { name: "size", default: "1KiB", value: "BYTES", help: "message size, 8 B to 1 MiB" },
  { name: "seconds", default: "5", value: "S", help: "how long the producer sends" },
  { name: "rate", default: "0", value: "N", help: "messages/s to send, 0 = as fast as possible" },
  { name: "transport", default: "tcp", value: "T", help: "tcp | unix | memory" },
  JSON_FLAG,
  CONFIG,
  HELP,
];

const COMMANDS = `Usage: hydra-relay <command> [options]

Commands:
  serve    run a relay (the default command)
  keygen   print a new session token
  pub      send stdin to a session
  sub      print a session's messages to stdout
  bench    measure a local relay: 1 producer to N consumers, end to end

Run "hydra-relay <command> --help" for a command's options.`;

const USAGE: Record<string, [string, FlagSpec[]]> = {
  serve: ["Usage: hydra-relay serve [options]\n\nRuns an end-to-end encrypted relay.", SERVE_FLAGS],
  keygen: [
    "Usage: hydra-relay keygen\n\nPrints a new session token (a secret: share it only with your producer and consumers).",
    [JSON_FLAG, HELP],
  ],
  pub: [
    "Usage: hydra-relay pub --token TOKEN [options] < input\n\nSends stdin to every consumer of the session; ends the stream at EOF.",
    CLIENT_FLAGS,
  ],
  sub: [
    "Usage: hydra-relay sub --token TOKEN [options] > output\n\nWrites the session's messages to stdout until the producer ends the stream.",
    CLIENT_FLAGS,
  ],
  bench: [
    "Usage: hydra-relay bench [options]\n\nRuns a relay, one producer and N consumers in this process and reports delivered\nmessages/s, bytes/s and end-to-end latency (every message sealed and opened).",
    BENCH_FLAGS,
  ],
};

/**
 * Runs the CLI.
 * @param argv Arguments after the program name.
 * @returns The exit status.
 * @example
 * ```ts ignore
 * import { main } from "./main.ts";
 * process.exitCode = await main(["keygen"]);
 * ```
 */
export async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  const command = first === undefined || first.startsWith("-") ? "serve" : first;
  const args = command === first ? rest : argv;
  try {
    if (first === "help" || first === "--help" || first === "-h") {
      out(COMMANDS + "\n");
      return 0;
    }
    const usage = USAGE[command];
    if (usage === undefined) throw new UsageError(`unknown command "${command}"\n\n${COMMANDS}`);
    let { flags, rest: positional } = parseFlags(args, usage[1], process.env);
    if (flags.config !== undefined && flags.help === undefined) {
      ({ flags, rest: positional } = parseFlags(
        args,
        usage[1],
        process.env,
        parseConfig(readConfig(flags.config), usage[1], flags.config),
      ));
    }
    if (flags.help !== undefined) {
      out(`${usage[0]}\n\nOptions:\n${formatFlags(usage[1])}\n`);
      return 0;
    }
    if (positional.length > 0) throw new UsageError(`unexpected argument "${positional[0]}"`);
    switch (command) {
      case "keygen": {
        const token = Session.generate().token();
        out(flags.json === undefined ? token + "\n" : JSON.stringify({ token }) + "\n");
        return 0;
      }
      case "bench":
        return await bench(flags);
      case "serve":
        return await serve(flags);
      case "pub":
        return await pub(flags);
      default:
        return await sub(flags);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`hydra-relay: ${e.message}\n`);
      return 2;
    }
    if (e instanceof RelayError || e instanceof TypeError || e instanceof RangeError) {
      process.stderr.write(`hydra-relay: ${e.message}${hint(e)}\n`);
      return 1;
    }
    throw e;
  }
}

function out(text: string): void {
  process.stdout.write(text);
}

/** A HOST:PORT flag, or `undefined` when absent. */
function tcpFlag(
  flags: Record<string, string | undefined>,
  name: string,
  what: string,
): TcpAddr | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  let a;
  try {
    a = parseAddr(v);
  } catch (e) {
    throw new UsageError(`--${name}: ${(e as Error).message}`);
  }
  if (a.kind !== "tcp") throw new UsageError(`--${name} needs HOST:PORT (${what})`);
  return a;
}

function readConfig(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new UsageError(
      `cannot read config file ${path} (${code === "ENOENT" ? "no such file" : code ?? e})`,
    );
  }
}

async function bench(flags: Record<string, string | undefined>): Promise<number> {
  const transport = flags.transport;
  if (transport !== "tcp" && transport !== "unix" && transport !== "memory") {
    throw new UsageError(`--transport must be tcp, unix or memory, got "${transport}"`);
  }
  const seconds = Number(flags.seconds);
  if (!(seconds > 0 && seconds <= 3600)) {
    throw new UsageError(`--seconds must be above 0 and at most 3600, got "${flags.seconds}"`);
  }
  const consumers = intFlag(flags, "consumers")!;
  const size = intFlag(flags, "size")!;
  if (consumers < 1 || consumers > 1000) {
    throw new UsageError(`--consumers must be 1 to 1000, got ${consumers}`);
  }
  if (size < 8 || size > 1 << 20) throw new UsageError(`--size must be 8 B to 1 MiB, got ${size}`);
  const json = flags.json !== undefined;
  let fraction = 0;
  const progress = new Progress("bench", process.stderr, () => bar(fraction));
  const r = await runBench(
    { consumers, size, seconds, transport, rate: intFlag(flags, "rate")!, socketDir: tmpdir() },
    (f, sent) => {
      fraction = f;
      progress.messages = sent;
      progress.bytes = sent * size;
    },
  );
  progress.stop();
  if (json) {
    out(JSON.stringify(r) + "\n");
    return 0;
  }
  const each = r.received[0] ?? 0;
  const rows: [string, string][] = [
    ["producer sent", `${grouped(r.sentPerSecond)} msg/s`],
    ["each consumer got", `${grouped(each)} of ${grouped(r.sent)} messages`],
    ["delivered (all)", `${grouped(r.deliveredPerSecond)} msg/s`],
    ["delivered (all)", `${humanBytes(r.deliveredBytesPerSecond)}/s`],
    ["latency p50", `${r.latencyMs.p50.toFixed(2)} ms`],
    ["latency p99", `${r.latencyMs.p99.toFixed(2)} ms`],
    ["latency max", `${r.latencyMs.max.toFixed(2)} ms`],
  ];
  out(
    `hydra-relay bench on ${r.runtime}: 1 producer -> ${r.consumers} consumers, ` +
      `${humanBytes(r.size)} messages, ${r.transport}, ${r.seconds.toFixed(1)} s, ` +
      `${r.rate > 0 ? `${grouped(r.rate)} msg/s` : "full speed (latency includes queueing)"}\n\n` +
      rows.map(([k, v]) => `  ${k.padEnd(18)} ${v.padStart(24)}`).join("\n") + "\n",
  );
  return 0;
}

function hint(e: Error): string {
  if (!(e instanceof RelayError)) return "";
  switch (e.code) {
    case "connect-failed":
      return e.message.includes("NATS")
        ? " — check --cluster (nats-server must run with -js)"
        : " — is a relay running there? (start one with: hydra-relay serve)";
    case "addr-in-use":
      return " — pick another address, or stop the process using it";
    case "relay-key-mismatch":
      return " — check --relay-key, or the address";
    case "auth-failed":
      return " — check the session token";
    default:
      return "";
  }
}

async function serve(flags: Record<string, string | undefined>): Promise<number> {
  const level = parseLogLevel(flags["log-level"]);
  if (level === undefined) {
    throw new UsageError(
      `--log-level must be error, warn, info, debug or off, got "${flags["log-level"]}"`,
    );
  }
  const policy = flags.policy as PolicyName;
  if (!["disconnect", "drop", "block"].includes(policy)) {
    throw new UsageError(`--policy must be disconnect, drop or block, got "${policy}"`);
  }
  let sink = (line: string) => void process.stderr.write(line + "\n");
  if (flags["log-file"] !== undefined) {
    const file = createWriteStream(flags["log-file"], { flags: "a", mode: 0o640 });
    file.on("error", (e) => process.stderr.write(`hydra-relay: log file: ${e.message}\n`));
    sink = (line) => void file.write(line + "\n");
  }
  const num = (name: string) => intFlag(flags, name);
  const metricsAddr = tcpFlag(flags, "metrics", "HTTP over TCP");
  const drainMs = num("drain-timeout")!;
  const wsAddr = tcpFlag(flags, "ws", "WebSocket over TCP");
  const demoAddr = tcpFlag(flags, "demo", "HTTP over TCP");
  if (demoAddr !== undefined && wsAddr === undefined) {
    throw new UsageError("--demo needs --ws HOST:PORT too: the demo pages connect over WebSocket");
  }
  const options: RelayOptions = {
    ...(flags.unix !== undefined
      ? { path: flags.unix }
      : { hostname: flags.host!, port: num("port")! }),
    ...(flags.ephemeral === undefined ? { keyFile: flags["key-file"]! } : {}),
    policy,
    ...(wsAddr === undefined ? {} : { websocket: wsAddr }),
    ...(flags.cluster === undefined ? {} : {
      cluster: {
        servers: flags.cluster.split(",").map((u) => u.trim()),
        prefix: flags["cluster-prefix"]!,
        slotTtlMs: num("slot-ttl")!,
      },
    }),
    logLevel: level,
    logSink: sink,
    ...defined({
      maxConnections: num("max-connections"),
      maxFrameBytes: num("max-frame"),
      ringFrames: num("ring-frames"),
      ringBytes: num("ring-bytes"),
      memoryBudgetBytes: num("memory-budget"),
      heartbeatMs: num("heartbeat"),
      idleTimeoutMs: num("idle-timeout"),
      waitForProducerMs: num("wait-for-producer"),
      producerGraceMs: num("producer-grace"),
    }),
  };
  // Handlers first: a signal that arrives right after the banner must already be ours
  // (Deno installs signal listeners asynchronously).
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  let signals = 0;
  const onSignal = () => {
    if (++signals === 1) return stop();
    process.stderr.write("hydra-relay: stopped without draining\n");
    process.exit(1);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  await new Promise((r) => setTimeout(r, 0));
  const relay = await RelayServer.listen(options);
  let metrics: MetricsEndpoint | undefined;
  let demo: DemoEndpoint | undefined;
  try {
    if (metricsAddr !== undefined) metrics = await serveMetrics(relay, metricsAddr);
    if (demoAddr !== undefined) demo = await serveDemo(demoAddr, relay.websocketAddr!);
  } catch (e) {
    await metrics?.close();
    await relay.close({ drainMs: 0 });
    throw e;
  }
  const a = relay.addr;
  const where = a.kind === "tcp" ? `${a.hostname}:${a.port}` : `unix:${a.path}`;
  const m = metrics?.addr;
  const metricsUrl = m === undefined
    ? undefined
    : `http://${m.hostname.includes(":") ? `[${m.hostname}]` : m.hostname}:${m.port}/metrics`;
  const w = relay.websocketAddr;
  const wsUrl = w === undefined
    ? undefined
    : `ws://${w.hostname.includes(":") ? `[${w.hostname}]` : w.hostname}:${w.port}/`;
  const d = demo?.addr;
  const demoUrl = d === undefined
    ? undefined
    : `http://${d.hostname.includes(":") ? `[${d.hostname}]` : d.hostname}:${d.port}/`;
  const json = flags.json !== undefined;
  if (json) {
    out(
      JSON.stringify({
        event: "listening",
        addr: where,
        relayKey: relay.publicKeyHex,
        ...(wsUrl === undefined ? {} : { websocket: wsUrl }),
        ...(demoUrl === undefined ? {} : { demo: demoUrl }),
        ...(metricsUrl === undefined ? {} : { metrics: metricsUrl }),
      }) + "\n",
    );
  } else {
    out(`hydra-relay listening on ${where}\nrelay key ${relay.publicKeyHex}\n`);
    if (wsUrl !== undefined) out(`websocket on ${wsUrl}\n`);
    if (demoUrl !== undefined) out(`demo on ${demoUrl}\n`);
    if (metricsUrl !== undefined) out(`metrics on ${metricsUrl}\n`);
  }
  await stopped;
  const open = relay.stats().connections;
  if (open > 0) {
    process.stderr.write(
      `hydra-relay: draining ${open} connection${open === 1 ? "" : "s"} (up to ${drainMs} ms; ` +
        "a second signal stops at once)\n",
    );
  }
  await relay.close({ drainMs });
  await metrics?.close();
  await demo?.close();
  out(
    json
      ? JSON.stringify({ event: "stopped", connections: open }) + "\n"
      : `hydra-relay stopped (${open} connection${open === 1 ? "" : "s"} closed)\n`,
  );
  return 0;
}

function defined<T extends Record<string, number | undefined>>(o: T): Record<string, number> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Record<
    string,
    number
  >;
}

function clientSetup(flags: Record<string, string | undefined>) {
  if (flags.token === undefined) {
    throw new UsageError(
      "no session token: pass --token or set HYDRA_TOKEN (make one with: hydra-relay keygen)",
    );
  }
  if (flags.mode !== "line" && flags.mode !== "raw") {
    throw new UsageError(`--mode must be line or raw, got "${flags.mode}"`);
  }
  let session: Session;
  try {
    session = Session.fromToken(flags.token);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}`);
  }
  let addr;
  try {
    const list = flags.relay!.split(",").map((a) => parseAddr(a, DEFAULT_PORT));
    addr = list.length === 1 ? list[0]! : list;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return {
    session,
    addr,
    mode: flags.mode,
    options: flags["relay-key"] === undefined ? {} : { relayKey: flags["relay-key"] },
  };
}

async function pub(flags: Record<string, string | undefined>): Promise<number> {
  const { session, addr, mode, options } = clientSetup(flags);
  const producer = await Producer.connect(addr, session, options);
  const max = producer.maxMessageBytes;
  const progress = new Progress("pub", process.stderr);
  const send = (m: Uint8Array) => {
    progress.add(m.length);
    return producer.broadcast(m);
  };
  let carry = new Uint8Array(0);
  for await (const chunk of process.stdin as AsyncIterable<Uint8Array>) {
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (mode === "raw") {
      for (let off = 0; off < bytes.length; off += max) {
        await send(bytes.subarray(off, Math.min(off + max, bytes.length)));
      }
      continue;
    }
    let data = carry.length === 0 ? bytes : concatTwo(carry, bytes);
    let nl: number;
    while ((nl = data.indexOf(10)) >= 0) {
      const line = data.subarray(0, nl > 0 && data[nl - 1] === 13 ? nl - 1 : nl);
      if (line.length > max) {
        throw new RangeError(
          `a line of ${line.length} bytes exceeds the relay's message limit (${max}); use --mode raw`,
        );
      }
      await send(line);
      data = data.subarray(nl + 1);
    }
    carry = data.slice();
  }
  if (mode === "line" && carry.length > 0) await send(carry);
  await producer.close();
  finish(progress, "sent", flags);
  return 0;
}

/** After pub/sub: the live line gives way to a summary (TTY), or a JSON line (--json). */
function finish(progress: Progress, verb: string, flags: Record<string, string | undefined>) {
  const live = progress.live;
  progress.stop();
  if (flags.json !== undefined) {
    process.stderr.write(
      JSON.stringify({
        event: "done",
        [verb]: progress.messages,
        bytes: progress.bytes,
        seconds: Number(progress.seconds.toFixed(3)),
      }) + "\n",
    );
  } else if (live) {
    process.stderr.write(`hydra-relay: ${verb} ${progress.summary()}\n`);
  }
}

async function sub(flags: Record<string, string | undefined>): Promise<number> {
  const { session, addr, mode, options } = clientSetup(flags);
  const consumer = await Consumer.connect(addr, session, options);
  consumer.on(
    "lagged",
    (g) =>
      process.stderr.write(
        `hydra-relay: gap: frames ${g.from}..${g.to - 1n} were dropped by the relay\n`,
      ),
  );
  const stdout = process.stdout;
  const newline = new Uint8Array([10]);
  const progress = new Progress("sub", process.stderr);
  for await (const m of consumer) {
    progress.add(m.length);
    let ok = stdout.write(m);
    if (mode === "line") ok = stdout.write(newline);
    if (!ok) await new Promise<void>((r) => stdout.once("drain", () => r()));
  }
  await new Promise<void>((r) => stdout.write("", () => r()));
  finish(progress, "received", flags);
  return 0;
}

function concatTwo(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
