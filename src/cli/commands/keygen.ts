/**
 * @module
 * `hydra-relay keygen`: prints a new session token.
 */

import { Session } from "../../protocol/session.ts";
import { type Command, type Flags, HELP, JSON_FLAG, out } from "./_command.ts";

function keygen(flags: Flags): Promise<number> {
  const token = Session.generate().token();
  out(flags.json === undefined ? token + "\n" : JSON.stringify({ token }) + "\n");
  return Promise.resolve(0);
}

/** `hydra-relay keygen`. */
export const keygenCommand: Command = {
  usage:
    "Usage: hydra-relay keygen\n\nPrints a new session token (a secret: share it only with your producer and consumers).",
  flags: [JSON_FLAG, HELP],
  run: keygen,
};
