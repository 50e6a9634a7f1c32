/**
 * @module
 * What a relay's connection needs from the relay that accepted it, and the counters it keeps
 * there: the contract between `ServerConnection` (connection.ts) and `RelayServer`
 * (relay.ts), so neither file reaches into the other.
 */

import type { CryptoProvider, KeyPair } from "../crypto/types.ts";
import type { RelayError } from "../errors.ts";
import type { Logger } from "./log.ts";
import type { Tamper } from "./_tamper.ts";
import type { RelayLimits } from "./options.ts";
import type { RelaySession } from "./session.ts";

/** What a connection needs from the relay. */
export interface RelayContext {
  readonly crypto: CryptoProvider;
  readonly staticKey: KeyPair;
  readonly limits: RelayLimits;
  readonly log: Logger;
  readonly stats: ConnCounters;
  /** The session for a route id, created on first use. */
  session(routeId: Uint8Array, tag: Uint8Array): RelaySession | RelayError;
  /** Clock (ms). */
  readonly now: () => number;
  /** A connection is torn down: the relay forgets it. */
  closed(conn: object): void;
  /** Test hook simulating a malicious relay (`_tamper.ts`); undefined in production. */
  readonly tamper?: Tamper | undefined;
  /**
   * Claims the session's producer slot beyond this relay (cluster mode) before a local
   * producer joins: resolves to the refusal, or nothing when the producer may join.
   */
  readonly claim?: ((session: RelaySession) => Promise<RelayError | undefined>) | undefined;
}

/** Relay-wide counters a connection updates. */
export interface ConnCounters {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  handshakeFailures: number;
  joinFailures: number;
  protocolErrors: number;
  /** Failed handshakes by error code (`timeout` for the handshake deadline). */
  readonly handshakeFailuresBy: Map<string, number>;
  /** Refused joins by error code. */
  readonly joinFailuresBy: Map<string, number>;
  /** Closed connections by reason: an error code, or `normal` when the client left. */
  readonly closesBy: Map<string, number>;
}

/** What a connection is doing, for metrics. */
export type ConnRole = "handshake" | "producer" | "consumer" | "unjoined";

/** Adds one to a counter in a by-kind map. */
export function countBy(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
