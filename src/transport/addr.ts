/**
 * @module
 * Parsing and printing of endpoint strings: `host:port`, `tcp://host:port`, `[::1]:port`,
 * `:port`, `unix:/path` and `unix:///path`. Pure string handling, no runtime API.
 */

import type { Addr } from "./types.ts";

/**
 * Parses an endpoint string (or passes an {@link Addr} through).
 * @param input The endpoint.
 * @param defaultPort Port used when the string names only a host.
 * @returns The address.
 * @throws {TypeError} with what is wrong and an example of the expected form.
 * @example
 * ```ts
 * import { parseAddr } from "./addr.ts";
 * parseAddr("127.0.0.1:7447"); // { kind: "tcp", hostname: "127.0.0.1", port: 7447 }
 * parseAddr("unix:/tmp/relay.sock"); // { kind: "unix", path: "/tmp/relay.sock" }
 * ```
 */
export function parseAddr(input: string | Addr, defaultPort?: number): Addr {
  if (typeof input !== "string") return input;
  const s = input.trim();
  if (s.startsWith("unix:")) {
    const path = s.replace(/^unix:(\/\/)?/, "");
    if (path === "") {
      throw new TypeError(`"${input}" has no socket path (e.g. unix:/tmp/relay.sock)`);
    }
    return { kind: "unix", path };
  }
  const rest = s.replace(/^tcp:\/\//, "");
  let hostname: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (v6 !== null) {
    hostname = v6[1]!;
    portText = v6[2];
  } else {
    const i = rest.lastIndexOf(":");
    if (i >= 0 && rest.indexOf(":") === i) {
      hostname = rest.slice(0, i);
      portText = rest.slice(i + 1);
    } else {
      hostname = rest;
    }
  }
  if (hostname === "") hostname = "127.0.0.1";
  if (/[\s/]/.test(hostname)) {
    throw new TypeError(`"${input}" is not an address (e.g. 127.0.0.1:7447 or unix:/path)`);
  }
  let port = defaultPort;
  if (portText !== undefined) {
    port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  }
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`"${input}" needs a port between 0 and 65535 (e.g. 127.0.0.1:7447)`);
  }
  return { kind: "tcp", hostname, port };
}
