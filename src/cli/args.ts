/**
 * @module
 * A small flag parser for the CLI: `--name value`, `--name=value`, boolean `--flag`,
 * environment fallbacks, and one clear sentence for every mistake.
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
    else if (s.default !== undefined) flags[s.name] = s.default;
  }
  return { flags, rest };
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
