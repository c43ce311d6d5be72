/**
 * An in-memory similarity index over PDQ hashes: "which stored hashes lie
 * within Hamming distance d of this one?".
 *
 * Design note — multi-index hashing (Norouzi, Punjani & Fleet, 2012):
 * - A hash is cut into 16 chunks of 16 bits (chunk c = the 16-bit word c of
 *   the hash, i.e. hex digits 60−4c .. 63−4c). By pigeonhole, two hashes
 *   within distance d agree to within r = floor(d / 16) bits on at least one
 *   chunk. So a query looks up, in each chunk's table, every 16-bit key within
 *   r bits of its own chunk (Σ_{t≤r} C(16, t) keys: 17 for d ≤ 31), and
 *   verifies each candidate by its full distance.
 * - Each chunk's table is 65,536 bucket heads plus one "next" link per stored
 *   hash (singly linked lists through the slots), so a hash costs 32 bytes of
 *   packed words + 64 bytes of links + its id: about 110 bytes, and no
 *   per-bucket objects at all.
 * - When the enumeration would cost more than reading everything (large d,
 *   or few hashes), the query scans the packed words instead. Both paths
 *   return exactly the same rows.
 * - Removal unlinks the slot from its 16 buckets (a walk of each bucket) and
 *   puts it on a free list for reuse.
 *
 * Bounded steps (loading 10⁶ hashes must not hold the event loop): slots
 * live in pages of PAGE_SLOTS, allocated one at a time as slots are handed
 * out, so the index never allocates, zeroes or copies an array sized by its
 * whole content; the id → slot table is 64 shards (by the id's hash) that
 * each double on their own, so a rehash moves ~1/64 of the ids. Links and
 * table entries hold slot + 1 (0: none), so fresh arrays need no fill.
 */
/** One search result: the caller's id and the Hamming distance to the query. */
export interface PdqMatch {
  readonly id: number;
  readonly distance: number;
}

/** `PdqIndex.steps`: the largest single steps the index has taken (tests, benchmarks). */
export interface PdqIndexSteps {
  /** Bytes of the largest typed array it allocated. */
  readonly largestAllocationBytes: number;
  /** Ids moved by the largest single rehash of an id-table shard. */
  readonly largestRehash: number;
}

const CHUNKS = 16;
const KEYS = 1 << 16;
/** Slots per page: a page's largest array (the links) is 16 × 4 B × 32 Ki = 2 MiB. */
const PAGE_SHIFT = 15;
export const PAGE_SLOTS = 1 << PAGE_SHIFT;
const PAGE_MASK = PAGE_SLOTS - 1;
/** Id-table shards (by the top bits of the id's hash) and a shard's first size. */
const SHARD_SHIFT = 26;
const SHARDS = 1 << (32 - SHARD_SHIFT);
const SHARD_MIN = 64;

/** WITHIN[r]: how many 16-bit masks have popcount ≤ r (Σ_{t≤r} C(16, t)). */
const WITHIN = (() => {
  const within = new Int32Array(17);
  let binomial = 1; // C(16, t)
  for (let t = 0; t <= 16; t++) {
    within[t] = (t > 0 ? (within[t - 1] as number) : 0) + binomial;
    binomial = (binomial * (16 - t)) / (t + 1);
  }
  return within;
})();

/**
 * The 16-bit masks of popcount ≤ r, by popcount (ascending within one),
 * generated on first need per radius (Gosper's hack enumerates each
 * popcount's masks): a d ≤ 31 query needs 17 of them, so loading the module
 * does not pay for all 65,536 (that cost ~20–80 ms of CPU at import).
 */
let masks = new Uint16Array(1); // popcount 0: the mask 0
function masksWithin(r: number): Uint16Array {
  for (let k = 1; k <= r && masks.length < (WITHIN[r] as number); k++) {
    if (masks.length >= (WITHIN[k] as number)) continue;
    const grown = new Uint16Array(WITHIN[k] as number);
    grown.set(masks);
    let at = WITHIN[k - 1] as number;
    for (let v = (1 << k) - 1; v < KEYS; ) {
      grown[at++] = v;
      const low = v & -v;
      const ripple = v + low;
      v = Math.floor(((ripple ^ v) >>> 2) / low) | ripple;
    }
    masks = grown;
  }
  return masks;
}

/**
 * How `search` finds candidates: `auto` (the default) picks by the cost
 * model; `probe` and `scan` force one path (for tests and benchmarks; both
 * return the same rows).
 */
export type PdqIndexStrategy = "auto" | "probe" | "scan";

