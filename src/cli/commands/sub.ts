/**
 * @module
 * `hydra-relay sub`: writes a session's messages to stdout until the producer ends the stream;
 * gaps are told on stderr.
 */

import process from "node:process";
import { Consumer } from "../../client/consumer.ts";
import { Progress } from "../progress.ts";
import type { Command, Flags } from "./_command.ts";
import { CLIENT_FLAGS, clientSetup, finish } from "./_client.ts";

async function sub(flags: Flags): Promise<number> {
  const { session, addr, mode, options } = clientSetup(flags);
  const consumer = await Consumer.connect(addr, session, options);
  consumer.on(
    "lagged",
    (g) =>
      process.stderr.write(
        `hydra-relay: gap: frames ${g.from}..${g.to - 1n} were dropped by the relay\n`,
      ),
  );
  const stdout = process.stdout;
  const newline = new Uint8Array([10]);
  const progress = new Progress("sub", process.stderr);
  for await (const m of consumer) {
    progress.add(m.length);
    let ok = stdout.write(m);
    if (mode === "line") ok = stdout.write(newline);
    if (!ok) await new Promise<void>((r) => stdout.once("drain", () => r()));
  }
  await new Promise<void>((r) => stdout.write("", () => r()));
  finish(progress, "received", flags);
  return 0;
}

/** `hydra-relay sub`. */
export const subCommand: Command = {
  usage:
    "Usage: hydra-relay sub --token TOKEN [options] > output\n\nWrites the session's messages to stdout until the producer ends the stream.",
  flags: CLIENT_FLAGS,
  run: sub,
};
