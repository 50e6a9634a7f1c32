/**
 * @module
 * Command-line handling shared by the scripts under `scripts/` (bench, soak, fuzz): `--help`
 * prints the script's leading doc comment, and a bad option is one line on stderr (exit 2)
 * instead of a stack trace.
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

/**
 * Runs `parse` (a `parseArgs` call); on `--help`/`-h` among `args` prints the usage found in
 * the script at `url` and exits 0, on a parse error prints it and exits 2.
 * @param url The calling script's `import.meta.url`.
 * @param parse Parses the command line.
 * @param args The command line (default: this process's arguments).
 * @returns What `parse` returned.
 */
export function cliArgs<T>(url: string, parse: () => T, args: string[] = process.argv.slice(2)): T {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usageOf(url));
    process.exit(0);
  }
  try {
    return parse();
  } catch (e) {
    console.error(`${e instanceof Error ? e.message : String(e)} (--help for usage)`);
    process.exit(2);
  }
}

/** The first doc comment of the script at `url`, without its comment markers. */
export function usageOf(url: string): string {
  const text = readFileSync(fileURLToPath(url), "utf8");
  const m = /\/\*\*([\s\S]*?)\*\//.exec(text);
  if (m === null) return "(no usage text)";
  return m[1]!.split("\n").map((l) => l.replace(/^\s*\* ?/, "")).join("\n").trim();
}
