/**
 * @module
 * `RelayServer`: accepts connections on one transport, hands each to a
 * {@link ServerConnection}, keeps the sessions by route id, enforces the connection cap and
 * the idle and slow-consumer sweeps, and reports `stats()`. It holds no session key and sees
 * no plaintext (docs/PROTOCOL.md §6).
 */

import { equals, fromHex, toHex } from "../bytes.ts";
import { nativeCrypto } from "../crypto/native.ts";
import type { CryptoProvider, KeyPair } from "../crypto/types.ts";
import { RelayError } from "../errors.ts";
import { defaultTransport } from "../transport/default.ts";
import type { Addr, Listener, TcpAddr } from "../transport/types.ts";
import { listenWebSocket } from "../transport/websocket_server.ts";
import { HandshakeGate } from "./_admission.ts";
import { ServerConnection, SLOW_DRAIN_MS } from "./connection.ts";
import type { ConnCounters, ConnRole, RelayContext } from "./context.ts";
import { Logger } from "./log.ts";
import { DEFAULT_PORT, type RelayLimits, type RelayOptions, resolveLimits } from "./options.ts";
import { RelaySession, type SessionCounters } from "./session.ts";
import { TAMPER, type Tamper } from "./_tamper.ts";
import type { MemoryAccount } from "./ring.ts";
import type { Cluster } from "./cluster/cluster.ts";
import type { ClusterStats } from "./cluster/options.ts";

/** A snapshot of the relay's counters. */
export interface RelayStats {
  /** Open connections (handshaking included). */
  readonly connections: number;
  /** Live sessions. */
  readonly sessions: number;
  /** Sessions with a producer. */
  readonly producers: number;
  /** Joined consumers, over all sessions. */
  readonly consumers: number;
  /** Data frames accepted from producers. */
  readonly framesIn: number;
  /** Bytes read from all connections. */
  readonly bytesIn: number;
  /** Data frames written to consumers (each consumer counted). */
  readonly framesOut: number;
  /** Data bytes written to consumers. */
  readonly bytesOut: number;
  /** Times a consumer was skipped ahead (policy drop). */
  readonly lagged: number;
  /** Consumers disconnected for being slow (policy disconnect). */
  readonly slowDisconnects: number;
  /** Handshakes that failed or timed out. */
  readonly handshakeFailures: number;
  /** Joins refused (bad proof, producer exists, limits). */
  readonly joinFailures: number;
  /** Connections closed for protocol violations. */
  readonly protocolErrors: number;
  /** Connections refused at the cap. */
  readonly refused: number;
  /**
   * New connections turned away unanswered, over `maxHandshakesPerSecond` (counted where the
   * runtime tells: Deno leaves them in the backlog instead).
   */
  readonly throttled: number;
  /** Frames held in all rings. */
  readonly ringFrames: number;
  /** Bytes held in all rings. */
  readonly ringBytes: number;
  /** The budget for {@link ringBytes} (`memoryBudgetBytes`). */
  readonly ringBudgetBytes: number;
  /** Open connections by what they do: handshaking, producing, consuming, or joined to
   * nothing yet (a connection producing one session and consuming another counts as
   * producer). */
  readonly connectionsByRole: Readonly<Record<ConnRole, number>>;
  /** {@link handshakeFailures} by error code (`timeout`: the handshake deadline). */
  readonly handshakeFailuresByKind: Readonly<Record<string, number>>;
  /** {@link joinFailures} by error code (`auth-failed`, `producer-exists`, …). */
  readonly joinFailuresByKind: Readonly<Record<string, number>>;
  /** Closed connections by reason: `normal` (the client left), `refused` (connection cap),
   * or the error code that ended it (`timeout`, `slow-consumer`, `going-away`, …). */
  readonly closesByReason: Readonly<Record<string, number>>;
  /** Seconds since the relay started listening. */
  readonly uptimeSeconds: number;
  /** The relay is shutting down: it accepts nothing new and drains what is queued. */
  readonly draining: boolean;
  /** Cluster counters, when the relay is part of a cluster (`cluster` option). */
  readonly cluster?: ClusterStats;
}

