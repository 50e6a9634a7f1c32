import assert from "node:assert/strict";
import { test } from "node:test";
import { concat, toHex } from "../../src/bytes.ts";
import { nobleCrypto } from "../../src/crypto/noble.ts";
import type { CryptoProvider, Signer } from "../../src/crypto/types.ts";
import {
  SEGMENT_MAX_FRAMES,
  SegmentVerifier,
  SegmentWriter,
  SignatureCache,
  trailerCount,
  trailerLength,
  trailerStart,
} from "../../src/protocol/segment.ts";
import { providers } from "../crypto/_providers.ts";
import { KAT } from "./_kat.ts";

/** Bytes a frame keeps before its trailer in these tests (any fixed minimum will do). */
const MIN = 38;

/** docs/PROTOCOL.md §8 (hydra/2 draft): a two-frame segment of the hydra/1 vector's session. */
const V = {
  hashA: "5faa4eec3611556812c2d74b437c8c49add3f910f10063d801441f7d75cd5e3b",
  trailer:
    "5faa4eec3611556812c2d74b437c8c49add3f910f10063d801441f7d75cd5e3b0002487eb9a2ab38872aeb2a72ef6a8829965b4439b707c2b2bec48239a2e0b280dd6e0105658807b60ea2f1bca05991e53f8d8a8284dbfa8a806a2dd47171621b09",
};
const frameA = Uint8Array.from({ length: 40 }, (_, i) => i);
const headB = Uint8Array.from({ length: 50 }, (_, i) => 0x80 + i);

/** A stream of `n` random frames from seq 0, in segments closing after the given counts. */
async function stream(
  c: CryptoProvider,
  signer: Signer,
  epoch: Uint8Array,
  sizes: number[],
): Promise<{ frame: Uint8Array; seq: bigint; signed: boolean }[]> {
  const w = new SegmentWriter(c, signer, epoch);
  const out: { frame: Uint8Array; seq: bigint; signed: boolean }[] = [];
  let seq = 0n;
  for (const size of sizes) {
    for (let i = 0; i < size - 1; i++) {
      const f = c.randomBytes(MIN + (Number(seq) % 50));
      w.add(f, seq);
      out.push({ frame: f, seq: seq++, signed: false });
    }
    const head = c.randomBytes(MIN + 3);
    out.push({ frame: concat([head, await w.close(head, seq)]), seq: seq++, signed: true });
  }
  return out;
}

/** Feeds frames to a verifier; the number of segments verified, or the first failure. */
async function feed(
  v: SegmentVerifier,
  frames: { frame: Uint8Array; seq: bigint; signed: boolean }[],
): Promise<number | "refused"> {
  let ok = 0;
  for (const f of frames) {
    if (!f.signed) {
      if (!v.add(f.frame, f.seq)) return "refused";
    } else if (await v.close(f.frame, f.seq, MIN)) ok++;
    else return "refused";
  }
  return ok;
}

for (const c of providers()) {
  test(`SegmentWriter (${c.name}) produces the documented trailer, which SegmentVerifier accepts`, async () => {
    const { signer } = await KAT.session.keys(c);
    const w = new SegmentWriter(c, signer, KAT.epoch);
    w.add(frameA, 7n);
    assert.equal(w.trailerLength(), trailerLength(2));
    const trailer = await w.close(headB, 8n);
    assert.equal(toHex(trailer), V.trailer);
    assert.equal(toHex(c.sha256(frameA)), V.hashA);
    const v = new SegmentVerifier(c, signer.publicKey, KAT.epoch, new SignatureCache());
    assert.equal(v.add(frameA, 7n), true);
    assert.equal(await v.close(concat([headB, trailer]), 8n, MIN), true);
    // A consumer that joined at the signed frame verifies it alone (a suffix of the segment).
    const late = new SegmentVerifier(c, signer.publicKey, KAT.epoch, new SignatureCache());
    assert.equal(await late.close(concat([headB, trailer]), 8n, MIN), true);
  });
}

test("SegmentVerifier accepts every suffix of every segment, and nothing altered", async () => {
  const c = nobleCrypto;
  const signer = await c.ed25519(c.randomBytes(32));
  const epoch = c.randomBytes(16);
  const frames = await stream(c, signer, epoch, [1, 5, 2, 9]);
  for (let start = 0; start < frames.length; start++) {
    const v = new SegmentVerifier(c, signer.publicKey, epoch, new SignatureCache());
    const signedAfter = frames.slice(start).filter((f) => f.signed).length;
    assert.equal(await feed(v, frames.slice(start)), signedAfter, `joined at ${start}`);
  }
  // Any single flipped byte in any frame is caught by the segment that covers it.
  for (let i = 0; i < frames.length; i++) {
    for (const at of [0, 5, frames[i]!.frame.length - 1]) {
      const bent = frames.map((f) => ({ ...f, frame: f.frame.slice() }));
      bent[i]!.frame[at]! ^= 0x01;
      const v = new SegmentVerifier(c, signer.publicKey, epoch, new SignatureCache());
      assert.equal(await feed(v, bent), "refused", `frame ${i} byte ${at}`);
    }
  }
});

