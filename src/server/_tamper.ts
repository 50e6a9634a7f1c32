/**
 * @module
 * A test hook that turns the real relay into a malicious one (issue 5, docs/SECURITY.md):
 * every frame a connection is about to send — control messages before they are sealed
 * with the Noise transport cipher, data frames one by one — passes through the hook,
 * which may alter, drop, hold back, duplicate or add frames. The relay operator holds the
 * Noise keys, so forging control messages is within its power; the suite shows consumers
 * detect all of it. Not exported from `mod.ts`; without the hook the relay's fast path is
 * unchanged (runs are written whole, never split).
 */

import type { ControlMessage } from "../protocol/control.ts";

/** One frame on its way from the relay to a client. */
export type Outbound =
  | { readonly kind: "data"; readonly bytes: Uint8Array }
  | { readonly kind: "control"; readonly message: ControlMessage };

/**
 * The hook: gets the connection number and the frame about to be sent, returns what is
 * sent instead (in order; `[]` drops it).
 */
export type Tamper = (conn: number, out: Outbound) => Outbound[];

/** The `RelayOptions` key the hook is passed under (a symbol: not a public option). */
export const TAMPER: unique symbol = Symbol("hydra.relay.tamper");
