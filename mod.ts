/**
 * @module
 * `@hydra/relay`: an end-to-end encrypted single-producer / multi-consumer relay for Deno,
 * Bun and Node. This entry exports the runtime-agnostic API and picks the native adapters of
 * the running runtime; `./deno`, `./bun` and `./node` export one runtime's adapters
 * explicitly.
 *
 * @example
 * ```ts
 * import { defaultTransport, nativeCrypto } from "./mod.ts";
 * const transport = defaultTransport();
 * const crypto = nativeCrypto();
 * console.log(transport.name, crypto.name);
 * ```
 */

export type {
  Addr,
  Conn,
  ConnOptions,
  ConnSink,
  Listener,
  TcpAddr,
  Transport,
  UnixAddr,
} from "./src/transport/types.ts";
export { DEFAULT_HIGH_WATER } from "./src/transport/types.ts";
export { defaultTransport } from "./src/transport/default.ts";
export { memoryTransport } from "./src/transport/memory.ts";
export { nodeTransport } from "./src/transport/node.ts";
export { denoTransport } from "./src/transport/deno.ts";
export { bunTransport } from "./src/transport/bun.ts";
export { websocketTransport } from "./src/transport/websocket.ts";
export type {
  WebSocketConstructor,
  WebSocketLike,
  WebSocketTransportOptions,
} from "./src/transport/websocket.ts";

export type { Aead, CryptoProvider, KeyPair, Signer } from "./src/crypto/types.ts";
export { NONCE_LENGTH, TAG_LENGTH } from "./src/crypto/types.ts";
export { nobleCrypto } from "./src/crypto/noble.ts";
export { createNativeCrypto, nativeCrypto } from "./src/crypto/native.ts";
export type { NativeCryptoOptions } from "./src/crypto/native.ts";

export { ErrorCode, RelayError } from "./src/errors.ts";
export { runtimeName } from "./src/runtime.ts";
export type { RuntimeName } from "./src/runtime.ts";
export {
  concat,
  equals,
  fromHex,
  readU32BE,
  readU64BE,
  timingSafeEqual,
  toHex,
  writeU32BE,
  writeU64BE,
} from "./src/bytes.ts";

export { RelayServer } from "./src/server/relay.ts";
export type { RelayStats } from "./src/server/relay.ts";
export type { ClusterOptions, ClusterStats } from "./src/server/cluster/options.ts";
export type { ConnRole } from "./src/server/context.ts";
export { formatMetrics, METRICS_CONTENT_TYPE } from "./src/server/metrics.ts";
export type { ProcessFigures } from "./src/server/metrics.ts";
export { DEFAULT_LIMITS, DEFAULT_PORT } from "./src/server/options.ts";
export type { RelayLimits, RelayOptions } from "./src/server/options.ts";
export type { LogLevel, LogSink } from "./src/server/log.ts";
export { RelayConnection } from "./src/client/connection.ts";
export type { RelayLink } from "./src/client/link.ts";
export type { ConnectOptions } from "./src/client/_handshake.ts";
export type { RelayAddrs } from "./src/client/_home.ts";
export type { Subscriber } from "./src/client/subscriber.ts";
export type { EventHandler } from "./src/client/_emitter.ts";
export type { ReconnectEvents, ReconnectOptions } from "./src/client/_reconnect.ts";
export type { Frame } from "./src/protocol/framer.ts";
export { Producer } from "./src/client/producer.ts";
export type { ProducerEvents, ProducerOptions } from "./src/client/producer.ts";
export { Consumer } from "./src/client/consumer.ts";
export type {
  ConsumerEvents,
  ConsumerOptions,
  StreamEvents,
  StreamInfo,
} from "./src/client/consumer.ts";
export { bytesCodec, jsonCodec, textCodec } from "./src/client/codec.ts";
export type { Codec } from "./src/client/codec.ts";
export { Session } from "./src/protocol/session.ts";
export { READ_TOKEN_PREFIX, ReadCapability } from "./src/protocol/capability.ts";
export type { ReaderKeys } from "./src/protocol/capability.ts";
export type { SessionKeys } from "./src/protocol/session.ts";
export { Role } from "./src/protocol/join.ts";
export { ControlKind, Policy } from "./src/protocol/control.ts";
export type {
  ControlMessage,
  JoinOptions,
  PolicyName,
  RelayHello,
  StreamStart,
} from "./src/protocol/control.ts";
export { parseAddr } from "./src/transport/addr.ts";

// `deno run -A jsr:@hydra/relay [command]` and `bun mod.ts [command]`: the CLI, serving by
// default. Nothing runs when this module is imported.
if ((import.meta as { main?: boolean }).main === true) {
  const { main } = await import("./src/cli/main.ts");
  const process = (await import("node:process")).default;
  process.exit(await main(process.argv.slice(2)));
}