export class PdqIndex {
  readonly #strategy: PdqIndexStrategy;
  // Per page of PAGE_SLOTS slots:
  readonly #words: Uint32Array[] = []; // 8 words per slot
  readonly #ids: Float64Array[] = []; // the caller's id per slot
  readonly #live: Uint8Array[] = [];
  readonly #next: Int32Array[] = []; // CHUNKS links per slot (slot + 1; 0: end)
  readonly #seen: Uint32Array[] = []; // query stamp per slot (dedupes candidates)
  #stamp = 0;
  readonly #heads: Int32Array[]; // per chunk, per key: the first slot + 1 (0: empty)
  readonly #tables: Int32Array[]; // id → slot + 1 (0: empty), open addressing, per shard
  readonly #shardCounts = new Int32Array(SHARDS);
  #count = 0;
  #free: number[] = [];
  #used = 0; // slots ever handed out (the high-water mark)
  #largestAllocation = 0;
  #largestRehash = 0;

  constructor(options: { readonly strategy?: PdqIndexStrategy } = {}) {
    this.#strategy = options.strategy ?? "auto";
    this.#heads = Array.from({ length: CHUNKS }, () => this.#int32(KEYS));
    this.#tables = Array.from({ length: SHARDS }, () => this.#int32(SHARD_MIN));
  }

  /** The number of stored hashes. */
  get size(): number {
    return this.#count;
  }

  /** The largest single allocation and rehash so far: bounded whatever the size. */
  get steps(): PdqIndexSteps {
    return {
      largestAllocationBytes: this.#largestAllocation,
      largestRehash: this.#largestRehash,
    };
  }

  /** True when `id` is stored. */
  has(id: number): boolean {
    return Number.isSafeInteger(id) && this.#slotOf(id) !== -1;
  }

