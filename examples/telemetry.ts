/**
 * Telemetry fan-out: one sensor gateway (the producer) streams JSON readings to three
 * consumers — a dashboard, an alerter and an archive — through a relay that sees only
 * ciphertext.
 *
 *   deno run -A examples/telemetry.ts     bun examples/telemetry.ts
 *   node npm/examples/telemetry.js        (after `npm run build`)
 *
 * With HYDRA_RELAY=host:port it uses a running relay (`hydra-relay serve`) instead of starting
 * one in-process.
 */

import process from "node:process";
import { Consumer, jsonCodec, nativeCrypto, Producer, RelayServer, Session } from "../mod.ts";

interface Reading {
  sensor: string;
  t: number;
  celsius: number;
}

const codec = jsonCodec<Reading>();
const external = process.env.HYDRA_RELAY;
const relay = external === undefined ? await RelayServer.listen({ port: 0 }) : undefined;
const addr = external ?? relay!.addr;

// In a real deployment the token comes from `hydra-relay keygen` and is shared out of band
// with the producer and the consumers only; the relay never gets it.
const session = Session.generate(); // the write token stays with the gateway
const read = await session.readOnly(nativeCrypto()); // dashboards get a read token

const [dashboard, alerter, archive] = await Promise.all(
  [0, 1, 2].map(() => Consumer.connect(addr, read, { codec })),
);
const gateway = await Producer.connect(addr, session, { codec });

const SENSORS = ["boiler", "intake", "exhaust"];
const READINGS = 300;
for (let i = 0; i < READINGS; i++) {
  const sensor = SENSORS[i % SENSORS.length]!;
  // A deterministic wave, with the exhaust running hot every 50th reading.
  const celsius = 40 + 20 * Math.sin(i / 10) + (sensor === "exhaust" && i % 50 === 2 ? 60 : 0);
  await gateway.send({ sensor, t: 1_700_000_000 + i, celsius: Math.round(celsius * 10) / 10 });
}
await gateway.close(); // ends the stream: every consumer's loop finishes after the last reading

const latest = new Map<string, number>();
const showDashboard = (async () => {
  for await (const r of dashboard!) latest.set(r.sensor, r.celsius);
})();
let alerts = 0;
const alerting = (async () => {
  for await (const r of alerter!) if (r.celsius > 90) alerts++;
})();
const archived: Reading[] = [];
const archiving = (async () => {
  for await (const r of archive!) archived.push(r);
})();
await Promise.all([showDashboard, alerting, archiving]);
await relay?.close();

console.log(`dashboard: ${[...latest].map(([s, c]) => `${s} ${c} °C`).join(", ")}`);
console.log(`alerter: ${alerts} readings above 90 °C`);
console.log(
  `archive: ${archived.length} of ${READINGS} readings, in order: ${
    archived.every((r, i) => r.t === 1_700_000_000 + i)
  }`,
);
