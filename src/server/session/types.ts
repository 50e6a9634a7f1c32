/**
 * @module
 * What a relay session shares with the connections its subscriptions live on, the relay that
 * holds it and a cluster that mirrors it (docs/PROTOCOL.md §6.4): the contracts of
 * `RelaySession`. The session handle appears as a type parameter `S`, so these contracts
 * need not import the session class (src/server/session.ts binds `S` to `RelaySession`).
 */

import type { RelayError } from "../../errors.ts";
import type { ControlMessage, PolicyName } from "../../protocol/control.ts";
import type { Logger } from "../log.ts";
import type { RelayLimits } from "../options.ts";
import type { MemoryAccount } from "../ring.ts";

/** What a session needs from the connection a subscription lives on. */
export interface SubscriberConn {
  /** Connection number for logs. */
  readonly id: number;
  /** The connection has something new to send. */
  wake(): void;
  /**
   * Whether the connection may still hold a view of ring memory: runs taken and not yet
   * written, or written and not yet handed to the OS (`writableLength` > 0). The ring reuses
   * its slabs only while no connection that took from it says so (src/server/ring.ts).
   */
  readonly holding: boolean;
}

/**
 * The producer slot's holder when the session's producer is on another relay of a cluster
 * (src/server/cluster/): this relay mirrors a stream it receives over NATS.
 */
export const REMOTE_ORIGIN: SubscriberConn = { id: 0, wake() {}, holding: false };

/** Where the session's current stream comes from. */
export type Origin = "none" | "local" | "remote";

/** Told when the producer slot changes hands (a cluster claims and releases slots). */
export interface Observer<S> {
  /** A producer joined or left, or its grace period ran out. */
  producerChanged(session: S): void;
  /**
   * A consumer with policy `block` joined, took frames or left while no local producer holds
   * the slot (the stream comes, or will come, from another relay): the session's
   * `blockingFloor()` may have moved.
   */
  blockersMoved?(session: S): void;
}

/** The most generations one consumer's grants keep (the newest). */
export const MAX_GRANTS = 4;

/** A consumer: a cursor into the session's ring. */
export interface Cursor<S> {
  readonly conn: SubscriberConn;
  readonly session: S;
  readonly policy: PolicyName;
  /** Log index of the next entry to send. */
  cursor: number;
  /** Seq of the next data frame this consumer expects (for LAGGED). */
  nextSeq: bigint;
  /** Relay-local number of the stream whose start this consumer has received (0 = none). */
  stream: number;
  /** Data frames below this seq are not sent (a resumed consumer already has them). */
  skipBelow: bigint;
  /**
   * The read-capability generations this consumer proved (join and GRANTs), at most
   * {@link MAX_GRANTS}; `undefined` for a write-token consumer, which reads every generation.
   */
  generations?: number[] | undefined;
  /** A resume point for a stream this relay did not know at join time (it restarted). */
  resume?: { readonly epoch: Uint8Array; readonly nextSeq: bigint } | undefined;
  /** Removed from the session. */
  done: boolean;
}

/** What the session's `take` hands a connection to send, in order. */
export type Outgoing =
  | { readonly kind: "bytes"; readonly bytes: Uint8Array; readonly frames: number }
  | { readonly kind: "control"; readonly message: ControlMessage }
  | { readonly kind: "end"; readonly error?: RelayError };

/** Counters the relay aggregates into `stats()`. */
export interface SessionCounters {
  lagged: number;
  slowDisconnects: number;
  /** Gaps in mirrored streams: frames that never arrived from the cluster. */
  mirrorGaps?: number;
}

/** The relay-wide context a session reports to. */
export interface Context<S> {
  readonly limits: RelayLimits;
  readonly log: Logger;
  readonly counters: SessionCounters;
  /** Called when the session has neither producer nor consumers nor pending grace. */
  readonly onIdle: (session: S) => void;
  /** The relay-wide ring memory account (default: unbounded, for standalone use). */
  readonly memory?: MemoryAccount;
  /** Told about producer slot changes (cluster mode). */
  readonly observer?: Observer<S>;
}

/** Where blocking consumers are in a stream: its epoch and the lowest seq still needed. */
export interface Floor {
  readonly epoch: Uint8Array;
  readonly seq: bigint;
}
