/**
 * @module
 * End-to-end fixtures: relays on every transport and address kind, a tapping transport that
 * watches the relay's traffic for plaintext, and cheap deterministic message payloads.
 */

import { Buffer } from "node:buffer";
import { ControlKind } from "../../src/protocol/control.ts";
import { Role } from "../../src/protocol/join.ts";
import type { Outbound, Tamper } from "../../src/server/_tamper.ts";
import { RelayServer } from "../../src/server/relay.ts";
import type { RelayOptions } from "../../src/server/options.ts";
import type { Addr, Conn, Listener, Transport } from "../../src/transport/types.ts";
import { PullReader } from "../../src/transport/_queues.ts";
import { addrKinds, availableTransports } from "../_helpers.ts";

/** One transport × address kind combination. */
export interface Setup {
  readonly name: string;
  readonly transport: Transport;
  readonly addr: () => Addr;
}

/** Every transport available here × TCP and Unix sockets. */
export function setups(): Setup[] {
  return availableTransports().flatMap((transport) =>
    addrKinds().map((k) => ({ name: `${transport.name}/${k.name}`, transport, addr: k.make }))
  );
}

/**
 * The in-memory transport and this runtime's own TCP adapter: enough for tests whose subject
 * is bytes and protocol, not sockets (the attack suites).
 */
export function memoryAndNativeTcp(): [Setup, Setup] {
  const tcp = setups().filter((s) => s.name.endsWith("/tcp"));
  return [tcp[0]!, tcp[tcp.length - 1]!];
}

/** Starts a quiet relay on a setup. */
export function relayOn(setup: Setup, options: RelayOptions = {}): Promise<RelayServer> {
  return RelayServer.listen({
    transport: setup.transport,
    addr: setup.addr(),
    logLevel: "off",
    ...options,
  });
}

/**
 * Wraps a transport so every chunk the relay reads or writes is shown to `see` (with its
 * direction and the relay-side connection), without copying.
 */
export function tapTransport(
  inner: Transport,
  see: (chunk: Uint8Array, direction: "in" | "out", conn: Conn) => void,
): Transport {
  const wrap = (conn: Conn): Conn => ({
    get localAddr() {
      return conn.localAddr;
    },
    get remoteAddr() {
      return conn.remoteAddr;
    },
    get writableLength() {
      return conn.writableLength;
    },
    get closed() {
      return conn.closed;
    },
    async read() {
      const c = await conn.read();
      if (c !== null) see(c, "in", conn);
      return c;
    },
    startReading(sink) {
      conn.startReading({
        onData(c) {
          see(c, "in", conn);
          sink.onData(c);
        },
        onEnd: (e) => sink.onEnd(e),
      });
    },
    pauseReading: () => conn.pauseReading(),
    resumeReading: () => conn.resumeReading(),
    write(data) {
      see(data, "out", conn);
      return conn.write(data);
    },
    closeWrite: () => conn.closeWrite(),
    close: () => conn.close(),
    setNoDelay: (b) => conn.setNoDelay(b),
  });
  return {
    name: `tap(${inner.name})`,
    async listen(addr, options) {
      const l = await inner.listen(addr, options);
      const listener: Listener = {
        get addr() {
          return l.addr;
        },
        async accept() {
          const c = await l.accept();
          return c === null ? null : wrap(c);
        },
        pause: () => l.pause(),
        resume: () => l.resume(),
        get turnedAway() {
          return l.turnedAway;
        },
        close: () => l.close(),
        async *[Symbol.asyncIterator]() {
          for (let c = await listener.accept(); c !== null; c = await listener.accept()) yield c;
        },
      };
      return listener;
    },
    connect: (addr, options) => inner.connect(addr, options),
  };
}

/** Counts occurrences of `needle` across a stream of chunks (handles splits). */
export class Finder {
  #tail: Uint8Array = new Uint8Array(0);
  /** Matches seen. */
  hits = 0;
  /** Bytes scanned. */
  scanned = 0;
  readonly #needle: Buffer;

  constructor(needle: Uint8Array) {
    this.#needle = Buffer.from(needle);
  }

