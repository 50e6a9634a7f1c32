/**
 * One side of a loopback transfer, for scripts/bench/transport.ts. Runs under Deno, Bun or
 * Node (Node runs the compiled copy in npm/scripts/bench/).
 *
 *   transport_worker sink <impl> <bytes>          listen on 127.0.0.1:0, print the port, read
 *                                                 <bytes>, answer one byte, exit
 *   transport_worker source <impl> <port> <bytes> connect, write <bytes> in 64 KiB chunks,
 *                                                 wait for the answer, print {"ms": …}
 *
 * <impl> is `raw-<runtime>` (the bare runtime API in the tightest loop we know) or
 * `adapter-<runtime>` (our Transport adapter for that runtime). Each process first runs an
 * untimed 32 MiB transfer through both sides of <impl> in itself (warm-up).
 */

import { bunTransport } from "../../src/transport/bun.ts";
import { denoTransport } from "../../src/transport/deno.ts";
import { nodeTransport } from "../../src/transport/node.ts";
import type { Transport } from "../../src/transport/types.ts";
import * as net from "node:net";

const CHUNK = 64 * 1024;
const HOST = "127.0.0.1";
// deno-lint-ignore no-explicit-any
const G = globalThis as any;

/** Reports to the parent (the port, the result); process.stdout exists in all three runtimes. */
let say = (line: string): void => void G.process.stdout.write(line + "\n");

/** Bytes of the untimed in-process transfer that warms each side's code before the real one. */
const WARM_UP = 32 * 1024 * 1024;

// ---- our adapters ----
function adapter(impl: string): Transport {
  if (impl === "adapter-deno") return denoTransport();
  if (impl === "adapter-bun") return bunTransport();
  return nodeTransport();
}

async function adapterSink(impl: string, total: number): Promise<void> {
  const listener = await adapter(impl).listen({ kind: "tcp", hostname: HOST, port: 0 });
  say(String((listener.addr as { port: number }).port));
  const conn = (await listener.accept())!;
  let got = 0;
  while (got < total) {
    const c = await conn.read();
    if (c === null) throw new Error(`EOF after ${got} bytes`);
    got += c.length;
  }
  await conn.write(new Uint8Array([1]));
  await conn.closeWrite();
  await listener.close();
}

async function adapterSource(impl: string, port: number, total: number): Promise<void> {
  const chunk = new Uint8Array(CHUNK).fill(0x5a);
  const start = performance.now();
  const conn = await adapter(impl).connect({ kind: "tcp", hostname: HOST, port });
  for (let sent = 0; sent < total; sent += CHUNK) await conn.write(chunk);
  const ack = await conn.read();
  const ms = performance.now() - start;
  if (ack === null) throw new Error("no acknowledgement");
  conn.close();
  say(JSON.stringify({ ms }));
}

// ---- bare Deno ----
async function rawDenoSink(total: number): Promise<void> {
  const listener = G.Deno.listen({ hostname: HOST, port: 0 });
  say(String(listener.addr.port));
  const conn = await listener.accept();
  const buf = new Uint8Array(CHUNK);
  let got = 0;
  while (got < total) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("EOF");
    got += n;
  }
  await conn.write(new Uint8Array([1]));
  conn.close();
  listener.close();
}

async function rawDenoSource(port: number, total: number): Promise<void> {
  const chunk = new Uint8Array(CHUNK).fill(0x5a);
  const start = performance.now();
  const conn = await G.Deno.connect({ hostname: HOST, port });
  for (let sent = 0; sent < total; sent += CHUNK) {
    let off = 0;
    while (off < CHUNK) off += await conn.write(off === 0 ? chunk : chunk.subarray(off));
  }
  await conn.read(new Uint8Array(1));
  const ms = performance.now() - start;
  conn.close();
  say(JSON.stringify({ ms }));
}

