/**
 * @module
 * The relay's counters in the Prometheus text exposition format (version 0.0.4), so any
 * HTTP server can expose them: `hydra-relay serve --metrics host:port` does, and a program
 * embedding {@link RelayServer} can serve `formatMetrics(relay.stats())` from its own. Pure:
 * no runtime API, no I/O.
 */

import type { ConnRole } from "./context.ts";
import type { RelayStats } from "./relay.ts";

/** The content type of {@link formatMetrics}' output. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Figures about the process the relay runs in, added by whoever serves the metrics. */
export interface ProcessFigures {
  /** Resident set size in bytes. */
  readonly residentBytes?: number;
  /** JavaScript heap in use, in bytes. */
  readonly heapBytes?: number;
  /** Unix time the process started, in seconds. */
  readonly startTimeSeconds?: number;
}

const ROLES: readonly ConnRole[] = ["handshake", "producer", "consumer", "unjoined"];
/** Label values always present (at 0 until they happen), so dashboards and alerts can
 * refer to them before the first occurrence. */
const HANDSHAKE_KINDS = ["timeout", "protocol-error", "auth-failed", "unsupported"];
const JOIN_KINDS = ["auth-failed", "producer-exists", "limit-exceeded", "protocol-error"];
const CLOSE_REASONS = [
  "normal",
  "refused",
  "timeout",
  "slow-consumer",
  "protocol-error",
  "auth-failed",
  "going-away",
];

/**
 * Renders a stats snapshot as Prometheus text: every metric with `# HELP` and `# TYPE`,
 * counters named `…_total`, sizes in bytes and times in seconds.
 *
 * @param stats A snapshot from {@link RelayServer.stats}.
 * @param figures Optional process figures (`process_resident_memory_bytes`, …).
 * @returns The exposition text, ending in a newline.
 * @example
 * ```ts
 * import { formatMetrics } from "./metrics.ts";
 * import { RelayServer } from "./relay.ts";
 * import { memoryTransport } from "../transport/memory.ts";
 * const relay = await RelayServer.listen({ transport: memoryTransport(), port: 0 });
 * const text = formatMetrics(relay.stats());
 * console.log(text.includes("hydra_connections{role=\"producer\"} 0")); // true
 * await relay.close();
 * ```
 */
