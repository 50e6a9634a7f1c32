/**
 * Resume after reconnect: a producer streams numbered messages while the consumer's
 * connection breaks and then the relay itself restarts. Both clients reconnect by themselves
 * (exponential backoff with jitter); the producer resends what the relay had not
 * acknowledged and the consumer resumes where it stopped, so every message arrives exactly
 * once, in order — or the consumer is told of a gap, never silently.
 *
 *   deno run -A examples/resume.ts     bun examples/resume.ts
 *   node npm/examples/resume.js        (after `npm run build`)
 */

import {
  Consumer,
  nativeCrypto,
  Producer,
  type ReconnectEvents,
  RelayServer,
  Session,
  textCodec,
} from "../mod.ts";

// A relay key that survives the restart (the CLI keeps it in a key file), so that clients
// pinning it (`relayKey`) would accept the restarted relay.
const staticKey = crypto.getRandomValues(new Uint8Array(32));
let relay = await RelayServer.listen({ port: 0, staticKey });
const addr = relay.addr;
const session = Session.generate();

// policy block: after the relay restarts, the producer's resend arrives as one burst; under the
// default policy (disconnect) a consumer still catching up could be cut as too slow.
// Consumers get a read token: they read and verify, and can never produce.
const read = await session.readOnly(nativeCrypto());
const consumer = await Consumer.connect(addr, read, { codec: textCodec, policy: "block" });
// replayFrames: frames the relay already acknowledged are kept too, so a consumer that was
// behind when the relay restarted can still be served from the producer's resend.
const producer = await Producer.connect(addr, session, { codec: textCodec, replayFrames: 1024 });
const report = (who: string) => ({
  lost: (r: ReconnectEvents["reconnecting"]) =>
    console.log(`${who}: connection lost (${r.error.code}), retrying`),
  back: (r: ReconnectEvents["reconnected"]) =>
    console.log(`${who}: back after ${r.attempts} attempt(s)`),
});
const c = report("consumer");
consumer.on("reconnecting", c.lost);
consumer.on("reconnected", c.back);
const p = report("producer");
producer.on("reconnecting", p.lost);
producer.on("reconnected", p.back);
let gaps = 0;
consumer.on("lagged", (g) => {
  gaps++;
  console.log(`consumer: gap, frames ${g.from}..${g.to - 1n} are gone`);
});

const TOTAL = 3000;
let consumerBack: Promise<void> = Promise.resolve();
const sending = (async () => {
  for (let i = 0; i < TOTAL; i++) {
    await producer.send(`message ${i}`);
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 5));
    if (i === 1000) {
      consumerBack = new Promise((resolve) => consumer.on("reconnected", () => resolve()));
      consumer.connection.abort(); // the consumer's network breaks
    }
    if (i === 2000) {
      // One fault at a time: a consumer still away when the relay restarts may be further
      // behind than the producer keeps (replayFrames), and would be told of a gap.
      await consumerBack;
      // The relay restarts on the same address with the same key.
      await relay.close({ drainMs: 0 });
      relay = await RelayServer.listen({ port: addr.kind === "tcp" ? addr.port : 0, staticKey });
    }
  }
  await producer.close(); // END: the consumer's loop finishes after the last message
})();

let expected = 0;
let outOfOrder = 0;
for await (const m of consumer) {
  if (m !== `message ${expected}`) outOfOrder++;
  expected = Number(m.split(" ")[1]) + 1;
}
await sending;
await relay.close();
console.log(
  `received ${expected} of ${TOTAL} messages, ${outOfOrder} out of order or duplicated, ` +
    `${gaps} gaps`,
);
