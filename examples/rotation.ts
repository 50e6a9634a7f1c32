/**
 * Rotating read tokens: a price feed has two subscribers; one cancels. The producer mints the
 * next generation's read token, hands it to the subscriber who stays, and rotates: the staying
 * subscriber reads on without a gap, the one who left is cut off at the switch and cannot join
 * again with its old token.
 *
 *   deno run -A examples/rotation.ts     bun examples/rotation.ts
 *   node npm/examples/rotation.js        (after `npm run build`)
 */

import { Consumer, nativeCrypto, Producer, RelayError, RelayServer, Session } from "../mod.ts";

const crypto = nativeCrypto();
const relay = await RelayServer.listen({ port: 0 });
const session = Session.generate(); // the write token stays with the feed
const monthOne = await session.readOnly(crypto, 0); // generation 0: both subscribers have it

const staying = await Consumer.connect(relay.addr, monthOne);
const leaving = await Consumer.connect(relay.addr, monthOne, { reconnect: false });
const feed = await Producer.connect(relay.addr, session);

const price = (i: number) => new TextEncoder().encode(`ABC ${(100 + i / 4).toFixed(2)}`);
const read = async (c: Consumer, name: string) => {
  let n = 0;
  c.on("rotated", (e) => console.log(`${name}: rotated to generation ${e.generation}`));
  try {
    for await (const _ of c) n++;
    return `${name}: ${n} prices, then the feed ended`;
  } catch (e) {
    return `${name}: ${n} prices, then ${(e as RelayError).code}`;
  }
};
const reading = [read(staying, "staying"), read(leaving, "leaving")];

for (let i = 0; i < 100; i++) await feed.broadcast(price(i));
// Month two: a new read token, handed (out of band, here in-process) to whoever renewed.
const monthTwo = await session.readOnly(crypto, feed.generation + 1);
await staying.grant(monthTwo);
await feed.rotate(monthTwo.generation);
for (let i = 100; i < 200; i++) await feed.broadcast(price(i));
await feed.close();
for (const line of await Promise.all(reading)) console.log(line);

const again = await Consumer.connect(relay.addr, monthOne, { reconnect: false }).catch((e) => e);
console.log(`the old token joins again: ${again instanceof RelayError ? again.code : "joined"}`);
await relay.close();