  push(chunk: Uint8Array): void {
    this.scanned += chunk.length;
    const joined = Buffer.concat([this.#tail, chunk]);
    for (let i = joined.indexOf(this.#needle); i >= 0; i = joined.indexOf(this.#needle, i + 1)) {
      this.hits++;
    }
    this.#tail = joined.subarray(Math.max(0, joined.length - this.#needle.length + 1));
  }
}

/**
 * A pool of random bytes with `marker` planted every 4 KiB: messages are views into it, so
 * thousands of large messages cost no memory, and most of them carry the marker.
 */
export function payloadPool(marker: Uint8Array, size: number = 1 << 20): Uint8Array {
  const pool = new Uint8Array(size + 256 * 1024);
  for (let off = 0; off < pool.length; off += 65536) {
    globalThis.crypto.getRandomValues(pool.subarray(off, Math.min(off + 65536, pool.length)));
  }
  for (let off = 0; off + marker.length <= pool.length; off += 4096) pool.set(marker, off);
  return pool;
}

/** Byte equality via the native comparison. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/** A deterministic PRNG (mulberry32) so failures reproduce from the printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A client transport whose open connections can be cut at once, as a network failure would. */
export function killableTransport(inner: Transport): Transport & { kill(): number } {
  const open = new Set<Conn>();
  return {
    name: `killable(${inner.name})`,
    listen: (addr, options) => inner.listen(addr, options),
    async connect(addr, options) {
      const conn = await inner.connect(addr, options);
      open.add(conn);
      conn.closed.then(() => open.delete(conn));
      return conn;
    },
    kill() {
      const n = open.size;
      for (const c of open) c.close();
      open.clear();
      return n;
    },
  };
}

/**
 * A client transport whose open connections can be turned into black holes, as a pulled
 * cable or a vanished host would: nothing more arrives, writes vanish, no FIN, no RST.
 * Connections opened after `freeze()` work normally.
 */
export function freezableTransport(
  inner: Transport,
): Transport & { freeze(): number; release(): void } {
  const open = new Set<{ freeze(): void }>();
  const wrap = (conn: Conn): Conn & { freeze(): void } => {
    let frozen = false;
    let reader: PullReader | undefined;
    let unblock: (() => void) | undefined;
    const hang = new Promise<null>((r) => (unblock = () => r(null)));
    const closed = Promise.race([conn.closed, hang.then(() => {})]);
    return {
      get localAddr() {
        return conn.localAddr;
      },
      get remoteAddr() {
        return conn.remoteAddr;
      },
      get writableLength() {
        return frozen ? 0 : conn.writableLength;
      },
      get closed() {
        return closed;
      },
      async read() {
        while (true) {
          if (frozen) return await hang;
          const c = await Promise.race([conn.read(), hang]);
          if (!frozen) return c;
        }
      },
      startReading(sink) {
        reader = new PullReader(this, sink);
      },
      pauseReading: () => reader?.pause(),
      resumeReading: () => reader?.resume(),
      write: (data) => frozen ? Promise.resolve() : conn.write(data),
      closeWrite: () => frozen ? Promise.resolve() : conn.closeWrite(),
      close() {
        unblock?.();
        // The peer must not learn of it either: the real socket stays open until the test
        // ends it (closing it would send a FIN).
        if (!frozen) conn.close();
      },
      setNoDelay: (b) => conn.setNoDelay(b),
      freeze() {
        frozen = true;
      },
    };
  };
  const held: Conn[] = [];
  return {
    name: `freezable(${inner.name})`,
    listen: (addr, options) => inner.listen(addr, options),
    async connect(addr, options) {
      const raw = await inner.connect(addr, options);
      held.push(raw);
      const conn = wrap(raw);
      open.add(conn);
      return conn;
    },
    freeze() {
      const n = open.size;
      for (const c of open) c.freeze();
      open.clear();
      return n;
    },
    /** Closes the real sockets behind frozen connections (end of test). */
    release() {
      for (const c of held) c.close();
    },
  };
}

/**
 * The attack on consumer connections only: `attack(out)` sees every frame the relay sends
 * to a connection that joined as a consumer and returns what is sent instead.
 */
export function onConsumers(attack: (out: Outbound, conn: number) => Outbound[]): Tamper {
  const consumers = new Set<number>();
  return (conn, out) => {
    if (
      out.kind === "control" && out.message.kind === ControlKind.Joined &&
      out.message.role === Role.Consumer
    ) {
      consumers.add(conn);
      return [out];
    }
    return consumers.has(conn) ? attack(out, conn) : [out];
  };
}