// ---- bare Bun ----
function rawBunSink(total: number): Promise<void> {
  return new Promise((resolve) => {
    let got = 0;
    const server = G.Bun.listen({
      hostname: HOST,
      port: 0,
      socket: {
        data(s: { write(b: Uint8Array): number; end(): void }, d: Uint8Array) {
          got += d.length;
          if (got >= total) {
            s.write(new Uint8Array([1]));
            s.end();
            server.stop(true);
            resolve();
          }
        },
      },
    });
    say(String(server.port));
  });
}

async function rawBunSource(port: number, total: number): Promise<void> {
  const chunk = new Uint8Array(CHUNK).fill(0x5a);
  let sent = 0;
  let off = 0;
  let done!: () => void;
  const acked = new Promise<void>((r) => (done = r));
  const start = performance.now();
  const pump = (s: { write(b: Uint8Array): number }) => {
    while (sent < total) {
      const n = s.write(off === 0 ? chunk : chunk.subarray(off));
      if (n < 0) return;
      off += n;
      if (off < CHUNK) return; // wait for drain
      off = 0;
      sent += CHUNK;
    }
  };
  const sock = await G.Bun.connect({
    hostname: HOST,
    port,
    socket: { drain: pump, data: () => done() },
  });
  pump(sock);
  await acked;
  const ms = performance.now() - start;
  sock.end();
  say(JSON.stringify({ ms }));
}

// ---- bare node:net ----
function rawNodeSink(total: number): Promise<void> {
  return new Promise((resolve) => {
    let got = 0;
    const server = net.createServer((s) => {
      s.on("data", (d: Uint8Array) => {
        got += d.length;
        if (got >= total) {
          s.end(new Uint8Array([1]));
          server.close();
          resolve();
        }
      });
    });
    server.listen(0, HOST, () => say(String((server.address() as net.AddressInfo).port)));
  });
}

function rawNodeSource(port: number, total: number): Promise<void> {
  const chunk = new Uint8Array(CHUNK).fill(0x5a);
  return new Promise((resolve) => {
    const start = performance.now();
    const s = net.connect({ host: HOST, port }, () => {
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += CHUNK;
          if (!s.write(chunk)) return void s.once("drain", pump);
        }
      };
      pump();
    });
    s.setNoDelay(true);
    s.once("data", () => {
      const ms = performance.now() - start;
      s.destroy();
      say(JSON.stringify({ ms }));
      resolve();
    });
  });
}

function sink(impl: string, total: number): Promise<void> {
  if (impl === "raw-deno") return rawDenoSink(total);
  if (impl === "raw-bun") return rawBunSink(total);
  if (impl === "raw-node") return rawNodeSink(total);
  return adapterSink(impl, total);
}

function source(impl: string, port: number, total: number): Promise<void> {
  if (impl === "raw-deno") return rawDenoSource(port, total);
  if (impl === "raw-bun") return rawBunSource(port, total);
  if (impl === "raw-node") return rawNodeSource(port, total);
  return adapterSource(impl, port, total);
}

/**
 * An untimed transfer through both sides of `impl` inside this process, so the timed one
 * measures compiled code: a short run (the CI smoke pass moves 32 MiB, ~16 ms) otherwise
 * measures mostly the JIT warming up, and the adapters, with more code than a bare loop, the
 * more so.
 */
async function warmUp(impl: string): Promise<void> {
  const report = say;
  let ready!: (port: number) => void;
  const port = new Promise<number>((r) => (ready = r));
  say = (line) => /^\d+$/.test(line) && ready(Number(line));
  try {
    const s = sink(impl, WARM_UP);
    await Promise.all([s, source(impl, await port, WARM_UP)]);
  } finally {
    say = report;
  }
}

async function main(argv: string[]): Promise<void> {
  const [role, impl, a, b] = argv;
  if (impl === undefined || (role !== "sink" && role !== "source")) {
    throw new Error("usage: transport_worker sink|source <impl> …");
  }
  await warmUp(impl);
  if (role === "sink") return sink(impl, Number(a));
  return source(impl, Number(a), Number(b));
}

await main(G.process.argv.slice(2));