test("SegmentVerifier refuses forgery by a reader, reordering, dropping, splicing and over-long runs", async () => {
  const c = nobleCrypto;
  const writer = await c.ed25519(c.randomBytes(32));
  const reader = await c.ed25519(c.randomBytes(32)); // knows the data key, not the writer key
  const epoch = c.randomBytes(16);
  const fresh = () => new SegmentVerifier(c, writer.publicKey, epoch, new SignatureCache());
  const frames = await stream(c, writer, epoch, [4]);
  // A reader signing a segment of its own making.
  const fake = await stream(c, reader, epoch, [4]);
  assert.equal(await feed(fresh(), fake), "refused", "signed by a reader");
  // Two frames swapped (seqs kept in place: only their content moved).
  const swapped = [frames[1]!, frames[0]!, frames[2]!, frames[3]!].map((f, i) => ({
    ...f,
    seq: BigInt(i),
  }));
  assert.equal(await feed(fresh(), swapped), "refused", "reordered");
  // A frame dropped inside the segment (the relay hides it; seqs renumbered to look whole).
  const dropped = [frames[0]!, frames[2]!, frames[3]!].map((f, i) => ({
    ...f,
    seq: BigInt(i + 1),
  }));
  assert.equal(await feed(fresh(), dropped), "refused", "dropped");
  // A frame inserted.
  const extra = { frame: c.randomBytes(MIN + 2), seq: 0n, signed: false };
  const inserted = [extra, ...frames].map((f, i) => ({ ...f, seq: BigInt(i) }));
  assert.equal(await feed(fresh(), inserted), "refused", "inserted");
  // The same frames presented as another stream (epoch) or another session (route id).
  const otherEpoch = new SegmentVerifier(
    c,
    writer.publicKey,
    c.randomBytes(16),
    new SignatureCache(),
  );
  assert.equal(await feed(otherEpoch, frames), "refused", "another epoch");
  const otherRoute = new SegmentVerifier(c, reader.publicKey, epoch, new SignatureCache());
  assert.equal(await feed(otherRoute, frames), "refused", "another session");
  // A segment longer than any consumer holds.
  const v = fresh();
  for (let i = 0; i < SEGMENT_MAX_FRAMES - 1; i++) {
    assert.equal(v.add(frames[0]!.frame, BigInt(i)), true);
  }
  assert.equal(v.add(frames[0]!.frame, BigInt(SEGMENT_MAX_FRAMES)), false, "over-long");
  // A trailer naming frames before seq 0, and trailers that do not fit, are refused.
  const last = frames[3]!.frame;
  assert.equal(await fresh().close(last, 1n, MIN), false, "count reaching before seq 0");
  assert.equal(await fresh().close(last.subarray(0, 60), 3n, MIN), false, "cut trailer");
  assert.equal(trailerCount(new Uint8Array(MIN + 65), MIN), 0);
});

test("SegmentVerifier.discard hands back the frames a gap made unverifiable", async () => {
  const c = nobleCrypto;
  const writer = await c.ed25519(c.randomBytes(32));
  const epoch = c.randomBytes(16);
  const frames = await stream(c, writer, epoch, [6]);
  const v = new SegmentVerifier(c, writer.publicKey, epoch, new SignatureCache());
  v.add(frames[0]!.frame, 0n);
  v.add(frames[1]!.frame, 1n);
  // The relay skipped seqs 2-4 (policy drop): 0-1 can never be verified now.
  assert.equal(v.discard(), 0n);
  assert.equal(v.pending, 0);
  assert.equal(await v.close(frames[5]!.frame, 5n, MIN), true, "the rest of the segment verifies");
  assert.equal(v.discard(), undefined);
});

test("SignatureCache remembers a valid triple only: a valid signature with other bytes still fails", async () => {
  const c = nobleCrypto;
  const signer = await c.ed25519(c.randomBytes(32));
  const m = new TextEncoder().encode("segment");
  const sig = await signer.sign(m);
  const cache = new SignatureCache(2);
  assert.equal(await cache.verify(c, signer.publicKey, m, sig), true);
  assert.equal(await cache.verify(c, signer.publicKey, m, sig), true);
  assert.equal(
    await cache.verify(c, signer.publicKey, new TextEncoder().encode("other"), sig),
    false,
  );
  const other = await c.ed25519(c.randomBytes(32));
  assert.equal(await cache.verify(c, other.publicKey, m, sig), false);
  // Bounded: the oldest entries go, verification still answers right.
  for (let i = 0; i < 4; i++) {
    const mi = new Uint8Array([i]);
    assert.equal(await cache.verify(c, signer.publicKey, mi, await signer.sign(mi)), true);
  }
  assert.equal(await cache.verify(c, signer.publicKey, m, sig), true);
});

