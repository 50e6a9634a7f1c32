/**
 * Checks the packages as users get them (issue 6, part 5), after `npm run build`:
 *
 * 1. npm: `npm pack` of npm/, installed into a fresh temporary Node project and a fresh Bun
 *    project, where a script runs relay → producer → consumer through the package's public
 *    exports (`@hydra/relay` and the runtime's subpath), and `hydra-relay --help` runs from
 *    the installed bin (`npx` on Node, `bun x` on Bun). The tarball's README is the front door
 *    with absolute links, each to a file the tarball ships; and in an empty directory
 *    `npx file:<tarball> serve` — what `npx @hydra/relay serve` does once published — starts a
 *    relay from the package alone, and SIGTERM stops it cleanly.
 * 2. JSR: `deno publish --dry-run`, which type-checks every export, rejects slow types and
 *    lists the files; it works offline. (deno.json and npm exports agreeing is checked by the
 *    build itself.)
 *
 *   deno run -A scripts/check_package.ts [--keep]
 *
 * Dependencies (@noble/*) install from the npm registry or npm's cache. Exit 1 on any failure.
 */

import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { devBin as bin } from "./_bin.ts";
import { PACKAGE_FILES } from "./build_npm.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const keep = process.argv.includes("--keep");

/** The smoke script both projects run: every message arrives, in order, byte-exact. */
const SMOKE = `
import { Consumer, Producer, RelayServer, Session, runtimeName } from "@hydra/relay";
import * as native from "@hydra/relay/RUNTIME";

const opts = { transport: native.transport, crypto: native.crypto };
const relay = await RelayServer.listen({ port: 0, ...opts });
const session = Session.generate();
const consumer = await Consumer.connect(relay.addr, session, opts);
const producer = await Producer.connect(relay.addr, session, opts);
const N = 200;
for (let i = 0; i < N; i++) {
  const m = new Uint8Array(1 + (i * 37) % 3000).fill(i & 0xff);
  await producer.broadcast(m);
}
await producer.close();
let n = 0;
for await (const m of consumer) {
  if (m.length !== 1 + (n * 37) % 3000 || m.some((b) => b !== (n & 0xff))) {
    throw new Error("message " + n + " differs");
  }
  n++;
}
await relay.close();
if (n !== N) throw new Error("received " + n + " of " + N);
console.log("package ok on " + runtimeName() + ": " + n + " messages");
`;

