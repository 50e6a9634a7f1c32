/**
 * The relay side of scripts/bench/relay.ts, run under the runtime being measured (Node runs
 * the compiled copy in npm/scripts/bench/):
 *
 *   relay_server minimal   the ceiling: a minimal relay on the bare runtime API. The first
 *                          byte of a connection says what it is (`P` producer, `C` consumer);
 *                          every chunk the producer sends is written unchanged to every
 *                          consumer, and hydra/1 frame boundaries are tracked (not checked).
 *                          The producer is paused while any consumer is over 1 MiB behind.
 *   relay_server hydra [maxConnections] [maxHandshakesPerSecond]
 *                          our relay (`RelayServer` with the runtime's default transport and
 *                          native crypto), as `hydra-relay serve` would run it; `-` or no
 *                          value keeps an option's default.
 *
 * Both listen on 127.0.0.1:0, print `{"port": …, "pid": …}` on stdout and run until stdin
 * closes.
 */

import * as net from "node:net";
import { RelayServer } from "../../src/server/relay.ts";
import { FrameCounter } from "./_records.ts";

const HOST = "127.0.0.1";
const HIGH = 1 << 20;
// deno-lint-ignore no-explicit-any
const G = globalThis as any;

function ready(port: number): void {
  G.process.stdout.write(JSON.stringify({ port, pid: G.process.pid }) + "\n");
}

// ---- the minimal relay on node:net (Node) ----
function minimalNode(): void {
  const consumers = new Set<net.Socket>();
  const blocked = new Set<net.Socket>();
  let producer: net.Socket | undefined;
  const frames = new FrameCounter();
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    s.on("error", () => {});
    s.once("data", (first: Uint8Array) => {
      if (first[0] === 0x43) {
        consumers.add(s);
        s.on("drain", () => {
          if (blocked.delete(s) && blocked.size === 0) producer?.resume();
        });
        s.on("close", () => {
          consumers.delete(s);
          if (blocked.delete(s) && blocked.size === 0) producer?.resume();
        });
        return;
      }
      producer = s;
      const forward = (c: Uint8Array) => {
        frames.push(c);
        for (const x of consumers) {
          x.write(c);
          if (x.writableLength > HIGH && !blocked.has(x)) {
            blocked.add(x);
            s.pause();
          }
        }
      };
      if (first.length > 1) forward(first.subarray(1));
      s.on("data", forward);
    });
  });
  server.listen(0, HOST, () => ready((server.address() as net.AddressInfo).port));
}

// ---- the minimal relay on Bun.listen (Bun) ----
interface BunSock {
  write(b: Uint8Array): number;
  data: { role: number; queue: Uint8Array[]; queued: number };
  pause(): void;
  resume(): void;
}
function minimalBun(): void {
  const consumers = new Set<BunSock>();
  let producer: BunSock | undefined;
  const frames = new FrameCounter();
  let blocked = 0;
  const flush = (s: BunSock): void => {
    const d = s.data;
    while (d.queue.length > 0) {
      const c = d.queue[0]!;
      const n = s.write(c);
      if (n < c.length) {
        d.queue[0] = c.subarray(Math.max(n, 0));
        d.queued -= Math.max(n, 0);
        return;
      }
      d.queue.shift();
      d.queued -= c.length;
    }
  };
  const send = (s: BunSock, c: Uint8Array): void => {
    const d = s.data;
    if (d.queue.length === 0) {
      const n = s.write(c);
      if (n === c.length) return;
      c = c.subarray(Math.max(n, 0));
    }
    d.queue.push(c);
    d.queued += c.length;
    if (d.queued > HIGH && d.role !== 2) {
      d.role = 2; // marked blocked
      if (blocked++ === 0) producer?.pause();
    }
  };
  const forward = (c: Uint8Array): void => {
    frames.push(c);
    for (const x of consumers) send(x, c);
  };
  const server = G.Bun.listen({
    hostname: HOST,
    port: 0,
    socket: {
      open(s: BunSock) {
        s.data = { role: 0, queue: [], queued: 0 };
      },
      data(s: BunSock, d: Uint8Array) {
        if (s.data.role === 0) {
          if (d[0] === 0x43) {
            s.data.role = 1;
            consumers.add(s);
            return;
          }
          s.data.role = 3;
          producer = s;
          if (d.length > 1) forward(d.subarray(1));
          return;
        }
        if (s.data.role === 3) forward(d);
      },
      drain(s: BunSock) {
        flush(s);
        if (s.data.role === 2 && s.data.queued <= HIGH) {
          s.data.role = 1;
          if (--blocked === 0) producer?.resume();
        }
      },
      close(s: BunSock) {
        consumers.delete(s);
      },
      error() {},
    },
  });
  ready(server.port);
}

