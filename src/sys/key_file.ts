/**
 * @module
 * The relay's key file: a hex X25519 private key, created with mode 0600 on first start.
 * Uses `node:fs`, which Deno, Bun and Node all provide; loaded only when a key file is asked
 * for, so browser bundles never see it.
 */

import { chmod, readFile, stat, writeFile } from "node:fs/promises";

/**
 * Reads the key file, or creates it (mode 0600, exclusive create) with `make()`.
 * @param path File path.
 * @param make Produces the hex key for a new file.
 * @returns The hex key (trimmed).
 * @throws {Error} when the file cannot be read or created.
 * @example
 * ```ts ignore
 * import { loadOrCreateKeyFile } from "./key_file.ts";
 * const hex = await loadOrCreateKeyFile("/tmp/relay.key", () => "00".repeat(32));
 * ```
 */
export async function loadOrCreateKeyFile(path: string, make: () => string): Promise<string> {
  try {
    const text = await readFile(path, "utf8");
    const mode = (await stat(path)).mode & 0o777;
    // A key others can read is not secret any more; tighten it rather than refuse to start.
    if ((mode & 0o077) !== 0) await chmod(path, 0o600);
    return text.trim();
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOENT") throw e;
  }
  const hex = make();
  try {
    await writeFile(path, hex + "\n", { mode: 0o600, flag: "wx" });
  } catch (e) {
    // Another process created it first: use theirs.
    if ((e as { code?: string }).code === "EEXIST") return (await readFile(path, "utf8")).trim();
    throw e;
  }
  return hex;
}
