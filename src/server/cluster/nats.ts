/**
 * @module
 * The cluster's view of NATS: the small subset of nats.js v3 it uses — `@nats-io/transport-node`
 * (the connection; it runs on Node, Bun and Deno) and `@nats-io/kv` (the producer-slot bucket,
 * over `@nats-io/jetstream`) — described with local structural types (no runtime type package
 * in the core), and connecting with the slot bucket open. The packages are imported only here,
 * and only when a relay starts with `cluster`, so clients and browsers never load them.
 */

import { RelayError } from "../../errors.ts";
import type { ClusterOptions, ResolvedClusterOptions } from "./options.ts";

/** A message as nats.js delivers it. */
export interface NatsMsg {
  readonly subject: string;
  readonly data: Uint8Array;
}
/** A subscription. */
export interface NatsSub {
  unsubscribe(): void;
}
/** An entry of a key-value bucket. */
export interface KvEntry {
  readonly value: Uint8Array;
  readonly revision: number;
  readonly operation: string;
}
/** A JetStream key-value bucket. */
export interface Kv {
  create(k: string, v: Uint8Array): Promise<number>;
  update(k: string, v: Uint8Array, version: number): Promise<number>;
  get(k: string): Promise<KvEntry | null>;
  delete(k: string, opts?: { previousSeq?: number }): Promise<void>;
}
/** A connection to NATS. */
export interface NatsConnection {
  readonly info?: { readonly max_payload: number };
  publish(subject: string, data: Uint8Array): void;
  subscribe(subject: string, opts: { callback: (err: unknown, msg: NatsMsg) => void }): NatsSub;
  status(): AsyncIterable<{ type: string }>;
  close(): Promise<void>;
  isClosed(): boolean;
}
/** `@nats-io/transport-node` (loaded on demand). */
export interface NatsTransportModule {
  connect(opts: object): Promise<NatsConnection>;
}
/** `@nats-io/kv` (loaded on demand). */
export interface KvModule {
  Kvm: new (nc: NatsConnection) => { create(name: string, opts: object): Promise<Kv> };
}

/**
 * Opens (creating if needed) the slot bucket; relays starting together race to create it.
 * @param kvm The key-value manager of the connection.
 * @param name The bucket.
 * @param ttl How long an entry lives without a refresh (ms).
 * @returns The bucket.
 */
export async function openBucket(
  kvm: { create(name: string, opts: object): Promise<Kv> },
  name: string,
  ttl: number,
): Promise<Kv> {
  for (let attempt = 1;; attempt++) {
    try {
      return await kvm.create(name, { ttl, history: 1 });
    } catch (e) {
      if (attempt >= 5 || !/overlap|already in use|exists/i.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

/** Whether a key-value write failed a compare-and-set (the slot is taken). */
export function isWrongSeq(e: unknown): boolean {
  return /wrong last sequence|key exists/i.test(String((e as Error)?.message ?? e));
}

/**
 * Connects to NATS and opens the producer-slot bucket.
 * @param options The options as given (credentials).
 * @param o The options resolved.
 * @returns The connection and the bucket.
 * @throws {RelayError} `connect-failed` when NATS is unreachable or has no JetStream;
 *   `unsupported` when the nats.js packages are missing.
 */
export async function connectNats(
  options: ClusterOptions,
  o: ResolvedClusterOptions,
): Promise<{ nc: NatsConnection; kv: Kv }> {
  let transport: NatsTransportModule;
  let kvModule: KvModule;
  try {
    [transport, kvModule] = await Promise.all([
      import("@nats-io/transport-node") as Promise<unknown> as Promise<NatsTransportModule>,
      import("@nats-io/kv") as Promise<unknown> as Promise<KvModule>,
    ]);
  } catch (e) {
    throw new RelayError(
      "unsupported",
      `cluster mode needs the @nats-io/transport-node and @nats-io/kv packages: ${e}`,
    );
  }
  let nc: NatsConnection;
  try {
    nc = await transport.connect({
      servers: typeof options.servers === "string" ? [options.servers] : [...options.servers],
      name: "hydra-relay",
      noEcho: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 5000,
      ...(options.user === undefined ? {} : { user: options.user, pass: options.pass }),
      ...(options.token === undefined ? {} : { token: options.token }),
    });
  } catch (e) {
    throw new RelayError(
      "connect-failed",
      `cannot reach NATS at ${o.servers}: ${(e as Error).message}`,
    );
  }
  try {
    const kvm = new kvModule.Kvm(nc);
    return { nc, kv: await openBucket(kvm, `${o.prefix}_producers`, o.slotTtlMs) };
  } catch (e) {
    await nc.close().catch(() => {});
    throw new RelayError(
      "connect-failed",
      `NATS at ${o.servers} gave no key-value bucket for producer slots (JetStream needs ` +
        `nats-server -js): ${(e as Error).message}`,
    );
  }
}
