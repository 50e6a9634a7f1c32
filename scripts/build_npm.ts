/**
 * Builds the npm package into `npm/` from the same TypeScript sources that Deno and Bun run
 * and JSR publishes — what dnt would do, with TypeScript's own compiler
 * (`rewriteRelativeImportExtensions` turns `./x.ts` imports into `./x.js`), because dnt
 * comes from JSR and JSR is unreachable here.
 *
 * Emits ESM + `.d.ts` for mod.ts and src/, and also compiles tests/ so Node (which cannot
 * run .ts) tests the built output. Writes npm/package.json with an `exports` map derived
 * from deno.json's and fails when the two diverge or point at missing files.
 *
 * Usage: deno run -A scripts/build_npm.ts
 */

import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "npm");

interface DenoJson {
  name: string;
  version: string;
  license: string;
  exports: Record<string, string>;
}
interface PackageJson {
  description: string;
  dependencies: Record<string, string>;
  engines?: Record<string, string>;
  /** Files a browser bundle puts in place of others (`./src/x.ts` paths). */
  browser?: Record<string, string>;
}

/** The npm `exports` entry for one deno.json export target (`./src/x.ts`). */
export function npmExport(target: string): { types: string; default: string } {
  if (!target.startsWith("./") || !target.endsWith(".ts")) {
    throw new Error(`deno.json export target must be a relative .ts path, got ${target}`);
  }
  const base = target.slice(0, -3);
  return { types: `${base}.d.ts`, default: `${base}.js` };
}

/**
 * Compares the two exports maps; returns the differences (empty when they agree).
 * @param deno deno.json `exports`.
 * @param npm npm package.json `exports`.
 */
export function exportDiffs(
  deno: Record<string, string>,
  npm: Record<string, { types: string; default: string }>,
): string[] {
  const diffs: string[] = [];
  for (const key of new Set([...Object.keys(deno), ...Object.keys(npm)])) {
    const d = deno[key];
    const n = npm[key];
    if (d === undefined) diffs.push(`${key}: only in npm exports`);
    else if (n === undefined) diffs.push(`${key}: only in deno.json exports`);
    else {
      const want = npmExport(d);
      if (want.default !== n.default || want.types !== n.types) {
        diffs.push(`${key}: deno.json ${d} vs npm ${n.default}`);
      }
    }
  }
  return diffs;
}

/** A `./src/x.ts` path of the repository as the npm package has it: `./src/x.js`. */
const jsPath = (ts: string) => ts.replace(/\.ts$/, ".js");

/** The browser bundle's file name in npm/dist/. */
export const BROWSER_BUNDLE = "hydra-relay.browser.js";
/**
 * Size budget of the browser bundle (src/browser.ts with @noble inside, minified ESM). Measured
 * 2026-11-23: 105.7 KiB minified, 37.3 KiB gzip; the budget leaves ~20 % for growth.
 */
export const BROWSER_BUDGET: { minified: number; gzip: number } = {
  minified: 128 * 1024,
  gzip: 44 * 1024,
};

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;

/**
 * Bundles src/browser.ts for browsers with esbuild into npm/dist/ and checks it: no `node:`
 * import and within {@link BROWSER_BUDGET}.
 */
