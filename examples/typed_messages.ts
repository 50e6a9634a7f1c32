/**
 * Typed messages: a compact binary codec for a market-data union type. The codec runs inside
 * the end-to-end encryption, so the relay sees neither the types nor the values; `decode`
 * validates what it reads, so a consumer's loop only ever sees well-formed `MarketEvent`s.
 *
 *   deno run -A examples/typed_messages.ts     bun examples/typed_messages.ts
 *   node npm/examples/typed_messages.js        (after `npm run build`)
 */

import { type Codec, Consumer, nativeCrypto, Producer, RelayServer, Session } from "../mod.ts";

type MarketEvent =
  | { kind: "trade"; symbol: string; price: number; size: number }
  | { kind: "quote"; symbol: string; bid: number; ask: number };

/** Layout: kind (1 byte: 1 trade, 2 quote), symbol length + UTF-8, then two float64s. */
const marketCodec: Codec<MarketEvent> = {
  encode(e) {
    const symbol = new TextEncoder().encode(e.symbol);
    if (symbol.length > 255) throw new RangeError("symbol longer than 255 bytes");
    const out = new Uint8Array(2 + symbol.length + 16);
    const view = new DataView(out.buffer);
    out[0] = e.kind === "trade" ? 1 : 2;
    out[1] = symbol.length;
    out.set(symbol, 2);
    view.setFloat64(2 + symbol.length, e.kind === "trade" ? e.price : e.bid);
    view.setFloat64(10 + symbol.length, e.kind === "trade" ? e.size : e.ask);
    return out;
  },
  decode(bytes) {
    if (bytes.length < 2 || bytes.length !== 2 + bytes[1]! + 16) {
      throw new TypeError(`not a market event (${bytes.length} bytes)`);
    }
    const n = bytes[1]!;
    const symbol = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(2, 2 + n));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const a = view.getFloat64(2 + n);
    const b = view.getFloat64(10 + n);
    if (bytes[0] === 1) return { kind: "trade", symbol, price: a, size: b };
    if (bytes[0] === 2) return { kind: "quote", symbol, bid: a, ask: b };
    throw new TypeError(`unknown market event kind ${bytes[0]}`);
  },
};

const relay = await RelayServer.listen({ port: 0 });
const session = Session.generate();
const read = await session.readOnly(nativeCrypto()); // consumers read, never write
const consumer = await Consumer.connect(relay.addr, read, { codec: marketCodec });
const producer = await Producer.connect(relay.addr, session, { codec: marketCodec });

const events: MarketEvent[] = [
  { kind: "quote", symbol: "ACME", bid: 99.5, ask: 100.5 },
  { kind: "trade", symbol: "ACME", price: 100, size: 300 },
  { kind: "trade", symbol: "ACME", price: 101, size: 100 },
  { kind: "quote", symbol: "ÉTOILE", bid: 12.25, ask: 12.5 },
  { kind: "trade", symbol: "ACME", price: 99, size: 200 },
];
for (const e of events) await producer.send(e);
await producer.close();

let notional = 0;
let volume = 0;
let quotes = 0;
for await (const e of consumer) {
  // `e` is a MarketEvent: the compiler narrows it by `kind`.
  if (e.kind === "trade") {
    notional += e.price * e.size;
    volume += e.size;
  } else {
    quotes++;
    console.log(`quote ${e.symbol}: ${e.bid} / ${e.ask}`);
  }
}
await relay.close();
console.log(
  `ACME: ${volume} shares traded, VWAP ${(notional / volume).toFixed(4)}; ${quotes} quotes`,
);
