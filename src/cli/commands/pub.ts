/**
 * @module
 * `hydra-relay pub`: sends stdin to a session, one message per line or raw chunks, and ends
 * the stream at EOF.
 */

import process from "node:process";
import { concat } from "../../bytes.ts";
import { Producer } from "../../client/producer.ts";
import { Session } from "../../protocol/session.ts";
import { type FlagSpec, intFlag, UsageError } from "../args.ts";
import { Progress } from "../progress.ts";
import type { Command, Flags } from "./_command.ts";
import { CLIENT_FLAGS, clientSetup, finish } from "./_client.ts";

async function pub(flags: Flags): Promise<number> {
  const { session, addr, mode, options } = clientSetup(flags);
  if (!(session instanceof Session)) {
    throw new UsageError(
      "this is a read token (hydra2r_…): it can only consume — pub needs the session's write token",
    );
  }
  const generation = intFlag(flags, "generation")!;
  if (generation < 0 || generation > 0xffffffff) {
    throw new UsageError(`--generation must be 0 to 4294967295, got ${generation}`);
  }
  const producer = await Producer.connect(addr, session, { ...options, generation });
  const max = producer.maxMessageBytes;
  const progress = new Progress("pub", process.stderr);
  const send = (m: Uint8Array) => {
    progress.add(m.length);
    return producer.broadcast(m);
  };
  let carry = new Uint8Array(0);
  for await (const chunk of process.stdin as AsyncIterable<Uint8Array>) {
    const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (mode === "raw") {
      for (let off = 0; off < bytes.length; off += max) {
        await send(bytes.subarray(off, Math.min(off + max, bytes.length)));
      }
      continue;
    }
    let data = carry.length === 0 ? bytes : concat([carry, bytes]);
    let nl: number;
    while ((nl = data.indexOf(10)) >= 0) {
      const line = data.subarray(0, nl > 0 && data[nl - 1] === 13 ? nl - 1 : nl);
      if (line.length > max) {
        throw new RangeError(
          `a line of ${line.length} bytes exceeds the relay's message limit (${max}); use --mode raw`,
        );
      }
      await send(line);
      data = data.subarray(nl + 1);
    }
    carry = data.slice();
  }
  if (mode === "line" && carry.length > 0) await send(carry);
  await producer.close();
  finish(progress, "sent", flags);
  return 0;
}

const GENERATION: FlagSpec = {
  name: "generation",
  default: "0",
  value: "N",
  help: "the read-capability generation of the stream: readers of older ones are revoked",
};

/** `hydra-relay pub`. */
export const pubCommand: Command = {
  usage: "Usage: hydra-relay pub --token TOKEN [options] < input\n\n" +
    "Sends stdin to every consumer of the session; ends the stream at EOF. To rotate read\n" +
    "tokens, hand readers `keygen --read-only TOKEN --generation N` and run pub --generation N.",
  flags: [...CLIENT_FLAGS, GENERATION],
  run: pub,
};
