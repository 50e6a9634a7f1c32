/**
 * @module
 * The client's side of opening a relay connection (docs/PROTOCOL.md §3): connect the
 * transport, run Noise NX as initiator, check a pinned relay key before anything else is sent,
 * and read the relay's hello. The pure handshake is protocol/noise.ts; this is its driver.
 */

import { abytes, equals, fromHex, toHex } from "../bytes.ts";
import { nativeCrypto } from "../crypto/native.ts";
import type { CryptoProvider } from "../crypto/types.ts";
import { RelayError } from "../errors.ts";
import {
  decodeHello,
  PROLOGUE,
  PROTOCOL_VERSION,
  type RelayHello,
  WireError,
} from "../protocol/control.ts";
import { encodeFrame, type Frame, FrameDecoder, FrameType } from "../protocol/framer.ts";
import { type CipherState, MAX_NOISE_MESSAGE, NoiseHandshake } from "../protocol/noise.ts";
import { parseAddr } from "../transport/addr.ts";
import { defaultTransport } from "../transport/default.ts";
import type { Addr, Conn, Transport } from "../transport/types.ts";

/** Options of `RelayConnection.connect`. */
export interface ConnectOptions {
  /** Socket adapter. Default: the running runtime's native one. */
  readonly transport?: Transport;
  /** Crypto adapter. Default: `nativeCrypto()`. */
  readonly crypto?: CryptoProvider;
  /**
   * The relay's expected static public key (32 bytes or 64 hex digits). On mismatch the
   * connection is refused with `relay-key-mismatch` before anything else is sent.
   */
  readonly relayKey?: Uint8Array | string;
  /** Deadline for connecting, the handshake and each join (ms). Default 10,000. */
  readonly timeoutMs?: number;
  /** Bytes of received, undelivered data held before reading pauses. Default 4 MiB. */
  readonly maxBuffered?: number;
}

/** A connection whose handshake is complete, ready to carry subscriptions. */
export interface Handshaken {
  readonly conn: Conn;
  readonly send: CipherState;
  readonly recv: CipherState;
  /** The Noise handshake hash: join proofs are bound to it. */
  readonly hash: Uint8Array;
  /** The relay's static public key, as proven in the handshake. */
  readonly relayKey: Uint8Array;
  readonly hello: RelayHello;
  readonly crypto: CryptoProvider;
  /** Frames that arrived with the relay's handshake message. */
  readonly pending: Frame[];
}

/**
 * Connects and completes the handshake.
 * @param addr Relay address (`Addr`, `"host:port"` or `"unix:/path"`).
 * @param options Transport, crypto, relay key pin, timeouts.
 * @returns The connection with its transport ciphers.
 * @throws {RelayError} `connect-failed`, `relay-key-mismatch`, `auth-failed`, `timeout`,
 *   `limit-exceeded` (relay full), `unsupported` (version).
 */
export async function handshake(
  addr: Addr | string,
  options: ConnectOptions,
): Promise<Handshaken> {
  const crypto = options.crypto ?? nativeCrypto();
  const transport = options.transport ?? defaultTransport();
  const pin = options.relayKey === undefined ? undefined : relayKeyBytes(options.relayKey);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const target = parseAddr(addr);
  let conn: Conn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      conn?.close();
      reject(new RelayError("timeout", `no handshake with the relay within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([
      deadline,
      (async () => {
        conn = await transport.connect(target);
        conn.setNoDelay(true);
        const noise = new NoiseHandshake(crypto, {
          pattern: "NX",
          initiator: true,
          prologue: PROLOGUE,
        });
        const m1 = await noise.writeMessage(new Uint8Array([PROTOCOL_VERSION]));
        await conn.write(encodeFrame(FrameType.Handshake, m1));
        const decoder = new FrameDecoder(MAX_NOISE_MESSAGE);
        const frames: Frame[] = [];
        while (frames.length === 0) {
          // Closed (or reset: the relay closed it with our first message unread) before any
          // answer: what a relay over its handshake rate does to new connections.
          const chunk = await conn.read().catch((e: unknown) => {
            if (e instanceof RelayError && e.code === "connection-lost") return null;
            throw e;
          });
          if (chunk === null) {
            throw new RelayError(
              "connection-lost",
              "the relay closed the connection during the handshake (a relay over its " +
                "maxHandshakesPerSecond turns new connections away: try again shortly)",
            );
          }
          frames.push(...decoder.push(chunk));
        }
        const first = frames.shift()!;
        if (first.type !== FrameType.Handshake) {
          throw new RelayError("protocol-error", "expected the relay's handshake message");
        }
        const payload = await noise.readMessage(first.body);
        const { send, recv, handshakeHash, remoteStaticKey } = await noise.result();
        if (pin !== undefined && !equals(pin, remoteStaticKey!)) {
          throw new RelayError(
            "relay-key-mismatch",
            `relay key ${toHex(remoteStaticKey!)} is not the pinned ${toHex(pin)}`,
          );
        }
        const hello = decodeHello(payload);
        if (hello.status !== 0) {
          const code = WireError[hello.status] ?? "protocol-error";
          throw new RelayError(code, `relay refused the connection: ${hello.message}`);
        }
        if (hello.version !== PROTOCOL_VERSION) {
          throw new RelayError("unsupported", `relay speaks version ${hello.version}`);
        }
        return {
          conn,
          send,
          recv,
          hash: handshakeHash,
          relayKey: remoteStaticKey!,
          hello,
          crypto,
          pending: frames,
        };
      })(),
    ]);
  } catch (e) {
    conn?.close();
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Normalizes a pinned relay key.
 * @param k 32 bytes or 64 hex digits.
 * @returns 32 bytes.
 * @throws {TypeError} otherwise.
 * @example
 * ```ts
 * import { relayKeyBytes } from "./_handshake.ts";
 * relayKeyBytes("00".repeat(32)).length; // 32
 * ```
 */
export function relayKeyBytes(k: Uint8Array | string): Uint8Array {
  if (typeof k === "string") {
    let b: Uint8Array;
    try {
      b = fromHex(k.trim());
    } catch {
      throw new TypeError(`"relayKey" must be 64 hex digits`);
    }
    return abytes(b, 32, "relayKey");
  }
  return abytes(k, 32, "relayKey");
}