function run(what: string, cmd: string, args: string[], cwd: string): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1", npm_config_fund: "false", npm_config_audit: "false" },
    timeout: 180_000,
  });
  if (r.status !== 0) {
    throw new Error(
      `${what} failed (exit ${r.status}${r.error ? `, ${r.error.message}` : ""}):\n` +
        `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-30).join("\n"),
    );
  }
  return r;
}

function project(dir: string, runtime: string): void {
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: `hydra-${runtime}-app`, private: true, type: "module" }, null, 2),
  );
  writeFileSync(join(dir, "smoke.mjs"), SMOKE.replaceAll("RUNTIME", runtime));
}

function expectHelp(r: SpawnSyncReturns<string>, where: string): void {
  if (!r.stdout.includes("Usage: hydra-relay <command>")) {
    throw new Error(`hydra-relay --help via ${where} printed:\n${r.stdout}${r.stderr}`);
  }
}

/**
 * Why the packed README would not serve as the package's front door on the registry's page:
 * a relative link (there is no repository around it there), a link into the package naming a
 * file it does not ship, or reference material (over 150 lines).
 */
function readmeProblems(readme: string, files: string[], base: string): string[] {
  const problems: string[] = [];
  if (readme.split("\n").length > 150) problems.push("over 150 lines");
  for (const [, target] of readme.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (target!.startsWith("#")) continue;
    if (!/^https?:\/\//.test(target!)) problems.push(`relative link ${target}`);
    else if (target!.startsWith(base)) {
      const path = `package/${target!.slice(base.length)}`;
      if (!files.some((f) => f === path || (path.endsWith("/") && f.startsWith(path)))) {
        problems.push(`link to ${target} names no file in the tarball`);
      }
    }
  }
  return problems;
}

/** `npx file:<tgz> serve` in an empty directory: a relay from the package alone. */
function npxServe(tgz: string, dir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("npx", ["--yes", `file:${tgz}`, "serve", "--port", "0", "--ephemeral"], {
      cwd: dir,
      env: { ...process.env, NO_COLOR: "1", npm_config_fund: "false", npm_config_audit: "false" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true, // its own process group: npx and the relay it starts stop together
    });
    let out = "";
    let listening = "";
    const stop = () => {
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // Gone already.
      }
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`npx serve printed no address within 120 s:\n${out.slice(-2000)}`));
    }, 120_000);
    const take = (b: Uint8Array) => {
      out += new TextDecoder().decode(b);
      const m = /hydra-relay listening on (\S+)/.exec(out);
      if (m !== null && listening === "") {
        listening = m[1]!;
        stop();
      }
    };
    child.stdout!.on("data", take);
    child.stderr!.on("data", take);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (listening === "") {
        return reject(new Error(`npx serve exited (${code ?? signal}):\n${out}`));
      }
      if (!out.includes("hydra-relay stopped")) {
        return reject(new Error(`npx serve did not stop cleanly on SIGTERM:\n${out}`));
      }
      resolve(listening);
    });
  });
}

async function main(): Promise<void> {
  if (!existsSync(join(root, "npm", "package.json"))) {
    throw new Error("npm/ is not built: run `npm run build` first");
  }
  const work = mkdtempSync(join(tmpdir(), "hydra-pkg-"));
  try {
    // 1. The tarball, exactly as `npm publish` would upload it.
    run("npm pack", "npm", ["pack", "--pack-destination", work], join(root, "npm"));
    const tgz = join(work, readdirSync(work).find((f) => f.endsWith(".tgz"))!);
    const files = run("tar -tzf", "tar", ["-tzf", tgz], work).stdout.split("\n");
    const musts = [
      "mod.js",
      "mod.d.ts",
      "src/cli/bin.js",
      "src/browser.js",
      "dist/hydra-relay.browser.js",
    ];
    for (const f of musts.map((m) => `package/${m}`)) {
      if (!files.includes(f)) throw new Error(`${f} missing from the tarball`);
    }
    const stray = files.filter((f) => /\.ts$/.test(f) && !f.endsWith(".d.ts") || /tests\//.test(f));
    if (stray.length > 0) throw new Error(`the tarball ships sources or tests: ${stray[0]}`);
    const pkg = JSON.parse(readFileSync(join(root, "npm", "package.json"), "utf8"));
    run("tar -xzf README.md", "tar", ["-xzf", tgz, "package/README.md"], work);
    const problems = readmeProblems(
      readFileSync(join(work, "package", "README.md"), "utf8"),
      files,
      `${PACKAGE_FILES}${pkg.name}@${pkg.version}/`,
    );
    if (problems.length > 0) throw new Error(`the tarball's README: ${problems.join("; ")}`);
    console.log("package README: a front door, every link absolute and shipped");

    // 1b. The package alone: `npx file:<tgz> serve` in an empty directory.
    const empty = join(work, "empty");
    spawnSync("mkdir", ["-p", empty]);
    console.log(`npx serve from the tarball: listening on ${await npxServe(tgz, empty)}, stopped`);

    // 2. A fresh Node project.
    const nodeApp = join(work, "node-app");
    spawnSync("mkdir", ["-p", nodeApp]);
    project(nodeApp, "node");
    run("npm install (node project)", "npm", ["install", "--prefer-offline", tgz], nodeApp);
    console.log(run("node smoke.mjs", "node", ["smoke.mjs"], nodeApp).stdout.trim());
    expectHelp(
      run("npx hydra-relay --help", "npx", ["--no-install", "hydra-relay", "--help"], nodeApp),
      "npx",
    );

    // 3. A fresh Bun project.
    const bunApp = join(work, "bun-app");
    spawnSync("mkdir", ["-p", bunApp]);
    project(bunApp, "bun");
    run("bun add (bun project)", bin("bun"), ["add", tgz], bunApp);
    console.log(run("bun smoke.mjs", bin("bun"), ["smoke.mjs"], bunApp).stdout.trim());
    expectHelp(
      run("bun x hydra-relay --help", bin("bun"), ["x", "hydra-relay", "--help"], bunApp),
      "bun x",
    );

    // 4. The JSR package, offline.
    run("deno publish --dry-run", bin("deno"), ["publish", "--dry-run", "--allow-dirty"], root);
    console.log("deno publish --dry-run: ok (exports type-check, no slow types)");
  } finally {
    if (keep) console.log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  console.error(`check_package: ${(e as Error).message}`);
  process.exit(1);
}
