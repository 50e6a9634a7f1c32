/**
 * @module
 * `RelayConnection`: a client connection to a relay opened by hand, on which any number of
 * producers and consumers of different sessions join (docs/PROTOCOL.md §3, §6): one handshake
 * for a dashboard that follows 50 producers. The connection machinery is `RelayLink`
 * (link.ts); this adds opening producers and consumers on it, so that link.ts never imports
 * its own users.
 */

import type { ReadCapability } from "../protocol/capability.ts";
import type { Session } from "../protocol/session.ts";
import type { Addr } from "../transport/types.ts";
import { type ConnectOptions, handshake } from "./_handshake.ts";
import { Consumer, type ConsumerOptions } from "./consumer.ts";
import { RelayLink } from "./link.ts";
import { Producer, type ProducerOptions } from "./producer.ts";

/**
 * A connection to a relay that can carry several producers and consumers.
 *
 * @example
 * ```ts
 * import { RelayConnection } from "./connection.ts";
 * import { RelayServer } from "../server/relay.ts";
 * import { Session } from "../protocol/session.ts";
 * import { memoryTransport } from "../transport/memory.ts";
 * import { nobleCrypto } from "../crypto/noble.ts";
 * const transport = memoryTransport();
 * const relay = await RelayServer.listen({ transport, port: 0 });
 * const conn = await RelayConnection.connect(relay.addr, { transport, relayKey: relay.publicKey });
 * const session = Session.generate(nobleCrypto);
 * const consumer = await conn.consumer(session);
 * const producer = await conn.producer(session);
 * await producer.broadcast(new TextEncoder().encode("hi"));
 * console.log(await consumer.recv());
 * await conn.close();
 * await relay.close();
 * ```
 */
export class RelayConnection extends RelayLink {
  /**
   * Connects and completes the handshake.
   * @param addr Relay address (`Addr`, `"host:port"` or `"unix:/path"`).
   * @param options Transport, crypto, relay key pin, timeouts.
   * @returns The open connection.
   * @throws {RelayError} `connect-failed`, `relay-key-mismatch`, `auth-failed`, `timeout`,
   *   `limit-exceeded` (relay full), `unsupported` (version).
   */
  static override async connect(
    addr: Addr | string,
    options: ConnectOptions = {},
  ): Promise<RelayConnection> {
    return new RelayConnection(await handshake(addr, options), options);
  }

  /**
   * Joins a session as producer on this connection (see {@link Producer}).
   * @param session The session.
   * @param options Producer options.
   * @returns The producer; closing it leaves the session but keeps the connection.
   */
  producer<T = Uint8Array>(
    session: Session,
    options: ProducerOptions<T> = {},
  ): Promise<Producer<T>> {
    return Producer.open(this, session, options, undefined);
  }

  /**
   * Joins a session as consumer on this connection (see {@link Consumer}).
   * @param capability The session or a read capability.
   * @param options Consumer options.
   * @returns The consumer; closing it leaves the session but keeps the connection.
   */
  consumer<T = Uint8Array>(
    capability: Session | ReadCapability,
    options: ConsumerOptions<T> = {},
  ): Promise<Consumer<T>> {
    return Consumer.open(this, capability, options, undefined);
  }
}
