/**
 * @module
 * Relay options, their defaults and validation. The defaults are listed, with hydra-sync's
 * behaviour for comparison, in README "Configuration".
 */

import type { CryptoProvider } from "../crypto/types.ts";
import type { PolicyName } from "../protocol/control.ts";
import { Policy } from "../protocol/control.ts";
import type { Addr, Transport } from "../transport/types.ts";
import type { LogLevel, LogSink } from "./log.ts";
import type { ClusterOptions } from "./cluster/options.ts";

/** Everything {@link RelayServer.listen} accepts; every field is optional. */
export interface RelayOptions {
  /** TCP host to bind. Default `"127.0.0.1"` (use `"0.0.0.0"` to serve other machines). */
  readonly hostname?: string;
  /** TCP port. Default {@link DEFAULT_PORT}; `0` picks a free one. */
  readonly port?: number;
  /** Unix socket path; when set, the relay listens there instead of on TCP. */
  readonly path?: string;
  /** A full address; overrides `hostname`/`port`/`path`. */
  readonly addr?: Addr;
  /** Socket adapter. Default: the running runtime's native one. */
  readonly transport?: Transport;
  /**
   * Also accept WebSocket clients (browsers, `websocketTransport()`) on this TCP address,
   * with the runtime's own HTTP server (`ws` package on Node). Port 0 picks a free one;
   * {@link RelayServer.websocketAddr} has the real one.
   */
  readonly websocket?: { readonly hostname?: string; readonly port: number };
  /**
   * Join a cluster of relays federated over NATS (docs/SCALING.md): sessions fan out across
   * every relay of the cluster and a session has one producer cluster-wide. Needs a NATS
   * server with JetStream; loads nats.js (`@nats-io/transport-node`, `@nats-io/kv`).
   */
  readonly cluster?: ClusterOptions;
  /** Crypto adapter. Default: `nativeCrypto()`. */
  readonly crypto?: CryptoProvider;
  /** Open connections at most (handshaking ones included). Default 10,000. */
  readonly maxConnections?: number;
  /** Largest data frame body (bytes), announced to clients. Default 4 MiB. */
  readonly maxFrameBytes?: number;
  /** Ring capacity per session, in frames. Default 1,024. */
  readonly ringFrames?: number;
  /** Ring capacity per session, in bytes. Default 16 MiB. */
  readonly ringBytes?: number;
  /** What happens to a consumer a full ring behind. Default `"disconnect"`. */
  readonly policy?: PolicyName;
  /** Sessions one connection may join. Default 1,024. */
  readonly maxSessionsPerConnection?: number;
  /**
   * New connections admitted per second at most (a token bucket holding one second's worth);
   * 0 = no limit. Over it, the listeners are paused: connections arriving meanwhile are
   * turned away before their handshake, as cheaply as the runtime allows (docs/ADAPTERS.md),
   * and their clients retry with backoff. A flood of handshakes then costs the relay little
   * and established sessions keep their latency. Default 1,000 (a join costs the relay
   * 0.5–1.5 ms of CPU: docs/BENCHMARKS.md).
   */
  readonly maxHandshakesPerSecond?: number;
  /** Time to complete the Noise handshake (ms). Default 10,000. */
  readonly handshakeTimeoutMs?: number;
  /** Interval clients ping at (ms), announced in the hello. Default 10,000. */
  readonly heartbeatMs?: number;
  /**
   * A connection silent this long is closed (ms), never later: a dead or half-open client is
   * detected within it. Must exceed `heartbeatMs`. Default 2 × `heartbeatMs` (20,000).
   */
  readonly idleTimeoutMs?: number;
  /** How long consumers wait for a producer (ms); 0 = forever. Default 60,000. */
  readonly waitForProducerMs?: number;
  /** How long a stream survives its producer's abrupt loss (ms). Default 5,000. */
  readonly producerGraceMs?: number;
  /**
   * How long a session nobody is joined to keeps its ring, so consumers whose connection broke
   * can resume from it (ms); 0 = drop at once. Default 10,000.
   */
  readonly sessionLingerMs?: number;
  /**
   * Bytes all sessions' rings may hold together. Sessions are free to create, so without
   * it anyone could make the relay hold `ringBytes` per session they invent. Over budget, a
   * ring takes a frame only by evicting its own oldest ones (its consumers' policy applies
   * as for a full ring). Default 1 GiB.
   */
  readonly memoryBudgetBytes?: number;
  /** Relay static X25519 private key (32 bytes). Default: `keyFile`, else a fresh key. */
  readonly staticKey?: Uint8Array;
  /** File holding the static key (hex); created with mode 0600 when missing. */
  readonly keyFile?: string;
  /** Lowest level logged. Default `"warn"` (the CLI uses `"info"`). */
  readonly logLevel?: LogLevel;
  /** Where log lines go. Default `console.error`. */
  readonly logSink?: LogSink;
}

/** The relay's default TCP port. */
export const DEFAULT_PORT = 7447;

