/**
 * PdqIndex against a brute-force model: random and clustered hashes
 * (near-duplicates at every distance 0..40, exact duplicates under several
 * ids), removals and replacements, many random queries at many distances,
 * through the bucket probe, the linear scan and the cost model's choice.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hammingDistance } from "../src/hashing/pdq.js";
import { PdqIndex, type PdqIndexStrategy, packHash } from "../src/hashing/pdq-index.js";
import { prng, randomHash } from "./support/seeded-random.js";

/** `hash` with exactly `bits` distinct bits flipped. */
function flip(hash: string, bits: number, rand: () => number): string {
  const digits = [...hash].map((d) => Number.parseInt(d, 16));
  const chosen = new Set<number>();
  while (chosen.size < bits) chosen.add(Math.floor(rand() * 256));
  for (const bit of chosen) digits[bit >> 2] = (digits[bit >> 2] as number) ^ (1 << (bit & 3));
  return digits.map((d) => d.toString(16)).join("");
}

const POPCOUNT8 = Uint8Array.from(
  { length: 256 },
  (_, b) => [...b.toString(2)].filter((c) => c === "1").length,
);
const bytesOf = (hash: string) => Uint8Array.from(Buffer.from(hash, "hex"));

/** The model's distance: bytes of the hex, XOR, popcount (checked against hammingDistance below). */
function distance(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let k = 0; k < 32; k++) sum += POPCOUNT8[(a[k] as number) ^ (b[k] as number)] as number;
  return sum;
}

const bytesCache = new Map<string, Uint8Array>();
function cachedBytes(hash: string): Uint8Array {
  const cached = bytesCache.get(hash);
  if (cached) return cached;
  const bytes = bytesOf(hash);
  bytesCache.set(hash, bytes);
  return bytes;
}

function bruteForce(model: Map<number, string>, query: string, d: number, limit: number) {
  const q = bytesOf(query);
  const rows: Array<{ id: number; distance: number }> = [];
  for (const [id, hash] of model) {
    const found = distance(q, cachedBytes(hash));
    if (found <= d) rows.push({ id, distance: found });
  }
  rows.sort((a, b) => a.distance - b.distance || a.id - b.id);
  return rows.slice(0, limit);
}

const DISTANCES = [0, 1, 5, 15, 16, 17, 31, 32, 33, 40, 47, 48, 63, 64, 80, 256];

function runModel(strategy: PdqIndexStrategy, seed: number): void {
  const rand = prng(seed);
  const index = new PdqIndex({ strategy });
  const model = new Map<number, string>();
  const put = (id: number, hash: string) => {
    index.add(id, hash);
    model.set(id, hash);
  };
  let nextId = 1;
  const centres: string[] = [];
  for (let n = 0; n < 1500; n++) put(nextId++, randomHash(rand));
  for (let c = 0; c < 40; c++) {
    const centre = randomHash(rand);
    centres.push(centre);
    for (let distance = 0; distance <= 40; distance++) put(nextId++, flip(centre, distance, rand));
    put(nextId++, centre); // an exact duplicate under another id
  }
  // Ids far apart, large and negative are opaque too.
  put(2 ** 40, centres[0] as string);
  put(-7, centres[1] as string);
  const check = (round: number) => {
    assert.equal(index.size, model.size);
    for (let q = 0; q < 150; q++) {
      const pick = rand();
      const stored = [...model.values()][Math.floor(rand() * model.size)] as string;
      const query =
        pick < 0.3
          ? randomHash(rand)
          : pick < 0.6
            ? flip(
                centres[Math.floor(rand() * centres.length)] as string,
                Math.floor(rand() * 41),
                rand,
              )
            : flip(stored, Math.floor(rand() * 41), rand);
      const d = DISTANCES[Math.floor(rand() * DISTANCES.length)] as number;
      const limit = rand() < 0.2 ? Math.floor(rand() * 10) : Number.POSITIVE_INFINITY;
      const expected = bruteForce(model, query, d, limit);
      if (q === 0)
        assert.equal(distance(bytesOf(query), bytesOf(stored)), hammingDistance(query, stored));
      assert.deepEqual(index.search(query, d, limit), expected, `round ${round} query ${q} d=${d}`);
    }
  };
  check(0);
  for (let round = 1; round <= 4; round++) {
    const ids = [...model.keys()];
    for (let n = 0; n < 400; n++) {
      const id = ids[Math.floor(rand() * ids.length)] as number;
      if (rand() < 0.6) {
        index.remove(id);
        model.delete(id);
      } else {
        // Replace with a neighbour of a centre (re-uses freed slots too).
        put(
          id,
          flip(
            centres[Math.floor(rand() * centres.length)] as string,
            Math.floor(rand() * 41),
            rand,
          ),
        );
      }
      assert.equal(index.has(id), model.has(id));
    }
    for (let n = 0; n < 200; n++)
      put(nextId++, flip(centres[n % centres.length] as string, n % 41, rand));
    check(round);
  }
}

describe("PdqIndex against a brute-force model", () => {
  for (const strategy of ["probe", "scan", "auto"] as const) {
    it(`${strategy}: random and clustered hashes, removals, replacements`, () => {
      runModel(strategy, 16 + strategy.length);
    });
  }

  it("an empty index, unknown removals, bad input", () => {
    const index = new PdqIndex();
    const hash = "ab".repeat(32);
    assert.deepEqual(index.search(hash, 31), []);
    index.remove(5);
    assert.equal(index.size, 0);
    index.add(5, hash);
    index.add(5, hash);
    assert.equal(index.size, 1);
    assert.deepEqual(index.search(hash, 0), [{ id: 5, distance: 0 }]);
    assert.deepEqual(index.search(hash, 0, 0), []);
    assert.throws(() => index.add(6, "AB".repeat(32)), RangeError);
    assert.throws(() => index.add(1.5, hash), RangeError);
    assert.throws(() => index.search("zz", 31), RangeError);
    assert.throws(() => index.search(hash, -1), RangeError);
    assert.throws(() => index.search(hash, 2.5), RangeError);
    assert.equal(index.has(6), false);
  });

  it("the id table: churn of sequential and scattered ids", () => {
    const rand = prng(99);
    {
      const index = new PdqIndex();
      const model = new Map<number, string>();
      const ids = [
        ...Array.from({ length: 20_000 }, (_, i) => i + 1),
        ...Array.from({ length: 2_000 }, () => Math.floor(rand() * 2 ** 52) - 2 ** 51),
      ];
      for (const id of ids) {
        const hash = randomHash(rand);
        index.add(id, hash);
        model.set(id, hash);
      }
      for (const [n, id] of ids.entries()) {
        if (n % 3 === 0) {
          index.remove(id);
          model.delete(id);
        }
      }
      assert.equal(index.size, model.size);
      for (const id of ids) assert.equal(index.has(id), model.has(id), `id ${id}`);
      // Every stored id still finds its own hash (the slot the table names is right).
      for (const [id, hash] of [...model].slice(0, 2_000)) {
        assert.ok(
          index.search(hash, 0).some((m) => m.id === id),
          `id ${id}`,
        );
      }
      for (const id of ids) index.remove(id);
      assert.equal(index.size, 0);
      assert.deepEqual(index.search(randomHash(rand), 256), []);
    }
  });

  it("packs the hex most significant digit first", () => {
    const words = packHash(`${"0".repeat(63)}1`);
    assert.equal(words[0], 1);
    assert.equal(packHash(`8${"0".repeat(63)}`)[7], 0x80000000);
  });
});