test("SignatureCache recalls a verdict only for the same bytes, route id and epoch", async () => {
  const c = nobleCrypto;
  const writer = await c.ed25519(c.randomBytes(32));
  const epoch = c.randomBytes(16);
  const [f] = await stream(c, writer, epoch, [1]);
  const cache = new SignatureCache();
  let verifies = 0;
  const counting: CryptoProvider = {
    ...c,
    ed25519Verify: (...a) => (verifies++, c.ed25519Verify(...a)),
  };
  const v = () => new SegmentVerifier(counting, writer.publicKey, epoch, cache);
  // Ten consumers of one process, the same signed frame: one verification.
  for (let i = 0; i < 10; i++) assert.equal(await v().close(f!.frame, 0n, MIN), true);
  assert.equal(verifies, 1);
  // One byte changed (its body, then its signature): not recalled, and refused.
  for (const at of [MIN - 1, f!.frame.length - 1]) {
    const bad = f!.frame.slice();
    bad[at]! ^= 1;
    assert.equal(await v().close(bad, 0n, MIN), false);
  }
  assert.equal(verifies, 3);
  // The same bytes in a stream of another epoch or route id: verified afresh, refused.
  const otherEpoch = new SegmentVerifier(counting, writer.publicKey, c.randomBytes(16), cache);
  assert.equal(await otherEpoch.close(f!.frame, 0n, MIN), false);
  const reader = await c.ed25519(c.randomBytes(32));
  const otherRoute = new SegmentVerifier(counting, reader.publicKey, epoch, cache);
  assert.equal(await otherRoute.close(f!.frame, 0n, MIN), false);
  assert.equal(verifies, 5);
  // A refused frame is remembered as refused, not as valid.
  const bad = f!.frame.slice();
  bad[MIN - 1]! ^= 1;
  assert.equal(await v().close(bad, 0n, MIN), false);
});

test("a settled check answers the next consumer with a plain boolean, a malformed trailer at once", async () => {
  const c = nobleCrypto;
  const writer = await c.ed25519(c.randomBytes(32));
  const epoch = c.randomBytes(16);
  const [f] = await stream(c, writer, epoch, [1]);
  const cache = new SignatureCache();
  const v = () => new SegmentVerifier(c, writer.publicKey, epoch, cache);
  // The first consumer starts the check: a promise.
  const first = v().close(f!.frame, 0n, MIN);
  assert.ok(first instanceof Promise);
  // While it runs, the others share it; once it settled they get its outcome as a value (the
  // consumers of a process receive a frame in later turns of the event loop).
  assert.equal(v().close(f!.frame, 0n, MIN), first);
  assert.equal(await first, true);
  await Promise.resolve();
  assert.equal(v().close(f!.frame, 0n, MIN), true);
  // A refused frame is remembered as false, never as true.
  const bad = f!.frame.slice();
  bad[MIN]! ^= 1;
  assert.equal(await v().close(bad, 0n, MIN), false);
  await Promise.resolve();
  assert.equal(v().close(bad, 0n, MIN), false);
  // Malformed trailers fail without a check.
  assert.equal(v().close(f!.frame.subarray(0, MIN + 60), 0n, MIN), false);
  // The trailer helpers: a one-frame segment's trailer is its last 66 bytes.
  assert.equal(trailerCount(f!.frame, MIN), 1);
  assert.equal(trailerStart(f!.frame, 1), f!.frame.length - 66);
  assert.equal(trailerCount(new Uint8Array(MIN + 65), MIN), 0);
  const huge = new Uint8Array(MIN + 66);
  huge[MIN + 0] = 0xff; // count 0xff00: over SEGMENT_MAX_FRAMES
  assert.equal(trailerCount(huge, MIN), 0);
});

test("SegmentWriter keeps frames in order and closes a full segment", async () => {
  const c = nobleCrypto;
  const w = new SegmentWriter(c, await c.ed25519(c.randomBytes(32)), c.randomBytes(16));
  w.add(frameA, 0n);
  assert.throws(() => w.add(frameA, 5n), /seq 5, expected 1/);
  for (let i = 1; i < SEGMENT_MAX_FRAMES - 1; i++) w.add(frameA, BigInt(i));
  assert.equal(w.full, true);
  assert.throws(() => w.add(frameA, BigInt(SEGMENT_MAX_FRAMES - 1)), /full/);
  assert.equal(w.frames, SEGMENT_MAX_FRAMES - 1);
  assert.equal(w.bytes, frameA.length * (SEGMENT_MAX_FRAMES - 1));
  const t = await w.close(headB, BigInt(SEGMENT_MAX_FRAMES - 1));
  assert.equal(t.length, trailerLength(SEGMENT_MAX_FRAMES));
  assert.equal(w.frames, 0);
  assert.throws(() => trailerLength(0), RangeError);
  assert.throws(() => trailerLength(SEGMENT_MAX_FRAMES + 1), RangeError);
});
