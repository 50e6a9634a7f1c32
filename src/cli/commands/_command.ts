/**
 * @module
 * What every `hydra-relay` command shares: the shape of a command (its usage text, flags and
 * run function), the flags all of them take, and writing to stdout.
 */

import process from "node:process";
import type { FlagSpec } from "../args.ts";

/** Parsed flags: each flag's value, `undefined` when absent. */
export type Flags = Record<string, string | undefined>;

/** One `hydra-relay` command. */
export interface Command {
  /** The usage text `--help` prints above the options. */
  readonly usage: string;
  /** The flags it takes. */
  readonly flags: readonly FlagSpec[];
  /** Runs it; resolves to the exit status. Throws `UsageError` for a user's mistake. */
  run(flags: Flags): Promise<number>;
}

/** `--help`. */
export const HELP: FlagSpec = { name: "help", boolean: true, help: "show this help" };
/** `--json`. */
export const JSON_FLAG: FlagSpec = {
  name: "json",
  boolean: true,
  help: "machine-readable output (JSON lines)",
};
/** `--config FILE`. */
export const CONFIG: FlagSpec = {
  name: "config",
  env: "HYDRA_CONFIG",
  value: "FILE",
  help: "read options from a JSON file (flags and environment win)",
};

/**
 * Writes to stdout.
 * @param text What to write.
 */
export function out(text: string): void {
  process.stdout.write(text);
}