export function formatMetrics(stats: RelayStats, figures: ProcessFigures = {}): string {
  const out: string[] = [];
  const metric = (
    name: string,
    type: "gauge" | "counter",
    help: string,
    samples: readonly (readonly [Record<string, string>, number])[],
  ) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) out.push(`${name}${formatLabels(labels)} ${num(value)}`);
  };
  const one = (name: string, type: "gauge" | "counter", help: string, value: number) =>
    metric(name, type, help, [[{}, value]]);
  const byKind = (
    name: string,
    help: string,
    label: string,
    known: readonly string[],
    counts: Readonly<Record<string, number>>,
  ) => {
    const keys = [...new Set([...known, ...Object.keys(counts)])].sort();
    metric(name, "counter", help, keys.map((k) => [{ [label]: k }, counts[k] ?? 0] as const));
  };

  one(
    "hydra_uptime_seconds",
    "gauge",
    "Seconds since the relay started listening.",
    stats.uptimeSeconds,
  );
  one(
    "hydra_draining",
    "gauge",
    "1 while the relay shuts down and drains, else 0.",
    stats.draining ? 1 : 0,
  );
  metric(
    "hydra_connections",
    "gauge",
    "Open connections by role (handshake, producer, consumer, unjoined).",
    ROLES.map((r) => [{ role: r }, stats.connectionsByRole[r]] as const),
  );
  one("hydra_sessions", "gauge", "Live sessions.", stats.sessions);
  one("hydra_producers", "gauge", "Sessions with a producer.", stats.producers);
  one("hydra_consumers", "gauge", "Joined consumers over all sessions.", stats.consumers);
  one(
    "hydra_received_frames_total",
    "counter",
    "Data frames accepted from producers.",
    stats.framesIn,
  );
  one("hydra_received_bytes_total", "counter", "Bytes read from all connections.", stats.bytesIn);
  one(
    "hydra_sent_frames_total",
    "counter",
    "Data frames written to consumers, each consumer counted.",
    stats.framesOut,
  );
  one("hydra_sent_bytes_total", "counter", "Data bytes written to consumers.", stats.bytesOut);
  one(
    "hydra_lagged_total",
    "counter",
    "Times a slow consumer was skipped ahead and told the gap (policy drop).",
    stats.lagged,
  );
  one(
    "hydra_slow_disconnects_total",
    "counter",
    "Consumers disconnected for falling a ring behind (policy disconnect).",
    stats.slowDisconnects,
  );
  byKind(
    "hydra_disconnects_total",
    "Closed connections by reason (normal: the client left).",
    "reason",
    CLOSE_REASONS,
    stats.closesByReason,
  );
  one(
    "hydra_connections_refused_total",
    "counter",
    "Connections refused at the connection limit.",
    stats.refused,
  );
  one(
    "hydra_connections_throttled_total",
    "counter",
    "New connections turned away unanswered over maxHandshakesPerSecond.",
    stats.throttled,
  );
  byKind(
    "hydra_handshake_failures_total",
    "Failed or timed-out handshakes by kind.",
    "kind",
    HANDSHAKE_KINDS,
    stats.handshakeFailuresByKind,
  );
  byKind(
    "hydra_join_failures_total",
    "Refused joins by kind.",
    "kind",
    JOIN_KINDS,
    stats.joinFailuresByKind,
  );
  one(
    "hydra_protocol_errors_total",
    "counter",
    "Connections closed for protocol violations.",
    stats.protocolErrors,
  );
  one("hydra_ring_frames", "gauge", "Frames held in all session rings.", stats.ringFrames);
  one("hydra_ring_bytes", "gauge", "Bytes held in all session rings.", stats.ringBytes);
  if (Number.isFinite(stats.ringBudgetBytes)) {
    one(
      "hydra_ring_budget_bytes",
      "gauge",
      "Budget for the bytes of all rings together.",
      stats.ringBudgetBytes,
    );
  }
  const cl = stats.cluster;
  if (cl !== undefined) {
    one(
      "hydra_cluster_connected",
      "gauge",
      "1 while connected to NATS, else 0.",
      cl.connected ? 1 : 0,
    );
    one(
      "hydra_cluster_slots",
      "gauge",
      "Producer slots this relay holds in the cluster.",
      cl.slots,
    );
    one(
      "hydra_cluster_published_total",
      "counter",
      "Messages published to the cluster (frame runs, stream starts, departures, beats).",
      cl.published,
    );
    one(
      "hydra_cluster_unpublished_total",
      "counter",
      "Messages not published: NATS unreachable, or a frame over its max payload.",
      cl.unpublished,
    );
    one(
      "hydra_cluster_received_total",
      "counter",
      "Messages received from the cluster for mirrored sessions.",
      cl.received,
    );
    one(
      "hydra_cluster_rejected_total",
      "counter",
      "Messages from the cluster that were malformed or failed the signature check.",
      cl.rejected,
    );
    one(
      "hydra_cluster_slot_conflicts_total",
      "counter",
      "Producer joins refused (or slots lost) because another relay holds the slot.",
      cl.slotConflicts,
    );
    one(
      "hydra_cluster_holding",
      "gauge",
      "Other relays whose blocking consumers hold back producers on this relay.",
      cl.holding,
    );
    one(
      "hydra_cluster_holds_expired_total",
      "counter",
      "Relays that stopped holding back a producer here because they went silent.",
      cl.holdsExpired,
    );
    one(
      "hydra_cluster_gaps_total",
      "counter",
      "Gaps in mirrored streams: frames that never arrived from the cluster.",
      cl.gaps,
    );
  }
  if (figures.residentBytes !== undefined) {
    one(
      "process_resident_memory_bytes",
      "gauge",
      "Resident memory size in bytes.",
      figures.residentBytes,
    );
  }
  if (figures.heapBytes !== undefined) {
    one("hydra_heap_bytes", "gauge", "JavaScript heap in use, in bytes.", figures.heapBytes);
  }
  if (figures.startTimeSeconds !== undefined) {
    one(
      "process_start_time_seconds",
      "gauge",
      "Start time of the process since unix epoch in seconds.",
      figures.startTimeSeconds,
    );
  }
  return out.join("\n") + "\n";
}

function formatLabels(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) =>
    `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`
  );
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function num(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}
