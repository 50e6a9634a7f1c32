/**
 * @module
 * The derivation vector also printed in docs/PROTOCOL.md §7 (the data key is hydra/2's,
 * generation 0, key index 0): a fixed session, epoch,
 * frame and join claim with the outputs every implementation must reproduce.
 */

import { Session } from "../../src/protocol/session.ts";

/** The vector's fields. */
export interface Kat {
  readonly session: Session;
  readonly token: string;
  readonly routeId: string;
  readonly streamTag: string;
  readonly epoch: Uint8Array;
  readonly dataKey: string;
  readonly frame: string;
  readonly proof: string;
}

export const KAT: Kat = {
  session: new Session(Uint8Array.from({ length: 64 }, (_, i) => i), new Uint8Array(32).fill(0x42)),
  token:
    "hydra1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0-P0JCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCL5PMlw",
  routeId: "65902fedd2693cd38d44d6f9693419821271b061b08829d31a0b52bf9a3c31e3",
  streamTag: "6266ab4f09d4c0b1",
  epoch: Uint8Array.from({ length: 16 }, (_, i) => 0xe0 + i),
  dataKey: "42f23d8faf01ae5feb60f06d646582307bbc77fac326e71db3f89574c8854fb7",
  /** seq 7, flags END, plaintext "hello". */
  frame: "0000002603016266ab4f09d4c0b10000000000000007aac5de2b6d5943adbeed1e8f9bd7b302e393431d81",
  /** handshake hash 0x11 × 32, role consumer, options 01 02 03. */
  proof:
    "b762d1cdd5844486143a8946f72886c693083ae33ce5ca20e8da4ed6201a05a86d381d54980fb5983d3426326524cddeb47def7dfd473c0e7ac3c5a7d5e9380e",
};
