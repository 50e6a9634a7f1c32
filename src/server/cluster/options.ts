/**
 * @module
 * How a relay joins a cluster (docs/SCALING.md): the options of `serve --cluster` /
 * `RelayServer.listen({ cluster })`, their defaults and checks, and the counters a cluster
 * adds to the relay's stats. Kept apart from the cluster itself so the relay's options need
 * not import the cluster's machinery.
 */

/** How a relay joins a cluster. */
export interface ClusterOptions {
  /** NATS server URL(s), e.g. `"nats://127.0.0.1:4222"`. The server needs JetStream (`-js`). */
  readonly servers: string | readonly string[];
  /** Subject prefix and key-value bucket stem, shared by the cluster. Default `"hydra"`. */
  readonly prefix?: string;
  /** A producer slot not refreshed for this long expires (ms). Default 5,000. */
  readonly slotTtlMs?: number;
  /** Interval of the origin's beats; an origin silent for 3 beats counts as lost (ms).
   * Default 1,000. */
  readonly beatMs?: number;
  /** NATS credentials, when the server asks for them. */
  readonly user?: string;
  /** NATS password. */
  readonly pass?: string;
  /** NATS token. */
  readonly token?: string;
}

/** {@link ClusterOptions} with defaults applied (credentials left out). */
export type ResolvedClusterOptions = Required<Omit<ClusterOptions, "user" | "pass" | "token">>;

/** Cluster counters, part of the relay's stats. */
export interface ClusterStats {
  /** Connected to NATS now. */
  readonly connected: boolean;
  /** Producer slots this relay holds. */
  readonly slots: number;
  /** Messages published (frame runs, starts, departures, beats). */
  readonly published: number;
  /** Messages received for mirrored sessions. */
  readonly received: number;
  /** Messages not published because NATS was unreachable or a frame exceeds its max payload. */
  readonly unpublished: number;
  /** Messages received that could not be used (malformed, unverifiable start). */
  readonly rejected: number;
  /** Producer joins refused because another relay holds the slot (or slots lost to one). */
  readonly slotConflicts: number;
  /** Gaps in mirrored streams (frames that never arrived), each told to consumers as LAGGED. */
  readonly gaps: number;
  /** Other relays whose blocking consumers hold back producers on this relay now. */
  readonly holding: number;
  /** Relays that stopped holding because they went silent (died, or NATS lost them). */
  readonly holdsExpired: number;
}

/**
 * Checks and completes cluster options.
 * @throws {RangeError} for a bad value.
 */
export function resolveClusterOptions(o: ClusterOptions): ResolvedClusterOptions {
  const servers = typeof o.servers === "string" ? [o.servers] : o.servers;
  if (!Array.isArray(servers) || servers.length === 0 || servers.some((s) => !s)) {
    throw new RangeError(`"cluster.servers" needs at least one NATS URL (nats://host:4222)`);
  }
  const prefix = o.prefix ?? "hydra";
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) {
    throw new RangeError(`"cluster.prefix" must be 1-32 letters, digits, "_" or "-"`);
  }
  const slotTtlMs = o.slotTtlMs ?? 5000;
  const beatMs = o.beatMs ?? 1000;
  if (!Number.isInteger(slotTtlMs) || slotTtlMs < 1000) {
    throw new RangeError(`"cluster.slotTtlMs" must be an integer ≥ 1000`);
  }
  if (!Number.isInteger(beatMs) || beatMs < 10 || beatMs > 60_000) {
    throw new RangeError(`"cluster.beatMs" must be an integer between 10 and 60000`);
  }
  return { servers: [...servers], prefix, slotTtlMs, beatMs };
}
