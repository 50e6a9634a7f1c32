/**
 * @module
 * What relays of a cluster say to each other over NATS (docs/PROTOCOL.md §6.4.1): the envelope
 * on a session subject and the flow-control message a mirror's blocking consumers send. Pure
 * byte layouts and bounds; no NATS and no session state.
 */

import { readU64BE, writeU64BE } from "../../bytes.ts";
import { EPOCH_LENGTH } from "../../protocol/session.ts";
import type { Floor } from "../session.ts";

/** Envelope kinds on a session subject: `kind u8 ‖ origin relay id (8) ‖ payload`. */
export const Kind: { readonly Data: 1; readonly Start: 2; readonly Left: 3; readonly Beat: 4 } = {
  Data: 1,
  Start: 2,
  Left: 3,
  Beat: 4,
} as const;
/** Length of a relay's id in the cluster. */
export const ORIGIN_ID: number = 8;
/** Bytes before an envelope's payload. */
export const ENVELOPE: number = 1 + ORIGIN_ID;
/** Beat flag: a stream is live (its STREAM-START follows the beat's head). */
export const BEAT_LIVE: number = 1;
/** Beat flag: the origin's producer is connected (not in its grace period). */
export const BEAT_PRODUCER: number = 2;
/** Flow-control message: `relay id (8) ‖ holding u8 ‖ seq u64 ‖ epoch (16)`. */
export const ACK_LENGTH: number = ORIGIN_ID + 1 + 8 + EPOCH_LENGTH;
/** A run published at most this large (a single larger frame goes alone). */
export const RUN_BUDGET: number = 256 * 1024;

/**
 * Encodes a flow-control message.
 * @param id This relay's id.
 * @param floor What its blocking consumers still need, or `undefined`: holding nothing.
 * @returns The message.
 */
export function encodeHold(id: Uint8Array, floor: Floor | undefined): Uint8Array {
  const msg = new Uint8Array(ACK_LENGTH);
  msg.set(id, 0);
  if (floor !== undefined) {
    msg[ORIGIN_ID] = 1;
    writeU64BE(msg, ORIGIN_ID + 1, floor.seq);
    msg.set(floor.epoch, ORIGIN_ID + 9);
  }
  return msg;
}

/**
 * Decodes a flow-control message.
 * @param data The message as received.
 * @returns The sender's id (hex is the caller's business) and its floor (`undefined`: it let
 *   go), or `null` for a malformed message.
 */
export function decodeHold(
  data: Uint8Array,
): { peer: Uint8Array; floor: Floor | undefined } | null {
  if (data.length !== ACK_LENGTH || data[ORIGIN_ID]! > 1) return null;
  const peer = data.subarray(0, ORIGIN_ID);
  if (data[ORIGIN_ID] === 0) return { peer, floor: undefined };
  return { peer, floor: { seq: readU64BE(data, ORIGIN_ID + 1), epoch: data.slice(ORIGIN_ID + 9) } };
}