// ---- the minimal relay on Deno.listen (Deno) ----
async function minimalDeno(): Promise<void> {
  const listener = G.Deno.listen({ hostname: HOST, port: 0 });
  ready(listener.addr.port);
  const consumers = new Set<
    { conn: { write(b: Uint8Array): Promise<number> }; tail: Promise<void> }
  >();
  const frames = new FrameCounter();
  const writeAll = async (conn: { write(b: Uint8Array): Promise<number> }, c: Uint8Array) => {
    for (let off = 0; off < c.length;) off += await conn.write(c.subarray(off));
  };
  for await (const conn of listener) {
    conn.setNoDelay(true);
    (async () => {
      const first = new Uint8Array(1);
      if ((await conn.read(first)) === null) return;
      if (first[0] === 0x43) {
        consumers.add({ conn, tail: Promise.resolve() });
        return;
      }
      // The producer: a fresh 64 KiB buffer per read (each chunk is written to many sockets);
      // the next read waits while any consumer has more than one chunk in flight.
      while (true) {
        const buf = new Uint8Array(64 * 1024);
        const n = await conn.read(buf);
        if (n === null) return;
        const c = buf.subarray(0, n);
        frames.push(c);
        const waits: Promise<void>[] = [];
        for (const x of consumers) {
          const prev = x.tail;
          x.tail = prev.then(() => writeAll(x.conn, c)).catch(() => {
            consumers.delete(x);
          });
          waits.push(prev);
        }
        await Promise.all(waits);
      }
    })();
  }
}

/**
 * Our relay; `maxConnections` raised for the scale test (T7: 10,000 consumers + producer),
 * `maxHandshakesPerSecond` 0 where a benchmark measures how fast joins can go.
 */
async function hydra(maxConnections?: number, maxHandshakesPerSecond?: number): Promise<void> {
  const relay = await RelayServer.listen({
    hostname: HOST,
    port: 0,
    logLevel: "warn",
    ...(maxConnections === undefined ? {} : { maxConnections }),
    ...(maxHandshakesPerSecond === undefined ? {} : { maxHandshakesPerSecond }),
  });
  ready((relay.addr as { port: number }).port);
  G.process.stdin.on("end", () => relay.close().then(() => G.process.exit(0)));
}

const [role, limit, handshakes] = G.process.argv.slice(2);
const option = (v: string | undefined) => v === undefined || v === "-" ? undefined : Number(v);
// A line "gc" on stdin runs a full garbage collection (Bun always; Deno and Node are started
// with --expose-gc by the orchestrator) and answers `gc-done {"live": heapUsed + external, …}`
// with the rest of `process.memoryUsage()` beside it,
// so memory figures can tell what the relay holds from what the allocator keeps.
G.process.stdin.on("data", (b: Uint8Array) => {
  if (!new TextDecoder().decode(b).includes("gc")) return;
  if (G.Bun !== undefined) G.Bun.gc(true);
  else G.gc?.();
  const m = G.process.memoryUsage();
  const live = m.heapUsed + m.external;
  G.process.stdout.write(`gc-done ${JSON.stringify({ live, ...m })}\n`);
});
G.process.stdin.resume();
if (role === "hydra") {
  await hydra(option(limit), option(handshakes));
} else {
  G.process.stdin.on("end", () => G.process.exit(0));
  if (G.Deno !== undefined) await minimalDeno();
  else if (G.Bun !== undefined) minimalBun();
  else minimalNode();
}
