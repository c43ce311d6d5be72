/**
 * PdqIndex grows in bounded steps (docs/trust-and-safety.md "The similarity
 * index"): loading many hashes never allocates an array sized by the whole
 * index (slots come in pages of PAGE_SLOTS) nor rehashes more than a shard
 * of the id table at once, so the build's event-loop turns stay short.
 * Observed structurally through `steps`, not timed; and the answers across
 * many pages, with removals and reused slots, equal a brute-force model.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PAGE_SLOTS, PdqIndex, packHash } from "../src/hashing/pdq-index.js";
import { prng, randomHash } from "./support/seeded-random.js";

/** `hash` with `bits` random bits flipped (possibly fewer distinct). */
function near(hash: string, bits: number, rand: () => number): string {
  const digits = [...hash].map((d) => Number.parseInt(d, 16));
  for (let i = 0; i < bits; i++) {
    const bit = Math.floor(rand() * 256);
    digits[bit >> 2] = (digits[bit >> 2] as number) ^ (1 << (bit & 3));
  }
  return digits.map((d) => d.toString(16)).join("");
}

/** An index of `n` hashes (ids 1..n, 1 in 10 a near copy of an earlier one). */
function load(n: number, rand: () => number, index = new PdqIndex()) {
  const model = new Map<number, string>();
  for (let id = 1; id <= n; id++) {
    const earlier = model.get(1 + Math.floor(rand() * (id - 1)));
    const hash = id % 10 === 0 && earlier ? near(earlier, 12, rand) : randomHash(rand);
    index.add(id, hash);
    model.set(id, hash);
  }
  return { index, model };
}

/** The Hamming distance of two packed hashes (the model's own count, bit by bit). */
function distance(a: Uint32Array, b: Uint32Array): number {
  let n = 0;
  for (let w = 0; w < 8; w++) {
    for (let x = ((a[w] as number) ^ (b[w] as number)) >>> 0; x !== 0; x >>>= 1) n += x & 1;
  }
  return n;
}

/** The bytes of one page's largest array (16 links of 4 bytes per slot). */
const PAGE_LINK_BYTES = PAGE_SLOTS * 16 * 4;

describe("PdqIndex in bounded steps", () => {
  it("allocates at most a page's array at a time, whatever the size", () => {
    const one = load(PAGE_SLOTS - 1, prng(1)).index.steps;
    const many = load(3 * PAGE_SLOTS + 123, prng(2)).index.steps;
    assert.ok(
      many.largestAllocationBytes <= PAGE_LINK_BYTES,
      `largest allocation ${many.largestAllocationBytes} B`,
    );
    assert.equal(many.largestAllocationBytes, one.largestAllocationBytes, "independent of size");
  });

  it("rehashes a small part of the id table at a time", () => {
    const n = 3 * PAGE_SLOTS;
    const { index } = load(n, prng(3));
    assert.equal(index.size, n);
    // 64 shards: each holds ~n/64 ids; a rehash moves one shard.
    assert.ok(index.steps.largestRehash <= n / 16, `largest rehash ${index.steps.largestRehash}`);
    assert.ok(index.steps.largestRehash > 0);
  });

  it("answers across pages as a brute-force model, with removals and reused slots", () => {
    const rand = prng(4);
    const { index, model } = load(2 * PAGE_SLOTS + 77, rand);
    // Remove a third (across every page), then add new ids into the freed slots.
    for (const id of [...model.keys()]) {
      if (id % 3 === 0) {
        index.remove(id);
        model.delete(id);
      }
    }
    const stored = [...model.values()];
    for (let k = 0; k < PAGE_SLOTS / 2; k++) {
      const id = 10_000_000 + k * 7919;
      const hash =
        k % 4 === 0 ? near(stored[k % stored.length] as string, 5, rand) : randomHash(rand);
      index.add(id, hash);
      model.set(id, hash);
    }
    assert.equal(index.size, model.size);
    const scan = new PdqIndex({ strategy: "scan" });
    for (const [id, hash] of model) scan.add(id, hash);
    const packed = [...model].map(([id, hash]) => ({ id, words: packHash(hash) }));
    for (let q = 0; q < 15; q++) {
      const base = [...model.values()][Math.floor(rand() * model.size)] as string;
      const query = q % 2 === 0 ? near(base, 6, rand) : randomHash(rand);
      const d = [0, 8, 16, 31, 47][q % 5] as number;
      const words = packHash(query);
      const expected = packed
        .map((m) => ({ id: m.id, distance: distance(words, m.words) }))
        .filter((m) => m.distance <= d)
        .sort((a, b) => a.distance - b.distance || a.id - b.id);
      assert.deepEqual(index.search(query, d), expected, `auto, query ${q}`);
      assert.deepEqual(scan.search(query, d), expected, `scan, query ${q}`);
    }
    for (const id of [...model.keys()].slice(0, 5_000)) {
      assert.ok(index.has(id));
      index.remove(id);
      assert.equal(index.has(id), false);
    }
    assert.equal(index.size, model.size - 5_000);
  });
});
