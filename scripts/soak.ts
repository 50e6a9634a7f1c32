/**
 * The soak run (issue 5, part 7; not in CI; results in docs/SECURITY.md):
 *
 *   deno task soak [--minutes 30] [--rate 2000] [--relay deno|bun|node] [--relay-log FILE]
 *
 * A relay process, one producer and two consumers in this process at a moderate rate, with
 * the consumers' and the producer's connections cut on a schedule (they reconnect and
 * resume). Every minute it prints relay RSS and progress. At the end it checks that both
 * consumers received every message exactly once, in order, and that relay RSS never rose more
 * than 10 % above its peak in the two minutes after warm-up (the first 3 minutes). Exit 1
 * otherwise.
 *
 * `--relay-log FILE` writes everything the relay printed to FILE at the end, e.g. a Node
 * relay's garbage collections. Node refuses `--trace-gc` in NODE_OPTIONS, so put a `node`
 * first on PATH that adds it (`exec /usr/bin/node --trace-gc --trace-gc-verbose "$@"`); the
 * soak itself runs on Deno, so only the relay uses it.
 */

import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { cliArgs } from "./_cli.ts";
import process from "node:process";
import { Consumer } from "../src/client/consumer.ts";
import { Producer } from "../src/client/producer.ts";
import { Session } from "../src/protocol/session.ts";
import { defaultTransport } from "../src/transport/default.ts";
import { rssKiB, type Rt, serveCli } from "../tests/cli/_run.ts";
import { killableTransport } from "../tests/e2e/_fixtures.ts";

const { values } = cliArgs(import.meta.url, () =>
  parseArgs({
    options: {
      minutes: { type: "string", default: "30" },
      rate: { type: "string", default: "2000" },
      relay: { type: "string", default: "deno" },
      "relay-log": { type: "string" },
    },
  }));
const minutes = Number(values.minutes);
const rate = Number(values.rate);
const warmupMs = Math.min(3, minutes / 3) * 60_000;

const relay = await serveCli(values.relay as Rt, ["--log-level", "warn"]);
const pid = relay.child.pid;
const session = Session.generate();
const base = defaultTransport();
const cutConsumers = killableTransport(base);
const cutProducer = killableTransport(base);

const consumers = await Promise.all(
  [0, 1].map(() => Consumer.connect(relay.addr, session, { transport: cutConsumers })),
);
const producer = await Producer.connect(relay.addr, session, {
  transport: cutProducer,
  replayFrames: 8192,
});
let reconnects = 0;
for (const c of consumers) c.on("reconnected", () => reconnects++);
producer.on("reconnected", () => reconnects++);
const gaps: string[] = [];
for (const c of consumers) c.on("lagged", (g) => gaps.push(`${g.from}-${g.to}`));

function message(i: number): Uint8Array {
  const m = new Uint8Array(64 + (i % 192));
  const v = new DataView(m.buffer);
  v.setUint32(0, i);
  v.setUint32(m.length - 4, i ^ 0x5a5a5a5a);
  return m;
}

const received = [0, 0];
const reading = consumers.map(async (c, k) => {
  for await (const m of c) {
    const v = new DataView(m.buffer, m.byteOffset, m.length);
    const i = v.getUint32(0);
    if (i !== received[k] || v.getUint32(m.length - 4) !== (i ^ 0x5a5a5a5a)) {
      throw new Error(`consumer ${k}: message ${i} where ${received[k]} was due`);
    }
    received[k]!++;
  }
});

const started = Date.now();
const samples: { t: number; rss: number }[] = [];
let sent = 0;
let cuts = 0;
const sampler = setInterval(() => {
  const rss = rssKiB(pid);
  if (rss !== undefined) samples.push({ t: Date.now() - started, rss });
}, 10_000);
const reporter = setInterval(() => {
  console.error(
    `${((Date.now() - started) / 60_000).toFixed(1)} min: sent ${sent}, received ${received}, ` +
      `cuts ${cuts}, reconnects ${reconnects}, relay RSS ${rssKiB(pid)} KiB`,
  );
}, 60_000);

const end = started + minutes * 60_000;
let nextConsumerCut = started + 45_000;
let nextProducerCut = started + 75_000;
while (Date.now() < end) {
  const tick = Date.now();
  const due = Math.floor(((tick - started) / 1000) * rate);
  while (sent < due) await producer.broadcast(message(sent++));
  if (tick >= nextConsumerCut) {
    cuts += cutConsumers.kill();
    nextConsumerCut += 60_000;
  }
  if (tick >= nextProducerCut) {
    cuts += cutProducer.kill();
    nextProducerCut += 90_000;
  }
  await new Promise((r) => setTimeout(r, 10));
}
await producer.close();
await Promise.all(reading);
clearInterval(sampler);
clearInterval(reporter);
await relay.stop();
if (values["relay-log"] !== undefined) {
  await writeFile(values["relay-log"], relay.output());
}

// RSS breathes with garbage collection, so "steady" compares peaks: the highest reading in
// the two minutes after warm-up against the highest reading of all the time after that.
const warmWindow = samples.filter((s) => s.t >= warmupMs && s.t < warmupMs + 120_000);
const later = samples.filter((s) => s.t >= warmupMs + 120_000);
const warm = warmWindow.length > 0 ? Math.max(...warmWindow.map((s) => s.rss)) : undefined;
const peak = Math.max(...later.map((s) => s.rss), warm ?? 0);
const last = samples.at(-1)?.rss;
const report = {
  relay: values.relay,
  minutes,
  rate,
  sent,
  received,
  cuts,
  reconnects,
  gaps,
  rssKiB: { warm, peak, last, samples: samples.map((s) => s.rss) },
};
console.log(JSON.stringify(report));
const lossless = received.every((r) => r === sent) && gaps.length === 0;
const steady = warm !== undefined && peak <= warm * 1.1;
console.error(
  `${lossless ? "lossless" : "LOST MESSAGES"}; RSS warm ${warm} KiB, peak ${peak} KiB, ` +
    `last ${last} KiB (${steady ? "within" : "OUTSIDE"} 10 %)`,
);
process.exit(lossless && steady ? 0 : 1);
