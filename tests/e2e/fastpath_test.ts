/**
 * The relay's data path (issue 4, "the fast path"): frames that arrive together leave
 * together. A chunk of many small frames from the producer is forwarded to each consumer as
 * frame-aligned runs — a handful of writes, not one per frame — with the frames byte for
 * byte as sealed, in order. Over the memory transport and this runtime's TCP adapter.
 */

import assert from "node:assert/strict";
import { test } from "node:test";
import { concat } from "../../src/bytes.ts";
import { ControlKind, encodeJoinOptions } from "../../src/protocol/control.ts";
import { Role } from "../../src/protocol/join.ts";
import { Session } from "../../src/protocol/session.ts";
import type { Conn } from "../../src/transport/types.ts";
import { RawClient } from "./_raw_client.ts";
import { memoryAndNativeTcp, relayOn, sameBytes, tapTransport } from "./_fixtures.ts";

const FRAMES = 1000;
const CONSUMERS = 3;

for (const setup of memoryAndNativeTcp()) {
  test(`a chunk of ${FRAMES} small frames reaches each consumer in a few writes (${setup.name})`, async () => {
    // Writes the relay makes that start with a data frame, per relay-side connection.
    const dataWrites = new Map<Conn, number>();
    const transport = tapTransport(setup.transport, (chunk, direction, conn) => {
      if (direction === "out" && chunk.length > 4 && chunk[4] === 3) {
        dataWrites.set(conn, (dataWrites.get(conn) ?? 0) + 1);
      }
    });
    const relay = await relayOn({ ...setup, transport }, { ringFrames: 4 * FRAMES });
    try {
      const session = Session.generate();
      const block = encodeJoinOptions({ policy: "block" });
      const consumers = await Promise.all(
        Array.from({ length: CONSUMERS }, () => RawClient.connect(setup.transport, relay.addr)),
      );
      for (const c of consumers) {
        await c.control(await c.joinMessage(session, Role.Consumer, block));
        assert.equal((await c.nextControl())?.kind, ControlKind.Joined);
      }
      const producer = await RawClient.connect(setup.transport, relay.addr);
      const { frame } = await producer.produce(session);
      assert.equal((await producer.nextControl())?.kind, ControlKind.Joined);

      const sealed: Uint8Array[] = [];
      for (let i = 0; i < FRAMES; i++) {
        sealed.push(await frame(BigInt(i), 0, new Uint8Array(16).fill(i & 0xff)));
      }
      await producer.raw(concat(sealed)); // one write: 54 KB of 54-byte frames

      for (const c of consumers) {
        let i = 0;
        while (i < FRAMES) {
          const r = await c.next();
          assert.ok(r !== null, `relay closed after ${i} frames`);
          if (r.kind === "control") {
            assert.equal(r.message.kind, ControlKind.StreamStart);
            continue;
          }
          assert.ok(sameBytes(r.frame.bytes, sealed[i]!), `frame ${i} differs`);
          i++;
        }
        c.close();
      }
      producer.close();

      const counts = [...dataWrites.values()];
      assert.equal(counts.length, CONSUMERS, "data went to exactly the consumers");
      for (const n of counts) {
        assert.ok(n <= 50, `${n} writes for ${FRAMES} frames: frames were not forwarded as runs`);
      }
      console.log(`# ${setup.name}: ${FRAMES} frames → ${counts.join(", ")} writes per consumer`);
    } finally {
      await relay.close();
    }
  });
}
