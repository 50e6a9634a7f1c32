/**
 * @module
 * Paths of the development tools npm installs (deno, bun, tsc, esbuild) for scripts and
 * tests that spawn them.
 */

import { existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (the folder holding deno.json). */
export const repoDir: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "deno.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("deno.json not found above scripts/_bin.ts");
    dir = up;
  }
  return dir;
})();

/**
 * The executable of an npm-installed tool. For deno this is the native binary: the `deno`
 * package's postinstall points `node_modules/.bin/deno` at it, but a later `npm install` of
 * anything else restores the link to the package's Node shim, which runs deno with
 * `spawnSync` and so neither forwards signals (a SIGTERM to it orphans the real process)
 * nor reports the real process's pid or memory.
 */
export function devBin(name: string): string {
  const link = join(repoDir, "node_modules", ".bin", name);
  if (name === "deno" && existsSync(link) && realpathSync(link).endsWith(".cjs")) {
    const native = join(dirname(realpathSync(link)), "deno");
    if (existsSync(native)) return native;
  }
  return link;
}
