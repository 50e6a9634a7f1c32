/**
 * @module
 * The `hydra-relay` command: `serve` (default), `keygen`, `pub`, `sub`, `bench`, one file each
 * under commands/. It runs unchanged on Deno, Bun and Node through `node:process` and
 * `node:fs`, which all three provide. User mistakes print one sentence and exit 2; failures at
 * run time print one sentence and exit 1; no stack traces for either.
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import { RelayError } from "../errors.ts";
import { formatFlags, parseConfig, parseFlags, UsageError } from "./args.ts";
import { benchCommand } from "./commands/bench.ts";
import { type Command, out } from "./commands/_command.ts";
import { keygenCommand } from "./commands/keygen.ts";
import { pubCommand } from "./commands/pub.ts";
import { serveCommand } from "./commands/serve.ts";
import { subCommand } from "./commands/sub.ts";

const COMMANDS = `Usage: hydra-relay <command> [options]

Commands:
  serve    run a relay (the default command)
  keygen   print a new session token
  pub      send stdin to a session
  sub      print a session's messages to stdout
  bench    measure a local relay: 1 producer to N consumers, end to end

Run "hydra-relay <command> --help" for a command's options.`;

const COMMAND_TABLE: Record<string, Command> = {
  serve: serveCommand,
  keygen: keygenCommand,
  pub: pubCommand,
  sub: subCommand,
  bench: benchCommand,
};

/**
 * Runs the CLI.
 * @param argv Arguments after the program name.
 * @returns The exit status.
 * @example
 * ```ts ignore
 * import { main } from "./main.ts";
 * process.exitCode = await main(["keygen"]);
 * ```
 */
export async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  const command = first === undefined || first.startsWith("-") ? "serve" : first;
  const args = command === first ? rest : argv;
  try {
    if (first === "help" || first === "--help" || first === "-h") {
      out(COMMANDS + "\n");
      return 0;
    }
    const cmd = Object.hasOwn(COMMAND_TABLE, command) ? COMMAND_TABLE[command] : undefined;
    if (cmd === undefined) throw new UsageError(`unknown command "${command}"\n\n${COMMANDS}`);
    let { flags, rest: positional } = parseFlags(args, cmd.flags, process.env);
    if (flags.config !== undefined && flags.help === undefined) {
      ({ flags, rest: positional } = parseFlags(
        args,
        cmd.flags,
        process.env,
        parseConfig(readConfig(flags.config), cmd.flags, flags.config),
      ));
    }
    if (flags.help !== undefined) {
      out(`${cmd.usage}\n\nOptions:\n${formatFlags(cmd.flags)}\n`);
      return 0;
    }
    if (positional.length > 0) throw new UsageError(`unexpected argument "${positional[0]}"`);
    return await cmd.run(flags);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`hydra-relay: ${e.message}\n`);
      return 2;
    }
    if (e instanceof RelayError || e instanceof TypeError || e instanceof RangeError) {
      process.stderr.write(`hydra-relay: ${e.message}${hint(e)}\n`);
      return 1;
    }
    throw e;
  }
}

function readConfig(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new UsageError(
      `cannot read config file ${path} (${code === "ENOENT" ? "no such file" : code ?? e})`,
    );
  }
}

function hint(e: Error): string {
  if (!(e instanceof RelayError)) return "";
  switch (e.code) {
    case "connect-failed":
      return e.message.includes("NATS")
        ? " — check --cluster (nats-server must run with -js)"
        : " — is a relay running there? (start one with: hydra-relay serve)";
    case "addr-in-use":
      return " — pick another address, or stop the process using it";
    case "relay-key-mismatch":
      return " — check --relay-key, or the address";
    case "auth-failed":
      return " — check the session token";
    default:
      return "";
  }
}
