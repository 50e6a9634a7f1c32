/**
 * @module
 * A nats-server (Debian package `nats-server`) with JetStream for the cluster tests: started
 * on a free port, stopped, and restarted on the same port. Without the binary the tests skip
 * with that reason, unless HYDRA_REQUIRE_NATS is set (CI), where its absence fails them.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

const BIN = ["/usr/sbin/nats-server", "/usr/bin/nats-server"].find((p) => existsSync(p));

/** Why the cluster tests cannot run here, or undefined when they can. */
export function natsMissing(): string | undefined {
  if (BIN !== undefined) return undefined;
  if (process.env.HYDRA_REQUIRE_NATS) {
    throw new Error("HYDRA_REQUIRE_NATS is set but nats-server is not installed");
  }
  return "nats-server not installed (apt-get install -y nats-server)";
}

/** A running nats-server. */
export class NatsServer {
  readonly dir: string;
  port = 0;
  #child: ChildProcess | undefined;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Starts one with JetStream on a free loopback port. */
  static async start(): Promise<NatsServer> {
    const s = new NatsServer(mkdtempSync(join(tmpdir(), "hydra-nats-")));
    await s.#run(-1);
    return s;
  }

  /** Its process id (for CPU readings). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Its client URL. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Stops it (its JetStream store stays on disk for a restart). */
  async stop(): Promise<void> {
    const c = this.#child;
    if (c === undefined) return;
    this.#child = undefined;
    if (c.exitCode === null) {
      const gone = new Promise((r) => c.once("exit", r));
      c.kill("SIGKILL");
      await gone;
    }
  }

  /** Starts it again on the same port, with the same store. */
  restart(): Promise<void> {
    return this.#run(this.port);
  }

  /** Stops it and removes its store. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async #run(port: number): Promise<void> {
    const child = spawn(
      BIN!,
      ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", this.dir],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    this.#child = child;
    this.port = await new Promise<number>((resolve, reject) => {
      let log = "";
      const t = setTimeout(() => reject(new Error(`nats-server did not start: ${log}`)), 15_000);
      child.once("exit", (code) => {
        clearTimeout(t);
        reject(new Error(`nats-server exited (${code}): ${log}`));
      });
      child.stderr!.on("data", (b: Uint8Array) => {
        log += new TextDecoder().decode(b);
        const m = /Listening for client connections on [^\s]+:(\d+)/.exec(log);
        if (m !== null && log.includes("Server is ready")) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      });
    });
  }
}