/** The numeric limits after defaults were applied. */
export interface RelayLimits {
  /** Open connections at most. */
  readonly maxConnections: number;
  /** Largest data frame body (bytes). */
  readonly maxFrameBytes: number;
  /** Ring capacity per session (frames). */
  readonly ringFrames: number;
  /** Ring capacity per session (bytes). */
  readonly ringBytes: number;
  /** Default slow-consumer policy. */
  readonly policy: PolicyName;
  /** Joins per connection at most. */
  readonly maxSessionsPerConnection: number;
  /** New connections admitted per second (0 = no limit). */
  readonly maxHandshakesPerSecond: number;
  /** Handshake deadline (ms). */
  readonly handshakeTimeoutMs: number;
  /** Client ping interval (ms). */
  readonly heartbeatMs: number;
  /** Silence after which a connection is closed (ms). */
  readonly idleTimeoutMs: number;
  /** Consumers' wait for a producer (ms, 0 = forever). */
  readonly waitForProducerMs: number;
  /** Grace period after a producer's abrupt loss (ms). */
  readonly producerGraceMs: number;
  /** How long an unjoined session keeps its ring for resuming consumers (ms). */
  readonly sessionLingerMs: number;
  /** Bytes all rings may hold together. */
  readonly memoryBudgetBytes: number;
}

/** The defaults, as documented. */
export const DEFAULT_LIMITS: RelayLimits = {
  maxConnections: 10_000,
  maxFrameBytes: 4 * 1024 * 1024,
  ringFrames: 1024,
  ringBytes: 16 * 1024 * 1024,
  policy: "disconnect",
  maxSessionsPerConnection: 1024,
  maxHandshakesPerSecond: 1000,
  handshakeTimeoutMs: 10_000,
  heartbeatMs: 10_000,
  idleTimeoutMs: 20_000,
  waitForProducerMs: 60_000,
  producerGraceMs: 5_000,
  sessionLingerMs: 10_000,
  memoryBudgetBytes: 1024 * 1024 * 1024,
};

function int(
  v: number | undefined,
  name: string,
  min: number,
  max: number,
  fallback: number,
): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`"${name}" must be an integer in [${min}, ${max}], got ${v}`);
  }
  return v;
}

/**
 * Applies defaults and checks ranges.
 * @param o The caller's options.
 * @returns The effective limits.
 * @throws {RangeError} naming the offending option.
 * @example
 * ```ts
 * import { resolveLimits } from "./options.ts";
 * resolveLimits({ ringFrames: 64 }).ringFrames; // 64
 * ```
 */
export function resolveLimits(o: RelayOptions): RelayLimits {
  const d = DEFAULT_LIMITS;
  const maxFrameBytes = int(o.maxFrameBytes, "maxFrameBytes", 1024, 0x7fffffff, d.maxFrameBytes);
  const ringBytes = int(o.ringBytes, "ringBytes", 1024, Number.MAX_SAFE_INTEGER, d.ringBytes);
  if (o.policy !== undefined && !(o.policy in Policy)) {
    throw new RangeError(`"policy" must be disconnect, drop or block, got ${o.policy}`);
  }
  const heartbeatMs = int(o.heartbeatMs, "heartbeatMs", 10, 0x7fffffff, d.heartbeatMs);
  if (o.idleTimeoutMs !== undefined && o.idleTimeoutMs <= heartbeatMs) {
    throw new RangeError(
      `"idleTimeoutMs" (${o.idleTimeoutMs}) must exceed "heartbeatMs" (${heartbeatMs}), or live clients are cut`,
    );
  }
  return {
    maxConnections: int(o.maxConnections, "maxConnections", 1, 0x7fffffff, d.maxConnections),
    maxFrameBytes,
    ringFrames: int(o.ringFrames, "ringFrames", 2, 0x7fffffff, d.ringFrames),
    ringBytes,
    policy: o.policy ?? d.policy,
    maxSessionsPerConnection: int(
      o.maxSessionsPerConnection,
      "maxSessionsPerConnection",
      1,
      0xffff,
      d.maxSessionsPerConnection,
    ),
    maxHandshakesPerSecond: int(
      o.maxHandshakesPerSecond,
      "maxHandshakesPerSecond",
      0,
      1_000_000,
      d.maxHandshakesPerSecond,
    ),
    handshakeTimeoutMs: int(
      o.handshakeTimeoutMs,
      "handshakeTimeoutMs",
      1,
      0x7fffffff,
      d.handshakeTimeoutMs,
    ),
    heartbeatMs,
    idleTimeoutMs: int(
      o.idleTimeoutMs,
      "idleTimeoutMs",
      1,
      0x7fffffff,
      2 * heartbeatMs,
    ),
    waitForProducerMs: int(
      o.waitForProducerMs,
      "waitForProducerMs",
      0,
      0x7fffffff,
      d.waitForProducerMs,
    ),
    producerGraceMs: int(o.producerGraceMs, "producerGraceMs", 0, 0x7fffffff, d.producerGraceMs),
    sessionLingerMs: int(o.sessionLingerMs, "sessionLingerMs", 0, 0x7fffffff, d.sessionLingerMs),
    memoryBudgetBytes: int(
      o.memoryBudgetBytes,
      "memoryBudgetBytes",
      1024 * 1024,
      Number.MAX_SAFE_INTEGER,
      d.memoryBudgetBytes,
    ),
  };
}
