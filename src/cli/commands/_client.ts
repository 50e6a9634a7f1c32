/**
 * @module
 * What `pub` and `sub` share: their flags, turning flags into a session, relay address(es)
 * and options, and the closing summary line.
 */

import process from "node:process";
import { READ_TOKEN_PREFIX, ReadCapability } from "../../protocol/capability.ts";
import { Session } from "../../protocol/session.ts";
import { DEFAULT_PORT } from "../../server/options.ts";
import { parseAddr } from "../../transport/addr.ts";
import type { Addr } from "../../transport/types.ts";
import { type FlagSpec, UsageError } from "../args.ts";
import type { Progress } from "../progress.ts";
import { CONFIG, type Flags, HELP, JSON_FLAG } from "./_command.ts";

/** The flags of `pub` and `sub`. */
export const CLIENT_FLAGS: FlagSpec[] = [
  {
    name: "relay",
    env: "HYDRA_RELAY",
    default: `127.0.0.1:${DEFAULT_PORT}`,
    value: "ADDR",
    help: "relay address, host:port or unix:/path; several relays of a cluster: a,b,c",
  },
  {
    name: "token",
    env: "HYDRA_TOKEN",
    value: "TOKEN",
    help: "session token from `hydra-relay keygen`",
  },
  {
    name: "relay-key",
    env: "HYDRA_RELAY_KEY",
    value: "HEX",
    help: "refuse a relay whose key differs",
  },
  {
    name: "mode",
    default: "line",
    value: "MODE",
    help: "line: one message per line; raw: bytes as they come",
  },
  JSON_FLAG,
  CONFIG,
  HELP,
];

/**
 * Reads the flags every client command needs.
 * @param flags Parsed flags.
 * @returns The session, address(es), line/raw mode and connection options.
 * @throws {UsageError} for a missing or bad token, mode or address.
 */
export function clientSetup(flags: Flags): {
  session: Session | ReadCapability;
  addr: Addr | Addr[];
  mode: string;
  options: { relayKey?: string };
} {
  if (flags.token === undefined) {
    throw new UsageError(
      "no session token: pass --token or set HYDRA_TOKEN (make one with: hydra-relay keygen)",
    );
  }
  if (flags.mode !== "line" && flags.mode !== "raw") {
    throw new UsageError(`--mode must be line or raw, got "${flags.mode}"`);
  }
  let session: Session | ReadCapability;
  try {
    session = flags.token.trim().startsWith(READ_TOKEN_PREFIX)
      ? ReadCapability.fromToken(flags.token)
      : Session.fromToken(flags.token);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}`);
  }
  let addr;
  try {
    const list = flags.relay!.split(",").map((a) => parseAddr(a, DEFAULT_PORT));
    addr = list.length === 1 ? list[0]! : list;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  return {
    session,
    addr,
    mode: flags.mode,
    options: flags["relay-key"] === undefined ? {} : { relayKey: flags["relay-key"] },
  };
}

/** After pub/sub: the live line gives way to a summary (TTY), or a JSON line (--json). */
export function finish(progress: Progress, verb: string, flags: Flags): void {
  const live = progress.live;
  progress.stop();
  if (flags.json !== undefined) {
    process.stderr.write(
      JSON.stringify({
        event: "done",
        [verb]: progress.messages,
        bytes: progress.bytes,
        seconds: Number(progress.seconds.toFixed(3)),
      }) + "\n",
    );
  } else if (live) {
    process.stderr.write(`hydra-relay: ${verb} ${progress.summary()}\n`);
  }
}