function bundleBrowser(): { minified: number; gzip: number } {
  const outfile = join(out, "dist", BROWSER_BUNDLE);
  const r = spawnSync(join(root, "node_modules", ".bin", "esbuild"), [
    join(root, "src", "browser.ts"),
    "--bundle",
    "--format=esm",
    "--platform=browser",
    "--target=es2022",
    "--minify",
    "--legal-comments=none",
    "--log-level=warning",
    `--outfile=${outfile}`,
  ], { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`esbuild failed with exit code ${r.status}`);
  const code = readFileSync(outfile);
  const text = code.toString("utf8");
  if (/\bfrom\s*["']node:|\bimport\s*\(\s*["']node:|\brequire\(\s*["']node:/.test(text)) {
    throw new Error("the browser bundle imports a node: module");
  }
  const size = { minified: code.length, gzip: gzipSync(code, { level: 9 }).length };
  if (size.minified > BROWSER_BUDGET.minified || size.gzip > BROWSER_BUDGET.gzip) {
    throw new Error(
      `the browser bundle is over budget: ${kib(size.minified)} minified (budget ${
        kib(BROWSER_BUDGET.minified)
      }), ${kib(size.gzip)} gzip (budget ${kib(BROWSER_BUDGET.gzip)})`,
    );
  }
  return size;
}

function main(): void {
  const deno = JSON.parse(readFileSync(join(root, "deno.json"), "utf8")) as DenoJson;
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as PackageJson;

  rmSync(out, { recursive: true, force: true });
  const tsconfig = {
    extends: "../tsconfig.json",
    compilerOptions: {
      noEmit: false,
      rootDir: "..",
      outDir: ".",
      declaration: true,
      sourceMap: false,
    },
    include: [
      "../mod.ts",
      "../src/**/*.ts",
      "../tests/**/*.ts",
      "../examples/**/*.ts",
      "../scripts/build_npm.ts",
      "../scripts/bench/**/*.ts",
    ],
  };
  // The build config lives in npm/ so the repository root keeps only the files the design
  // card lists; it is removed from the package by the "files" list below.
  spawnSync("mkdir", ["-p", out]);
  writeFileSync(join(out, "tsconfig.json"), JSON.stringify(tsconfig, null, 2));
  const tsc = join(root, "node_modules", ".bin", "tsc");
  const r = spawnSync(tsc, ["-p", join(out, "tsconfig.json")], { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`tsc failed with exit code ${r.status}`);

  const exports: Record<string, { types: string; default: string }> = {};
  for (const [key, target] of Object.entries(deno.exports)) exports[key] = npmExport(target);

  const npmPkg = {
    name: deno.name,
    version: deno.version,
    description: pkg.description.replace(/ \(development workspace.*\)$/, ""),
    license: deno.license,
    type: "module",
    engines: pkg.engines ?? { node: ">=20" },
    exports,
    // The same swap for the compiled files: a bundler building for browsers leaves out the
    // Deno, Bun and Node socket adapters (src/transport/default_browser.ts).
    browser: Object.fromEntries(
      Object.entries(pkg.browser ?? {}).map(([from, to]) => [jsPath(from), jsPath(to)]),
    ),
    main: exports["."]?.default,
    bin: { "hydra-relay": "./src/cli/bin.js" },
    types: exports["."]?.types,
    files: ["mod.js", "mod.d.ts", "src/", "dist/", "docs/", "examples/", "README.md", "LICENSE"],
    sideEffects: false,
    dependencies: pkg.dependencies,
  };
  writeFileSync(join(out, "package.json"), JSON.stringify(npmPkg, null, 2) + "\n");
  copyFileSync(join(root, "LICENSE"), join(out, "LICENSE"));
  // npmjs.com shows README.md without the repository around it: its links must be absolute,
  // so they point at the same files inside this very package version (docs/ ships with it).
  const base = `${PACKAGE_FILES}${npmPkg.name}@${npmPkg.version}/`;
  writeFileSync(
    join(out, "README.md"),
    absoluteLinks(readFileSync(join(root, "README.md"), "utf8"), base),
  );
  mkdirSync(join(out, "docs"), { recursive: true });
  for (const f of readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md"))) {
    copyFileSync(join(root, "docs", f), join(out, "docs", f));
  }
  chmodSync(join(out, npmPkg.bin["hydra-relay"]), 0o755);

  const diffs = exportDiffs(deno.exports, npmPkg.exports);
  for (const entry of Object.values(npmPkg.exports)) {
    for (const file of [entry.default, entry.types]) {
      if (!existsSync(join(out, file))) diffs.push(`${file}: exported but not built`);
    }
  }
  if (diffs.length > 0) {
    throw new Error(`npm and deno.json exports diverge:\n  ${diffs.join("\n  ")}`);
  }
  const b = bundleBrowser();
  console.log(
    `browser bundle dist/${BROWSER_BUNDLE}: ${kib(b.minified)} minified (budget ${
      kib(BROWSER_BUDGET.minified)
    }), ${kib(b.gzip)} gzip (budget ${kib(BROWSER_BUDGET.gzip)})`,
  );
  console.log(
    `built ${npmPkg.name}@${npmPkg.version} into npm/ (${
      Object.keys(exports).length
    } exports, in sync with deno.json)`,
  );
}

/** Where a published npm package's files are served, by `name@version/path`. */
export const PACKAGE_FILES = "https://unpkg.com/";

/**
 * Makes a Markdown text's relative links absolute (in-page anchors and absolute URLs stay).
 * @param markdown The text.
 * @param base What relative links are relative to, ending in `/`.
 * @returns The text with every `](relative)` link prefixed by `base`.
 */
export function absoluteLinks(markdown: string, base: string): string {
  return markdown.replace(
    /\]\((?![a-z][a-z0-9+.-]*:|#)(?:\.\/)?([^)\s]+)\)/gi,
    (_, path: string) => `](${base}${path})`,
  );
}

// `import.meta.main` is Deno's and Bun's; Node 20 (which only imports this for tests) lacks it.
if ((import.meta as { main?: boolean }).main) main();
