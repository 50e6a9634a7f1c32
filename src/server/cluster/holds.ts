/**
 * @module
 * Flow-control holds, origin side (docs/SCALING.md): what blocking consumers on other relays
 * still need of each session, so the origin keeps those frames and its producer waits as for a
 * local blocking consumer. Bounded (NATS must not make a relay remember without limit) and
 * expiring (a holder silent for 3 beats lets go).
 */

import { equals, toHex } from "../../bytes.ts";
import type { Floor } from "../session.ts";
import { decodeHold } from "./wire.ts";

/** Routes with holds from other relays, and relays holding one route, at most. */
const MAX_HELD_ROUTES = 65_536;
const MAX_HOLDERS = 1_024;

/** What another relay's blocking consumers still need, and when it said so. */
interface Hold extends Floor {
  readonly at: number;
}

/** The holds of other relays, by stream tag (hex), then relay id (hex). */
export class HoldTable {
  readonly #holds = new Map<string, Map<string, Hold>>();

  /**
   * Takes a flow-control message.
   * @param tag The session's stream tag (hex), from the subject.
   * @param data The message.
   * @param now The time (ms).
   * @returns `"rejected"` (malformed, or over a bound), `"changed"` or `"same"`.
   */
  receive(tag: string, data: Uint8Array, now: number): "rejected" | "changed" | "same" {
    const m = decodeHold(data);
    if (m === null) return "rejected";
    const peer = toHex(m.peer);
    let peers = this.#holds.get(tag);
    if (m.floor === undefined) {
      if (peers?.delete(peer) !== true) return "same";
      if (peers.size === 0) this.#holds.delete(tag);
      return "changed";
    }
    if (peers === undefined) {
      // Holds arrive for sessions this relay may never see: bounded, and they expire.
      if (this.#holds.size >= MAX_HELD_ROUTES) return "rejected";
      this.#holds.set(tag, peers = new Map());
    }
    if (!peers.has(peer) && peers.size >= MAX_HOLDERS) return "rejected";
    peers.set(peer, { ...m.floor, at: now });
    return "changed";
  }

  /**
   * The strictest hold on a session: one from a relay that has not seen the live stream start
   * (another epoch: it holds all of the stream), else the lowest seq.
   * @param tag The stream tag (hex).
   * @param liveEpoch The live stream's epoch, if any.
   * @returns The floor, or `undefined` when no relay holds.
   */
  strictest(tag: string, liveEpoch: Uint8Array | undefined): Floor | undefined {
    let floor: Hold | undefined;
    for (const hold of this.#holds.get(tag)?.values() ?? []) {
      if (liveEpoch === undefined || !equals(hold.epoch, liveEpoch)) return hold;
      if (floor === undefined || hold.seq < floor.seq) floor = hold;
    }
    return floor;
  }

  /**
   * Drops the holds of relays silent for longer than `maxAgeMs`.
   * @param now The time (ms).
   * @param maxAgeMs How long a hold lasts without a repeat.
   * @param expired Told each route whose holds changed, with the relays that went silent.
   */
  expire(now: number, maxAgeMs: number, expired: (tag: string, peers: string[]) => void): void {
    for (const [tag, peers] of this.#holds) {
      const gone: string[] = [];
      for (const [peer, hold] of peers) {
        if (now - hold.at <= maxAgeMs) continue;
        peers.delete(peer);
        gone.push(peer);
      }
      if (peers.size === 0) this.#holds.delete(tag);
      if (gone.length > 0) expired(tag, gone);
    }
  }

  /**
   * Relays holding a route.
   * @param tag The stream tag (hex).
   * @returns Their number.
   */
  holders(tag: string): number {
    return this.#holds.get(tag)?.size ?? 0;
  }

  /** The routes with holds, by tag (hex). */
  tags(): IterableIterator<string> {
    return this.#holds.keys();
  }

  /** Forgets every hold. */
  clear(): void {
    this.#holds.clear();
  }
}
