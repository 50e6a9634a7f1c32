/**
 * @module
 * `hydra-relay serve` (the default command): runs a relay with its optional metrics, WebSocket and
 * demo endpoints, prints where it listens, and drains on SIGINT/SIGTERM.
 */

import { createWriteStream } from "node:fs";
import process from "node:process";
import type { PolicyName } from "../../protocol/control.ts";
import { parseLogLevel } from "../../server/log.ts";
import { DEFAULT_LIMITS, DEFAULT_PORT, type RelayOptions } from "../../server/options.ts";
import { RelayServer } from "../../server/relay.ts";
import { parseAddr } from "../../transport/addr.ts";
import type { TcpAddr } from "../../transport/types.ts";
import { type FlagSpec, intFlag, UsageError } from "../args.ts";
import { type DemoEndpoint, serveDemo } from "../demo_http.ts";
import { type MetricsEndpoint, serveMetrics } from "../metrics_http.ts";
import { type Command, CONFIG, type Flags, HELP, JSON_FLAG, out } from "./_command.ts";

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
    name: "max-handshakes",
    env: "HYDRA_MAX_HANDSHAKES",
    value: "N",
    help:
      `new connections per second, 0 = no limit (default ${DEFAULT_LIMITS.maxHandshakesPerSecond})`,
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

/** A HOST:PORT flag, or `undefined` when absent. */
function tcpFlag(
  flags: Flags,
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

async function serve(flags: Flags): Promise<number> {
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
      maxHandshakesPerSecond: num("max-handshakes"),
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

/** `hydra-relay serve`. */
export const serveCommand: Command = {
  usage: "Usage: hydra-relay serve [options]\n\nRuns an end-to-end encrypted relay.",
  flags: SERVE_FLAGS,
  run: serve,
};