  /** Stores `hash` under `id`, replacing the hash `id` had. Throws RangeError on a malformed hash or id. */
  add(id: number, hash: string): void {
    if (!Number.isSafeInteger(id)) throw new RangeError("PdqIndex ids are safe integers");
    const words = packHash(hash);
    this.remove(id);
    const slot = this.#free.pop() ?? this.#newSlot();
    const page = slot >>> PAGE_SHIFT;
    const at = slot & PAGE_MASK;
    (this.#words[page] as Uint32Array).set(words, at * 8);
    (this.#ids[page] as Float64Array)[at] = id;
    (this.#live[page] as Uint8Array)[at] = 1;
    this.#insertId(slot, id);
    const next = this.#next[page] as Int32Array;
    for (let c = 0; c < CHUNKS; c++) {
      const key = chunkOf(words, c);
      const heads = this.#heads[c] as Int32Array;
      next[at * CHUNKS + c] = heads[key] as number;
      heads[key] = slot + 1;
    }
  }

  /** Forgets `id` (nothing happens when it is not stored). */
  remove(id: number): void {
    if (!Number.isSafeInteger(id)) return;
    const slot = this.#deleteId(id);
    if (slot === -1) return;
    const page = slot >>> PAGE_SHIFT;
    const at = slot & PAGE_MASK;
    const own = this.#next[page] as Int32Array;
    const words = (this.#words[page] as Uint32Array).subarray(at * 8, at * 8 + 8);
    for (let c = 0; c < CHUNKS; c++) {
      const key = chunkOf(words, c);
      const heads = this.#heads[c] as Int32Array;
      const after = own[at * CHUNKS + c] as number;
      let link = heads[key] as number;
      if (link === slot + 1) {
        heads[key] = after;
        continue;
      }
      while (link !== 0) {
        const prev = link - 1;
        const links = this.#next[prev >>> PAGE_SHIFT] as Int32Array;
        const i = (prev & PAGE_MASK) * CHUNKS + c;
        const following = links[i] as number;
        if (following === slot + 1) {
          links[i] = after;
          break;
        }
        link = following;
      }
    }
    (this.#live[page] as Uint8Array)[at] = 0;
    this.#free.push(slot);
  }

  /**
   * The stored hashes within `maxDistance` (0–256) of `hash`, sorted by
   * distance then id, at most `limit` of them. Throws RangeError on a
   * malformed hash, distance or limit.
   */
  search(hash: string, maxDistance: number, limit = Number.POSITIVE_INFINITY): PdqMatch[] {
    const query = packHash(hash);
    if (!Number.isInteger(maxDistance) || maxDistance < 0) {
      throw new RangeError("maxDistance must be a non-negative integer");
    }
    if (!(limit >= 0)) throw new RangeError("limit must be non-negative");
    const d = Math.min(maxDistance, 256);
    const found = this.#prefersScan(d) ? this.#scan(query, d) : this.#probe(query, d);
    found.sort((a, b) => a.distance - b.distance || a.id - b.id);
    return found.length > limit ? found.slice(0, limit) : found;
  }

  /**
   * The cost model, in units of "one hash read by the scan" (sequential,
   * ~20 ns): a bucket probe ~4, a candidate ~32 (a linked-list hop, a stamp
   * and the candidate's words are cache misses; measured ratio ~33 on the
   * bench machine, bench/README.md "PDQ"). Candidates are estimated as for
   * uniform hashes: probes × size / 65,536.
   */
  #prefersScan(d: number): boolean {
    if (this.#strategy !== "auto") return this.#strategy === "scan";
    const radius = d >> 4;
    if (radius >= 16) return true;
    const probes = CHUNKS * (WITHIN[radius] as number);
    const candidates = (probes * this.size) / KEYS;
    return 4 * probes + 32 * candidates >= this.#used;
  }

  #probe(query: Uint32Array, d: number): PdqMatch[] {
    const stamp = this.#nextStamp();
    const radius = Math.min(d >> 4, 16);
    const count = WITHIN[radius] as number;
    const flips = masksWithin(radius);
    const found: PdqMatch[] = [];
    const words = this.#words;
    const next = this.#next;
    const seen = this.#seen;
    for (let c = 0; c < CHUNKS; c++) {
      const key = chunkOf(query, c);
      const heads = this.#heads[c] as Int32Array;
      for (let m = 0; m < count; m++) {
        for (let link = heads[key ^ (flips[m] as number)] as number; link !== 0; ) {
          const page = (link - 1) >>> PAGE_SHIFT;
          const at = (link - 1) & PAGE_MASK;
          const stamps = seen[page] as Uint32Array;
          if (stamps[at] !== stamp) {
            stamps[at] = stamp;
            const distance = distanceAt(query, words[page] as Uint32Array, at * 8, d);
            if (distance <= d) {
              found.push({ id: (this.#ids[page] as Float64Array)[at] as number, distance });
            }
          }
          link = (next[page] as Int32Array)[at * CHUNKS + c] as number;
        }
      }
    }
    return found;
  }

  #scan(query: Uint32Array, d: number): PdqMatch[] {
    const found: PdqMatch[] = [];
    for (let page = 0; page < this.#words.length; page++) {
      const words = this.#words[page] as Uint32Array;
      const live = this.#live[page] as Uint8Array;
      const ids = this.#ids[page] as Float64Array;
      const end = Math.min(PAGE_SLOTS, this.#used - page * PAGE_SLOTS);
      for (let at = 0; at < end; at++) {
        if (live[at] === 0) continue;
        const distance = distanceAt(query, words, at * 8, d);
        if (distance <= d) found.push({ id: ids[at] as number, distance });
      }
    }
    return found;
  }

  #idOf(slot: number): number {
    return (this.#ids[slot >>> PAGE_SHIFT] as Float64Array)[slot & PAGE_MASK] as number;
  }

  /** The slot holding `id`, or -1. */
  #slotOf(id: number): number {
    const h = hashId(id);
    const table = this.#tables[h >>> SHARD_SHIFT] as Int32Array;
    const mask = table.length - 1;
    for (let at = h & mask; ; at = (at + 1) & mask) {
      const entry = table[at] as number;
      if (entry === 0) return -1;
      if (this.#idOf(entry - 1) === id) return entry - 1;
    }
  }

  /** Enters `slot` (holding `id`, which is not stored) in the id table. */
  #insertId(slot: number, id: number): void {
    const h = hashId(id);
    const shard = h >>> SHARD_SHIFT;
    const count = this.#shardCounts[shard] as number;
    if ((count + 1) * 10 > (this.#tables[shard] as Int32Array).length * 7) this.#rehash(shard);
    const table = this.#tables[shard] as Int32Array;
    const mask = table.length - 1;
    let at = h & mask;
    while (table[at] !== 0) at = (at + 1) & mask;
    table[at] = slot + 1;
    this.#shardCounts[shard] = count + 1;
    this.#count += 1;
  }

  /**
   * Takes `id` out of the id table and returns its slot (-1 when absent).
   * Linear-probing deletion: later entries of the run that could sit in the
   * freed place move back into it, so a probe never stops early.
   */
  #deleteId(id: number): number {
    const h = hashId(id);
    const shard = h >>> SHARD_SHIFT;
    const table = this.#tables[shard] as Int32Array;
    const mask = table.length - 1;
    let hole = h & mask;
    for (;;) {
      const entry = table[hole] as number;
      if (entry === 0) return -1;
      if (this.#idOf(entry - 1) === id) break;
      hole = (hole + 1) & mask;
    }
    const found = (table[hole] as number) - 1;
    for (let at = (hole + 1) & mask; table[at] !== 0; at = (at + 1) & mask) {
      const home = hashId(this.#idOf((table[at] as number) - 1)) & mask;
      // The entry at `at` may fill the hole unless its home lies cyclically in (hole, at].
      const stays = hole <= at ? hole < home && home <= at : hole < home || home <= at;
      if (stays) continue;
      table[hole] = table[at] as number;
      hole = at;
    }
    table[hole] = 0;
    this.#shardCounts[shard] = (this.#shardCounts[shard] as number) - 1;
    this.#count -= 1;
    return found;
  }

  /** Doubles one shard of the id table (~1/64 of the ids move). */
  #rehash(shard: number): void {
    const old = this.#tables[shard] as Int32Array;
    const table = this.#int32(old.length * 2);
    const mask = table.length - 1;
    for (let i = 0; i < old.length; i++) {
      const entry = old[i] as number;
      if (entry === 0) continue;
      let at = hashId(this.#idOf(entry - 1)) & mask;
      while (table[at] !== 0) at = (at + 1) & mask;
      table[at] = entry;
    }
    this.#tables[shard] = table;
    this.#largestRehash = Math.max(this.#largestRehash, this.#shardCounts[shard] as number);
  }

  #nextStamp(): number {
    this.#stamp = (this.#stamp + 1) >>> 0;
    if (this.#stamp === 0) {
      for (const stamps of this.#seen) stamps.fill(0);
      this.#stamp = 1;
    }
    return this.#stamp;
  }

  /** A slot never used before; its page is allocated when it is the page's first. */
  #newSlot(): number {
    if (this.#used === this.#words.length * PAGE_SLOTS) {
      this.#words.push(this.#typed(PAGE_SLOTS * 8, Uint32Array));
      this.#ids.push(this.#typed(PAGE_SLOTS, Float64Array));
      this.#live.push(this.#typed(PAGE_SLOTS, Uint8Array));
      this.#next.push(this.#int32(PAGE_SLOTS * CHUNKS));
      this.#seen.push(this.#typed(PAGE_SLOTS, Uint32Array));
    }
    return this.#used++;
  }

  #int32(length: number): Int32Array {
    return this.#typed(length, Int32Array);
  }

  /** Every array of the index comes from here: the largest is recorded (`steps`). */
  #typed<T extends { readonly byteLength: number }>(
    length: number,
    make: new (length: number) => T,
  ): T {
    const array = new make(length);
    this.#largestAllocation = Math.max(this.#largestAllocation, array.byteLength);
    return array;
  }
}

/** The distance from `query` to the 8 words at `words[at..]`, or some value > d once it exceeds d. */
function distanceAt(query: Uint32Array, words: Uint32Array, at: number, d: number): number {
  let distance = 0;
  for (let w = 0; w < 8; w++, at++) {
    distance += popcount32(((query[w] as number) ^ (words[at] as number)) >>> 0);
    if (distance > d) return distance;
  }
  return distance;
}

/** A PDQ hex string as 8 little-endian 32-bit words: word w holds bits 32w..32w+31. */
export function packHash(hash: string): Uint32Array {
  if (typeof hash !== "string" || hash.length !== 64) throw notPdq();
  const words = new Uint32Array(8);
  // Hex is printed most significant first: digit k holds bits 252−4k .. 255−4k.
  for (let k = 0; k < 64; k++) {
    const code = hash.charCodeAt(k);
    const nibble =
      code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 102 ? code - 87 : -1;
    if (nibble < 0) throw notPdq();
    const bit = 252 - 4 * k;
    words[bit >> 5] = (words[bit >> 5] as number) | (nibble << (bit & 31));
  }
  return words;
}

function notPdq(): RangeError {
  return new RangeError("not a PDQ hash (64 lowercase hex)");
}

/** A 32-bit mix of a safe integer id (both halves), for the id table. */
function hashId(id: number): number {
  const low = id >>> 0;
  const high = Math.floor(id / 0x1_0000_0000) | 0;
  let h = Math.imul(low ^ Math.imul(high, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

function chunkOf(words: Uint32Array, c: number): number {
  return ((words[c >> 1] as number) >>> ((c & 1) * 16)) & 0xffff;
}

function popcount32(v: number): number {
  let x = v - ((v >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
