/**
 * @module
 * Where a producer or consumer that owns its connection (made by `connect`) connects and
 * reconnects to: one relay or several relays of a cluster (docs/SCALING.md), tried in turn.
 */

import { RelayError } from "../errors.ts";
import type { Addr } from "../transport/types.ts";
import type { ConnectOptions } from "./_handshake.ts";
import { RelayLink } from "./link.ts";
import { isTransient } from "./_reconnect.ts";

/**
 * The home for a reconnect attempt: an attempt may take no longer than 2 × the relay's
 * heartbeat (at least 1 s, at most the configured timeout), so a connect lost on a dead link
 * — a SYN that vanished — is retried soon after the link returns instead of hanging.
 * @param home Where the client lives.
 * @param heartbeatMs The heartbeat the relay announced on the lost connection.
 */
export function reconnectHome(home: Home, heartbeatMs: number): Home {
  const configured = home.options.timeoutMs ?? 10_000;
  const timeoutMs = Math.min(configured, Math.max(1000, 2 * heartbeatMs));
  return { ...home, options: { ...home.options, timeoutMs } };
}

/**
 * One relay address, or several relays of a cluster (docs/SCALING.md): a client connects to
 * the first that answers, and after losing a connection tries the one that last worked
 * first, then the others in order.
 */
export type RelayAddrs = Addr | string | readonly (Addr | string)[];

/** Where a producer or consumer that owns its connection (re)connects to. */
export interface Home {
  /** Relay address(es). */
  readonly addr: RelayAddrs;
  /** Connection options. */
  readonly options: ConnectOptions;
  /** Index of the address that worked last (shared by reconnect attempts). */
  readonly last?: { i: number };
}

/**
 * Makes the home of a client that owns its connection.
 * @throws {TypeError} for an empty address list.
 */
export function homeOf(addr: RelayAddrs, options: ConnectOptions): Home {
  if (Array.isArray(addr) && addr.length === 0) {
    throw new TypeError("no relay address given (an empty list)");
  }
  return { addr, options, last: { i: 0 } };
}

/**
 * Opens a connection for one producer or consumer, closing it again if joining fails. With
 * several addresses, an address that cannot be reached or refuses a transient reason
 * (`connect-failed`, `going-away`, a full relay, …) passes the turn to the next one.
 * @param home Relay address(es) and connection options.
 * @param open Joins on the new connection.
 * @returns What `open` returns.
 */
export async function withOwnConnection<R>(
  home: Home,
  open: (conn: RelayLink) => Promise<R>,
): Promise<R> {
  const list: readonly (Addr | string)[] = Array.isArray(home.addr)
    ? home.addr
    : [home.addr as Addr | string];
  const first = home.last?.i ?? 0;
  let error: unknown;
  for (let k = 0; k < list.length; k++) {
    const i = (first + k) % list.length;
    let conn: RelayLink;
    try {
      conn = await RelayLink.connect(list[i]!, home.options);
    } catch (e) {
      error = e;
      if (list.length > 1 && e instanceof RelayError && isTransient(e)) continue;
      throw e;
    }
    try {
      const r = await open(conn);
      if (home.last !== undefined) home.last.i = i;
      return r;
    } catch (e) {
      await conn.close();
      error = e;
      if (list.length > 1 && e instanceof RelayError && isTransient(e)) continue;
      throw e;
    }
  }
  throw error;
}
