/**
 * @module
 * Producer slots (docs/SCALING.md): a session has one producer cluster-wide. A relay claims a
 * session's slot in a JetStream key-value bucket with compare-and-set before admitting a local
 * producer, refreshes what it holds (the bucket's max age expires the slots of a relay that
 * died), and deletes a slot when its stream ends. NATS trouble admits producers locally and
 * claims their slots when NATS is back.
 */

import { equals, toHex } from "../../bytes.ts";
import { RelayError } from "../../errors.ts";
import type { Logger } from "../log.ts";
import type { RelaySession } from "../session.ts";
import { isWrongSeq, type Kv } from "./nats.ts";

interface Held {
  /** KV revision of our entry; 0 while unclaimed (NATS was down when the producer joined). */
  revision: number;
  /** When it was claimed (ms). */
  readonly since: number;
}

/** The producer slots this relay holds. */
export class ProducerSlots {
  readonly #kv: Kv;
  readonly #id: Uint8Array;
  readonly #log: Logger;
  readonly #connected: () => boolean;
  readonly #held = new Map<RelaySession, Held>();
  /** Producer joins refused because another relay holds the slot (or slots lost to one). */
  conflicts = 0;

  /**
   * @param kv The slot bucket.
   * @param id This relay's id (the value of its entries).
   * @param log The relay's logger.
   * @param connected Whether NATS is reachable now.
   */
  constructor(kv: Kv, id: Uint8Array, log: Logger, connected: () => boolean) {
    this.#kv = kv;
    this.#id = id;
    this.#log = log;
    this.#connected = connected;
  }

  /** Slots held. */
  get size(): number {
    return this.#held.size;
  }

  /**
   * Claims the session's producer slot cluster-wide before a local producer joins.
   * @param session The session.
   * @returns Nothing when the producer may join; a `producer-exists` error when another
   *   relay holds the slot.
   */
  async claim(session: RelaySession): Promise<RelayError | undefined> {
    const kv = this.#kv;
    if (!this.#connected()) {
      this.#log.warn("cluster.claim_deferred", { route: session.name, reason: "nats down" });
      this.#held.set(session, { revision: 0, since: Date.now() });
      return undefined;
    }
    const key = keyOf(session);
    try {
      const revision = await kv.create(key, this.#id);
      this.#held.set(session, { revision, since: Date.now() });
      return undefined;
    } catch (e) {
      if (!isWrongSeq(e)) return this.#claimFailed(session, e);
    }
    // Taken: by this relay (a producer rejoining here), or by another.
    try {
      const entry = await kv.get(key);
      if (entry !== null && entry.operation === "PUT" && !equals(entry.value, this.#id)) {
        this.conflicts++;
        this.#log.info("cluster.slot_taken", { route: session.name, holder: toHex(entry.value) });
        return new RelayError(
          "producer-exists",
          "this session has a producer on another relay of the cluster",
        );
      }
      const revision = entry === null || entry.operation !== "PUT"
        ? await kv.create(key, this.#id)
        : await kv.update(key, this.#id, entry.revision);
      this.#held.set(session, { revision, since: Date.now() });
      return undefined;
    } catch (e) {
      if (isWrongSeq(e)) {
        this.conflicts++;
        return new RelayError("producer-exists", "another relay claimed the producer slot first");
      }
      return this.#claimFailed(session, e);
    }
  }

  #claimFailed(session: RelaySession, e: unknown): undefined {
    // NATS trouble is not the producer's fault: admit it locally, claim when NATS is back.
    this.#log.warn("cluster.claim_deferred", { route: session.name, error: String(e) });
    this.#held.set(session, { revision: 0, since: Date.now() });
    return undefined;
  }

  /**
   * Gives up the session's slot, if held.
   * @param session The session.
   */
  release(session: RelaySession): void {
    const h = this.#held.get(session);
    if (h === undefined) return;
    this.#held.delete(session);
    if (h.revision > 0 && this.#connected()) {
      this.#kv.delete(keyOf(session), { previousSeq: h.revision }).catch((e) =>
        this.#log.debug("cluster.release_failed", { route: session.name, error: String(e) })
      );
    }
  }

  /** Gives up every slot (the relay is leaving), so producers can move at once. */
  async releaseAll(): Promise<void> {
    const releases = [...this.#held].map(([s, h]) =>
      h.revision > 0 && this.#connected()
        ? this.#kv.delete(keyOf(s), { previousSeq: h.revision }).catch(() => {})
        : undefined
    );
    this.#held.clear();
    await Promise.all(releases);
  }

  /** Keeps held slots alive; claims those admitted while NATS was down. */
  async refresh(): Promise<void> {
    const kv = this.#kv;
    if (!this.#connected()) return;
    for (const [session, h] of [...this.#held]) {
      const key = keyOf(session);
      const live = session.localProducer || (session.origin === "local" && session.inGrace);
      if (!live && Date.now() - h.since > 1000) {
        // Claimed for a producer whose connection closed before it joined.
        this.release(session);
        continue;
      }
      try {
        h.revision = h.revision > 0
          ? await kv.update(key, this.#id, h.revision)
          : await kv.create(key, this.#id);
      } catch (e) {
        if (!isWrongSeq(e)) continue; // NATS trouble: next round
        const entry = await kv.get(key).catch(() => null);
        if (entry !== null && entry.operation === "PUT" && equals(entry.value, this.#id)) {
          h.revision = entry.revision;
        } else if (entry === null || entry.operation !== "PUT") {
          h.revision = await kv.create(key, this.#id).catch(() => 0);
        } else {
          // Our entry expired (NATS was unreachable longer than the TTL) and another relay took
          // it: two producers. Keep serving the local one; operators see it in the log/metrics.
          this.conflicts++;
          this.#log.error("cluster.slot_lost", {
            route: session.name,
            holder: toHex(entry.value),
          });
          this.#held.delete(session);
        }
      }
    }
  }
}

/** A session's key in the slot bucket: its stream tag in hex. */
function keyOf(session: RelaySession): string {
  return toHex(session.tag);
}
