/**
 * End-to-end endpoints for scripts/bench/relay.ts, run under the runtime being measured (Node
 * runs the compiled copy in npm/scripts/bench/): the library's own `Producer` and `Consumer`
 * with the runtime's native crypto, sealing and opening every message.
 *
 *   relay_e2e seal <size> <count>
 *       the baseline: native AES-256-GCM seal of <count> <size>-byte messages, one after the
 *       other, through the same crypto provider the clients use; prints {"MBs"}
 *   relay_e2e consume <port> <token> <size> <count>
 *       a Consumer; prints `ready` once joined, then {"ms", "messages"} (ms from the first
 *       message to the last), checking every message's length and first/last bytes
 *   relay_e2e produce <port> <token> <size> <count>
 *       a Producer broadcasting <count> messages as fast as it may, then closing (END)
 */

import { Consumer } from "../../src/client/consumer.ts";
import { Producer } from "../../src/client/producer.ts";
import { nativeCrypto } from "../../src/crypto/native.ts";
import { Session } from "../../src/protocol/session.ts";

// deno-lint-ignore no-explicit-any
const G = globalThis as any;
const say = (line: string) => G.process.stdout.write(line + "\n");
const addrOf = (port: number) => ({ kind: "tcp" as const, hostname: "127.0.0.1", port });

/** Message i: its index in the first 4 bytes and in the last 4. */
function message(size: number, i: number): Uint8Array {
  const m = new Uint8Array(size);
  const v = new DataView(m.buffer);
  v.setUint32(0, i);
  v.setUint32(size - 4, i);
  return m;
}

async function seal(size: number, count: number): Promise<void> {
  const crypto = nativeCrypto();
  const aead = await crypto.aesGcm(crypto.randomBytes(32));
  const nonce = new Uint8Array(12);
  const plain = message(size, 0);
  await aead.seal(nonce, plain); // warm-up
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    new DataView(nonce.buffer).setUint32(8, i);
    await aead.seal(nonce, plain);
  }
  const ms = performance.now() - started;
  say(JSON.stringify({ MBs: (size * count) / ms / 1000 }));
}

async function consume(port: number, token: string, size: number, count: number) {
  const consumer = await Consumer.connect(addrOf(port), Session.fromToken(token), {
    policy: "block",
  });
  say("ready");
  let first = 0;
  let i = 0;
  for await (const m of consumer) {
    if (i === 0) first = performance.now();
    const v = new DataView(m.buffer, m.byteOffset, m.length);
    if (m.length !== size || v.getUint32(0) !== i || v.getUint32(size - 4) !== i) {
      throw new Error(`message ${i} is wrong`);
    }
    if (++i === count) break;
  }
  say(JSON.stringify({ ms: performance.now() - first, messages: i }));
  await consumer.close();
}

async function produce(port: number, token: string, size: number, count: number) {
  const producer = await Producer.connect(addrOf(port), Session.fromToken(token));
  for (let i = 0; i < count; i++) await producer.broadcast(message(size, i));
  await producer.close();
  say("sent");
}

G.process.stdin.on("end", () => G.process.exit(0));
G.process.stdin.resume();
const [role, ...a] = G.process.argv.slice(2) as string[];
const num = (i: number) => Number(a[i]);
if (role === "seal") await seal(num(0), num(1));
else if (role === "consume") await consume(num(0), a[1]!, num(2), num(3));
else if (role === "produce") await produce(num(0), a[1]!, num(2), num(3));
else throw new Error("usage: relay_e2e seal|consume|produce …");
