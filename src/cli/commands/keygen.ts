/**
 * @module
 * `hydra-relay keygen`: prints a new session token (the write capability), or — with
 * `--read-only TOKEN` — the read token of that session (docs/CAPABILITIES.md), which consumers
 * get instead: it reads and verifies the stream, and can never produce.
 */

import { nativeCrypto } from "../../crypto/native.ts";
import { ReadCapability } from "../../protocol/capability.ts";
import { Session } from "../../protocol/session.ts";
import { type FlagSpec, intFlag, UsageError } from "../args.ts";
import { type Command, type Flags, HELP, JSON_FLAG, out } from "./_command.ts";

const READ_ONLY: FlagSpec = {
  name: "read-only",
  value: "TOKEN",
  help: "print the read token of this session's write token instead of a new session",
};
const GENERATION: FlagSpec = {
  name: "generation",
  default: "0",
  value: "N",
  help: "with --read-only: the read-capability generation",
};

async function keygen(flags: Flags): Promise<number> {
  let token: string;
  if (flags["read-only"] === undefined) {
    if (flags.generation !== "0") throw new UsageError("--generation goes with --read-only");
    token = Session.generate().token();
  } else {
    let session: Session;
    try {
      session = Session.fromToken(flags["read-only"]);
    } catch (e) {
      throw new UsageError(`--read-only: ${(e as Error).message}`);
    }
    const generation = intFlag(flags, "generation")!;
    if (generation < 0 || generation > 0xffffffff) {
      throw new UsageError(`--generation must be 0 to 4294967295, got ${generation}`);
    }
    token = (await ReadCapability.mint(nativeCrypto(), session, generation)).token();
  }
  out(flags.json === undefined ? token + "\n" : JSON.stringify({ token }) + "\n");
  return 0;
}

/** `hydra-relay keygen`. */
export const keygenCommand: Command = {
  usage: "Usage: hydra-relay keygen [--read-only TOKEN]\n\n" +
    "Prints a new session token (a secret: share it only with your producer). With\n" +
    "--read-only TOKEN, prints that session's read token for consumers: it reads and verifies\n" +
    "the stream and can never produce.",
  flags: [READ_ONLY, GENERATION, JSON_FLAG, HELP],
  run: keygen,
};
