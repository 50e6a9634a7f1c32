/**
 * @module
 * The browser entry: producers and consumers over WebSockets, with WebCrypto (AES-GCM,
 * X25519, Ed25519 where the browser has them; @noble otherwise). No `node:` module is
 * imported, so this entry bundles for the web as is; the npm package also ships it bundled
 * (`dist/hydra-relay.browser.js`). A relay accepts browsers with `serve --ws HOST:PORT`.
 *
 * @example
 * ```ts ignore
 * import { Consumer, Session, textCodec, websocketTransport } from "@hydra/relay/browser";
 * const session = Session.fromToken(prompt("session token") ?? "");
 * const consumer = await Consumer.connect("relay.example:7448", session, {
 *   transport: websocketTransport({ secure: true }),
 *   codec: textCodec,
 * });
 * for await (const line of consumer) console.log(line);
 * ```
 */

export { Consumer } from "./client/consumer.ts";
export type {
  ConsumerEvents,
  ConsumerOptions,
  StreamEvents,
  StreamInfo,
} from "./client/consumer.ts";
export { Producer } from "./client/producer.ts";
export type { ProducerEvents, ProducerOptions } from "./client/producer.ts";
export { RelayConnection } from "./client/connection.ts";
export type { RelayLink } from "./client/link.ts";
export type { ConnectOptions } from "./client/_handshake.ts";
export type { RelayAddrs } from "./client/_home.ts";
export type { Subscriber } from "./client/subscriber.ts";
export type { EventHandler } from "./client/_emitter.ts";
export type { ReconnectEvents, ReconnectOptions } from "./client/_reconnect.ts";
export { bytesCodec, jsonCodec, textCodec } from "./client/codec.ts";
export type { Codec } from "./client/codec.ts";
export { Session } from "./protocol/session.ts";
export { READ_TOKEN_PREFIX, ReadCapability } from "./protocol/capability.ts";
export type { ReaderKeys } from "./protocol/capability.ts";
export type { SessionKeys } from "./protocol/session.ts";
export { ControlKind, Policy } from "./protocol/control.ts";
export type {
  ControlMessage,
  JoinOptions,
  PolicyName,
  RelayHello,
  StreamStart,
} from "./protocol/control.ts";
export type { Frame } from "./protocol/framer.ts";
export { Role } from "./protocol/join.ts";
export { createNativeCrypto, nativeCrypto } from "./crypto/native.ts";
export type { NativeCryptoOptions } from "./crypto/native.ts";
export { nobleCrypto } from "./crypto/noble.ts";
export type { Aead, CryptoProvider, KeyPair, Signer } from "./crypto/types.ts";
export { ErrorCode, RelayError } from "./errors.ts";
export { websocketTransport } from "./transport/websocket.ts";
export type {
  WebSocketConstructor,
  WebSocketLike,
  WebSocketTransportOptions,
} from "./transport/websocket.ts";
export type {
  Addr,
  Conn,
  ConnOptions,
  ConnSink,
  Listener,
  TcpAddr,
  Transport,
  UnixAddr,
} from "./transport/types.ts";
export { parseAddr } from "./transport/addr.ts";
export { fromHex, toHex } from "./bytes.ts";