/**
 * The relay.
 *
 * @example
 * ```ts
 * import { RelayServer } from "./relay.ts";
 * import { memoryTransport } from "../transport/memory.ts";
 * const relay = await RelayServer.listen({ transport: memoryTransport(), port: 0 });
 * console.log(relay.addr, relay.stats().connections);
 * await relay.close();
 * ```
 */
export class RelayServer {
  /** The bound address (the real port when 0 was asked for). */
  readonly addr: Addr;
  /** Where WebSocket clients connect, when `websocket` was asked for. */
  readonly websocketAddr: TcpAddr | undefined;
  /** The relay's static X25519 public key: what clients pin. */
  readonly publicKey: Uint8Array;
  /** The effective limits. */
  readonly limits: RelayLimits;
  readonly #listeners: Listener[];
  readonly #log: Logger;
  readonly #context: RelayContext;
  readonly #cluster: Cluster | undefined;
  readonly #memory: MemoryAccount;
  readonly #sessions = new Map<string, RelaySession>();
  readonly #conns = new Set<ServerConnection>();
  readonly #counters: ConnCounters & SessionCounters & { refused: number } = {
    framesIn: 0,
    bytesIn: 0,
    framesOut: 0,
    bytesOut: 0,
    handshakeFailures: 0,
    joinFailures: 0,
    protocolErrors: 0,
    lagged: 0,
    slowDisconnects: 0,
    refused: 0,
    handshakeFailuresBy: new Map(),
    joinFailuresBy: new Map(),
    closesBy: new Map(),
  };
  readonly #started = Date.now();
  readonly #sweep: ReturnType<typeof setInterval>;
  readonly #sweepMs: number;
  readonly #accepting: Promise<void[]>;
  readonly #gate: HandshakeGate;
  #throttleLoggedAt = -Infinity;
  #nextId = 1;
  #closing: Promise<void> | undefined;

  private constructor(
    listener: Listener,
    crypto: CryptoProvider,
    key: KeyPair,
    limits: RelayLimits,
    log: Logger,
    tamper: Tamper | undefined,
    websocket: Listener | undefined,
    cluster: Cluster | undefined,
  ) {
    this.addr = listener.addr;
    this.publicKey = key.publicKey;
    this.limits = limits;
    this.#listeners = [listener, ...(websocket === undefined ? [] : [websocket])];
    this.websocketAddr = websocket?.addr as TcpAddr | undefined;
    this.#log = log;
    this.#cluster = cluster;
    this.#memory = { used: 0, budget: limits.memoryBudgetBytes };
    // One context for every connection (not an object and closures per connection: an idle
    // connection's footprint is what T5 measures).
    this.#context = {
      crypto,
      staticKey: key,
      limits,
      log,
      stats: this.#counters,
      now: Date.now,
      session: (routeId, tag) => this.#session(routeId, tag),
      closed: (conn) => this.#conns.delete(conn as ServerConnection),
      tamper,
      claim: cluster === undefined ? undefined : (s) => cluster.claim(s),
    };
    this.#sweepMs = sweepInterval(limits);
    this.#sweep = setInterval(() => this.#sweepOnce(), this.#sweepMs);
    this.#gate = new HandshakeGate(limits.maxHandshakesPerSecond, this.#listeners, () => {
      // A flood would make a line per pause: one every 10 s at most, with the running count.
      const now = Date.now();
      if (now - this.#throttleLoggedAt < 10_000) return;
      this.#throttleLoggedAt = now;
      log.warn("conn.throttled", {
        maxHandshakesPerSecond: limits.maxHandshakesPerSecond,
        throttled: this.#gate.throttled,
      });
    });
    this.#accepting = Promise.all(this.#listeners.map((l) => this.#acceptLoop(l)));
  }

  /**
   * Starts a relay.
   * @param options See {@link RelayOptions}; all optional.
   * @returns The running relay.
   * @throws {RangeError} for an invalid option; {RelayError} `addr-in-use` when the address
   *   is taken.
   */
  static async listen(options: RelayOptions = {}): Promise<RelayServer> {
    const limits = resolveLimits(options);
    const crypto = options.crypto ?? nativeCrypto();
    const transport = options.transport ?? defaultTransport();
    const log = new Logger(
      options.logLevel ?? "warn",
      options.logSink ?? ((line) => console.error(line)),
    );
    const key = await loadKey(crypto, options);
    const addr: Addr = options.addr ??
      (options.path !== undefined ? { kind: "unix", path: options.path } : {
        kind: "tcp",
        hostname: options.hostname ?? "127.0.0.1",
        port: options.port ?? DEFAULT_PORT,
      });
    let cluster: Cluster | undefined;
    if (options.cluster !== undefined) {
      const { Cluster } = await import("./cluster/cluster.ts");
      cluster = await Cluster.join(options.cluster, crypto, log);
    }
    let listener: Listener;
    try {
      listener = await transport.listen(addr);
    } catch (e) {
      await cluster?.close();
      throw e;
    }
    let websocket: Listener | undefined;
    if (options.websocket !== undefined) {
      try {
        websocket = await listenWebSocket({
          kind: "tcp",
          hostname: options.websocket.hostname ?? "127.0.0.1",
          port: options.websocket.port,
        }, { maxMessageBytes: Math.max(1 << 20, limits.maxFrameBytes + 64) });
      } catch (e) {
        await listener.close();
        await cluster?.close();
        throw e;
      }
    }
    const tamper = (options as { [TAMPER]?: Tamper })[TAMPER];
    const relay = new RelayServer(listener, crypto, key, limits, log, tamper, websocket, cluster);
    log.info("relay.listen", {
      addr: formatListen(listener.addr),
      transport: transport.name,
      crypto: crypto.name,
      key: toHex(key.publicKey),
      policy: limits.policy,
      ...(websocket === undefined ? {} : { websocket: formatListen(websocket.addr) }),
      ...(cluster === undefined ? {} : { cluster: cluster.id }),
    });
    return relay;
  }

  /** The relay's public key in hex (for `--relay-key` pinning). */
  get publicKeyHex(): string {
    return toHex(this.publicKey);
  }

  /**
   * Current counters.
   * @returns A snapshot.
   */
  stats(): RelayStats {
    let producers = 0, consumers = 0, ringFrames = 0, ringBytes = 0;
    const roles: Record<ConnRole, number> = { handshake: 0, producer: 0, consumer: 0, unjoined: 0 };
    for (const c of this.#conns) roles[c.role]++;
    for (const s of this.#sessions.values()) {
      if (s.localProducer) producers++;
      consumers += s.consumers.size;
      ringFrames += s.ringFrames;
      ringBytes += s.ringBytes;
    }
    const c = this.#counters;
    return {
      connections: this.#conns.size,
      sessions: this.#sessions.size,
      producers,
      consumers,
      framesIn: c.framesIn,
      bytesIn: c.bytesIn,
      framesOut: c.framesOut,
      bytesOut: c.bytesOut,
      lagged: c.lagged,
      slowDisconnects: c.slowDisconnects,
      handshakeFailures: c.handshakeFailures,
      joinFailures: c.joinFailures,
      protocolErrors: c.protocolErrors,
      refused: c.refused,
      throttled: this.#gate.throttled,
      ringFrames,
      ringBytes,
      ringBudgetBytes: this.#memory.budget,
      connectionsByRole: roles,
      handshakeFailuresByKind: Object.fromEntries(c.handshakeFailuresBy),
      joinFailuresByKind: Object.fromEntries(c.joinFailuresBy),
      closesByReason: Object.fromEntries(c.closesBy),
      uptimeSeconds: (Date.now() - this.#started) / 1000,
      draining: this.#closing !== undefined,
      ...(this.#cluster === undefined ? {} : { cluster: this.#cluster.stats(c.mirrorGaps ?? 0) }),
    };
  }

  /**
   * Stops accepting, tells every client the relay is going away, lets queued frames drain
   * for up to `drainMs`, then closes everything. Idempotent.
   * @param options `drainMs` (default 2,000).
   */
  close(options: { drainMs?: number } = {}): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#sweep);
      this.#gate.close();
      await Promise.all(this.#listeners.map((l) => l.close()));
      await this.#accepting;
      const drainMs = options.drainMs ?? 2000;
      for (const c of this.#conns) {
        c.shutdown(new RelayError("going-away", "relay shutting down"), drainMs);
      }
      await Promise.all([...this.#conns].map((c) => c.done));
      await this.#cluster?.close();
      for (const s of this.#sessions.values()) s.close();
      this.#sessions.clear();
      this.#log.info("relay.closed", {});
    })();
    return this.#closing;
  }

  async #acceptLoop(listener: Listener): Promise<void> {
    for await (const conn of listener) {
      if (!this.#gate.admit()) {
        conn.close();
        continue;
      }
      const id = this.#nextId++;
      let refuse: RelayError | undefined;
      if (this.#conns.size >= this.limits.maxConnections) {
        this.#counters.refused++;
        refuse = new RelayError(
          "limit-exceeded",
          `relay at its connection limit (${this.limits.maxConnections}); try again later`,
        );
        this.#log.warn("conn.refused", { conn: id, reason: "max-connections" });
      }
      const rc = new ServerConnection(id, conn, this.#context, refuse);
      this.#conns.add(rc);
    }
  }

  #session(routeId: Uint8Array, tag: Uint8Array): RelaySession | RelayError {
    const key = toHex(tag);
    const existing = this.#sessions.get(key);
    if (existing !== undefined) {
      if (!equals(existing.routeId, routeId)) {
        // 64-bit tags of two live sessions collide: refuse the newcomer, never mix streams.
        return new RelayError("limit-exceeded", "stream tag in use by another session");
      }
      return existing;
    }
    const session = new RelaySession(routeId, tag, {
      limits: this.limits,
      log: this.#log,
      counters: this.#counters,
      memory: this.#memory,
      ...(this.#cluster === undefined ? {} : { observer: this.#cluster }),
      onIdle: (s) => {
        if (this.#sessions.get(key) === s) this.#sessions.delete(key);
        this.#cluster?.detach(s);
      },
    });
    this.#sessions.set(key, session);
    this.#cluster?.attach(session);
    return session;
  }

  /** Idle connections and stalled consumers under policy `disconnect`. */
  #sweepOnce(): void {
    const now = Date.now();
    for (const c of this.#conns) {
      // Closed at the last sweep before the deadline, so never later than it.
      if (c.open && c.idleFor(now) + this.#sweepMs > this.limits.idleTimeoutMs) {
        this.#log.info("conn.idle_timeout", { conn: c.id });
        c.shutdown(new RelayError("timeout", "no traffic within the idle timeout"), 200);
        continue;
      }
      for (const sub of c.consumerSubs) {
        if (sub.policy === "disconnect" && sub.cursor < sub.session.ringBase) {
          this.#counters.slowDisconnects++;
          sub.session.removeConsumer(sub);
          this.#log.info("consumer.dropped", {
            conn: c.id,
            route: sub.session.name,
            code: "slow-consumer",
          });
          c.shutdown(
            new RelayError("slow-consumer", "consumer fell a full ring behind (policy disconnect)"),
            SLOW_DRAIN_MS,
          );
          break;
        }
      }
    }
  }
}

/**
 * How often the sweep runs: a quarter of the slack between a live client's longest silence
 * (one heartbeat) and the idle deadline, at most 1 s.
 */
function sweepInterval(limits: RelayLimits): number {
  return Math.max(5, Math.min(1000, Math.floor((limits.idleTimeoutMs - limits.heartbeatMs) / 4)));
}

function formatListen(a: Addr): string {
  return a.kind === "tcp" ? `${a.hostname}:${a.port}` : `unix:${a.path}`;
}

async function loadKey(crypto: CryptoProvider, o: RelayOptions): Promise<KeyPair> {
  if (o.staticKey !== undefined) return keyPairOf(crypto, o.staticKey);
  if (o.keyFile !== undefined) {
    const { loadOrCreateKeyFile } = await import("../sys/key_file.ts");
    const hex = await loadOrCreateKeyFile(o.keyFile, () => toHex(crypto.randomBytes(32)));
    let bytes: Uint8Array;
    try {
      bytes = fromHex(hex);
    } catch {
      throw new TypeError(`key file ${o.keyFile} does not hold a hex key`);
    }
    return keyPairOf(crypto, bytes);
  }
  return await crypto.x25519KeyPair();
}

async function keyPairOf(crypto: CryptoProvider, privateKey: Uint8Array): Promise<KeyPair> {
  if (!(privateKey instanceof Uint8Array) || privateKey.length !== 32) {
    throw new TypeError(`"staticKey" expected 32 bytes`);
  }
  return await crypto.x25519KeyPair(privateKey);
}
