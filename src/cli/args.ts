/**
 * @module
 * A small flag parser for the CLI: `--name value`, `--name=value`, boolean `--flag`,
 * environment and config-file fallbacks, and one clear sentence for every mistake.
 * Precedence: command line, then environment, then config file, then the default.
 */

/** One flag a command accepts. */
export interface FlagSpec {
  /** Long name without dashes. */
  readonly name: string;
  /** Takes no value. */
  readonly boolean?: boolean;
  /** Environment variable consulted when the flag is absent. */
  readonly env?: string;
  /** Value when neither flag nor environment give one. */
  readonly default?: string;
  /** Help text. */
  readonly help: string;
  /** Placeholder in help output, e.g. `ADDR`. */
  readonly value?: string;
}

/** A mistake in the command line: printed as one sentence, exit status 2. */
export class UsageError extends Error {
  /**
   * @param message What is wrong and what to do.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parsed flags: strings for valued flags, `"true"` for present booleans. */
export type Flags = Record<string, string | undefined>;

/**
 * Parses flags of one command.
 * @param argv Arguments after the command name.
 * @param specs Accepted flags.
 * @param env Environment for fallbacks.
 * @param config Values from a config file (see {@link parseConfig}), below the environment.
 * @returns The flags and the positional arguments.
 * @throws {UsageError} for an unknown flag or a missing value.
 * @example
 * ```ts
 * import { parseFlags } from "./args.ts";
 * parseFlags(["--port", "1"], [{ name: "port", help: "" }], {}).flags.port; // "1"
 * ```
 */
export function parseFlags(
  argv: readonly string[],
  specs: readonly FlagSpec[],
  env: Record<string, string | undefined>,
  config: Flags = {},
): { flags: Flags; rest: string[] } {
  const flags: Flags = {};
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--") || arg === "--") {
      if (arg === "--") {
        rest.push(...argv.slice(i + 1));
        break;
      }
      rest.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const spec = specs.find((s) => s.name === name);
    if (spec === undefined) throw new UsageError(`unknown option --${name} (see --help)`);
    if (spec.boolean === true) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      flags[name] = "true";
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value (see --help)`);
    flags[name] = value;
  }
  for (const s of specs) {
    if (flags[s.name] !== undefined) continue;
    const fromEnv = s.env === undefined ? undefined : env[s.env];
    if (fromEnv !== undefined && fromEnv !== "") flags[s.name] = fromEnv;
    else if (config[s.name] !== undefined) flags[s.name] = config[s.name];
    else if (s.default !== undefined) flags[s.name] = s.default;
  }
  return { flags, rest };
}

/**
 * Reads a config file's text: a JSON object whose keys are the command's long flag names
 * (`{ "port": 7447, "policy": "drop", "metrics": "127.0.0.1:9464" }`), values strings,
 * numbers or booleans (`true` sets a boolean flag; `false` leaves it unset).
 * @param text The file's contents.
 * @param specs The command's flags.
 * @param where The file name, for messages.
 * @returns Flag values as strings.
 * @throws {UsageError} for invalid JSON, an unknown key or a value of the wrong kind.
 * @example
 * ```ts
 * import { parseConfig } from "./args.ts";
 * parseConfig('{"port": 80}', [{ name: "port", help: "" }], "relay.json").port; // "80"
 * ```
 */
export function parseConfig(text: string, specs: readonly FlagSpec[], where: string): Flags {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`config file ${where} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError(`config file ${where} must hold a JSON object of option names`);
  }
  const flags: Flags = {};
  for (const [key, v] of Object.entries(value)) {
    const spec = specs.find((s) => s.name === key);
    if (spec === undefined || key === "config" || key === "help") {
      throw new UsageError(`config file ${where}: unknown option "${key}" (see --help)`);
    }
    if (spec.boolean === true) {
      if (typeof v !== "boolean") {
        throw new UsageError(`config file ${where}: "${key}" must be true or false`);
      }
      if (v) flags[key] = "true";
    } else if (typeof v === "string" || (typeof v === "number" && Number.isFinite(v))) {
      flags[key] = String(v);
    } else {
      throw new UsageError(`config file ${where}: "${key}" must be a string or a number`);
    }
  }
  return flags;
}

/**
 * An integer flag.
 * @param flags Parsed flags.
 * @param name Flag name.
 * @returns The number, or `undefined` when absent.
 * @throws {UsageError} when not a non-negative integer.
 * @example
 * ```ts
 * import { intFlag } from "./args.ts";
 * intFlag({ port: "80" }, "port"); // 80
 * ```
 */
export function intFlag(flags: Flags, name: string): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const units: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
  const m = /^(\d+)([kmgKMG]i?[bB]?)?$/.exec(v.trim());
  if (m === null) throw new UsageError(`--${name} must be a whole number, got "${v}"`);
  const n = Number(m[1]) * (m[2] === undefined ? 1 : units[m[2][0]!.toLowerCase()]!);
  if (!Number.isSafeInteger(n)) throw new UsageError(`--${name} is too large: "${v}"`);
  return n;
}

/**
 * Formats a command's flag list for `--help`.
 * @param specs The flags.
 * @returns Aligned lines.
 * @example
 * ```ts
 * import { formatFlags } from "./args.ts";
 * formatFlags([{ name: "port", help: "TCP port", value: "N" }]);
 * ```
 */
export function formatFlags(specs: readonly FlagSpec[]): string {
  const left = specs.map((s) =>
    `  --${s.name}${s.boolean === true ? "" : ` ${s.value ?? "VALUE"}`}`
  );
  const width = Math.max(...left.map((l) => l.length)) + 2;
  return specs.map((s, i) => {
    const extra = [
      s.env === undefined ? "" : `env ${s.env}`,
      s.default === undefined ? "" : `default ${s.default}`,
    ].filter((x) => x !== "").join(", ");
    return left[i]!.padEnd(width) + s.help + (extra === "" ? "" : ` (${extra})`);
  }).join("\n");
}
