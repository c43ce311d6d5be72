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
 *   hash (singly linked lists through the slot array), so a hash costs 32
 *   bytes of packed words + 64 bytes of links + its id: about 100 bytes, and
 *   no per-bucket objects at all.
 * - When the enumeration would cost more than reading everything (large d,
 *   or few hashes), the query scans the packed Uint32Array words instead.
 *   Both paths return exactly the same rows.
 * - Removal unlinks the slot from its 16 buckets (a walk of each bucket) and
 *   puts it on a free list for reuse.
 */

/** One search result: the caller's id and the Hamming distance to the query. */
export interface PdqMatch {
  readonly id: number;
  readonly distance: number;
}

const CHUNKS = 16;
const KEYS = 1 << 16;
const NONE = -1;

/** Every 16-bit mask, ordered by popcount; MASKS_UP_TO[r] = how many have popcount ≤ r. */
const { MASKS, MASKS_UP_TO } = (() => {
  const byPopcount: number[][] = Array.from({ length: 17 }, () => []);
  for (let m = 0; m < KEYS; m++) byPopcount[popcount32(m)]?.push(m);
  const upTo = new Int32Array(17);
  for (let r = 0; r <= 16; r++)
    upTo[r] = (r > 0 ? (upTo[r - 1] as number) : 0) + (byPopcount[r]?.length ?? 0);
  return { MASKS: Uint16Array.from(byPopcount.flat()), MASKS_UP_TO: upTo };
})();

/**
 * How `search` finds candidates: `auto` (the default) picks by the cost
 * model; `probe` and `scan` force one path (for tests and benchmarks; both
 * return the same rows).
 */
export type PdqIndexStrategy = "auto" | "probe" | "scan";

export class PdqIndex {
  readonly #strategy: PdqIndexStrategy;
  #capacity = 0;
  #words = new Uint32Array(0); // 8 words per slot
  #ids = new Float64Array(0); // the caller's id per slot
  #live = new Uint8Array(0);
  #next = new Int32Array(0); // CHUNKS links per slot
  #seen = new Uint32Array(0); // query stamp per slot (dedupes candidates)
  #stamp = 0;
  readonly #heads: Int32Array[] = Array.from({ length: CHUNKS }, () =>
    new Int32Array(KEYS).fill(NONE),
  );
  #table = new Int32Array(0); // id → slot, open addressing (NONE = empty)
  #count = 0;
  #free: number[] = [];
  #used = 0; // slots ever handed out (the high-water mark)

  constructor(options: { readonly strategy?: PdqIndexStrategy } = {}) {
    this.#strategy = options.strategy ?? "auto";
  }

  /** The number of stored hashes. */
  get size(): number {
    return this.#count;
  }

  /** True when `id` is stored. */
  has(id: number): boolean {
    return Number.isSafeInteger(id) && this.#slotOf(id) !== NONE;
  }

  /**
   * Makes room for `count` hashes in all (stored ones included) plus 1/8,
   * so that loading that many copies no array; never shrinks.
   */
  reserve(count: number): void {
    const wanted = Math.ceil(count + count / 8) + 1024;
    if (wanted > this.#capacity) this.#grow(wanted);
  }

  /** Stores `hash` under `id`, replacing the hash `id` had. Throws RangeError on a malformed hash or id. */
  add(id: number, hash: string): void {
    if (!Number.isSafeInteger(id)) throw new RangeError("PdqIndex ids are safe integers");
    const words = packHash(hash);
    this.remove(id);
    const slot = this.#free.pop() ?? this.#newSlot();
    this.#words.set(words, slot * 8);
    this.#ids[slot] = id;
    this.#live[slot] = 1;
    this.#insertId(slot);
    for (let c = 0; c < CHUNKS; c++) {
      const key = chunkOf(words, c);
      const heads = this.#heads[c] as Int32Array;
      this.#next[slot * CHUNKS + c] = heads[key] as number;
      heads[key] = slot;
    }
  }

  /** Forgets `id` (nothing happens when it is not stored). */
  remove(id: number): void {
    if (!Number.isSafeInteger(id)) return;
    const slot = this.#deleteId(id);
    if (slot === NONE) return;
    const words = this.#words.subarray(slot * 8, slot * 8 + 8);
    for (let c = 0; c < CHUNKS; c++) {
      const key = chunkOf(words, c);
      const heads = this.#heads[c] as Int32Array;
      let at = heads[key] as number;
      if (at === slot) {
        heads[key] = this.#next[slot * CHUNKS + c] as number;
        continue;
      }
      while (at !== NONE) {
        const link = at * CHUNKS + c;
        const following = this.#next[link] as number;
        if (following === slot) {
          this.#next[link] = this.#next[slot * CHUNKS + c] as number;
          break;
        }
        at = following;
      }
    }
    this.#live[slot] = 0;
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
    const probes = CHUNKS * (MASKS_UP_TO[radius] as number);
    const candidates = (probes * this.size) / KEYS;
    return 4 * probes + 32 * candidates >= this.#used;
  }

  #probe(query: Uint32Array, d: number): PdqMatch[] {
    const stamp = this.#nextStamp();
    const count = MASKS_UP_TO[Math.min(d >> 4, 16)] as number;
    const found: PdqMatch[] = [];
    for (let c = 0; c < CHUNKS; c++) {
      const key = chunkOf(query, c);
      const heads = this.#heads[c] as Int32Array;
      for (let m = 0; m < count; m++) {
        for (let at = heads[key ^ (MASKS[m] as number)] as number; at !== NONE; ) {
          if (this.#seen[at] !== stamp) {
            this.#seen[at] = stamp;
            const distance = this.#distance(query, at, d);
            if (distance <= d) found.push({ id: this.#ids[at] as number, distance });
          }
          at = this.#next[at * CHUNKS + c] as number;
        }
      }
    }
    return found;
  }

  #scan(query: Uint32Array, d: number): PdqMatch[] {
    const found: PdqMatch[] = [];
    for (let slot = 0; slot < this.#used; slot++) {
      if (this.#live[slot] === 0) continue;
      const distance = this.#distance(query, slot, d);
      if (distance <= d) found.push({ id: this.#ids[slot] as number, distance });
    }
    return found;
  }

  /** The distance from `query` to `slot`, or some value > d as soon as it exceeds d. */
  #distance(query: Uint32Array, slot: number, d: number): number {
    const words = this.#words;
    let distance = 0;
    for (let w = 0, at = slot * 8; w < 8; w++, at++) {
      distance += popcount32(((query[w] as number) ^ (words[at] as number)) >>> 0);
      if (distance > d) return distance;
    }
    return distance;
  }

  /** The slot holding `id`, or NONE. */
  #slotOf(id: number): number {
    const table = this.#table;
    if (table.length === 0) return NONE;
    const mask = table.length - 1;
    for (let at = hashId(id) & mask; ; at = (at + 1) & mask) {
      const slot = table[at] as number;
      if (slot === NONE || this.#ids[slot] === id) return slot;
    }
  }

  /** Enters `slot` (whose id is not stored) in the id table. */
  #insertId(slot: number): void {
    if ((this.#count + 1) * 10 > this.#table.length * 7) {
      this.#rehash(Math.max(this.#table.length * 2, 2048));
    }
    const table = this.#table;
    const mask = table.length - 1;
    let at = hashId(this.#ids[slot] as number) & mask;
    while (table[at] !== NONE) at = (at + 1) & mask;
    table[at] = slot;
    this.#count += 1;
  }

  /**
   * Takes `id` out of the id table and returns its slot (NONE when absent).
   * Linear-probing deletion: later entries of the run that could sit in the
   * freed place move back into it, so a probe never stops early.
   */
  #deleteId(id: number): number {
    const table = this.#table;
    if (table.length === 0) return NONE;
    const mask = table.length - 1;
    let hole = hashId(id) & mask;
    for (;;) {
      const slot = table[hole] as number;
      if (slot === NONE) return NONE;
      if (this.#ids[slot] === id) break;
      hole = (hole + 1) & mask;
    }
    const found = table[hole] as number;
    for (let at = (hole + 1) & mask; table[at] !== NONE; at = (at + 1) & mask) {
      const home = hashId(this.#ids[table[at] as number] as number) & mask;
      // The entry at `at` may fill the hole unless its home lies cyclically in (hole, at].
      const stays = hole <= at ? hole < home && home <= at : hole < home || home <= at;
      if (stays) continue;
      table[hole] = table[at] as number;
      hole = at;
    }
    table[hole] = NONE;
    this.#count -= 1;
    return found;
  }

  /** A new id table of `size` (a power of two) holding every stored slot. */
  #rehash(size: number): void {
    const old = this.#table;
    const table = new Int32Array(size).fill(NONE);
    const mask = size - 1;
    for (let i = 0; i < old.length; i++) {
      const slot = old[i] as number;
      if (slot === NONE) continue;
      let at = hashId(this.#ids[slot] as number) & mask;
      while (table[at] !== NONE) at = (at + 1) & mask;
      table[at] = slot;
    }
    this.#table = table;
  }

  #nextStamp(): number {
    this.#stamp = (this.#stamp + 1) >>> 0;
    if (this.#stamp === 0) {
      this.#seen.fill(0);
      this.#stamp = 1;
    }
    return this.#stamp;
  }

  #newSlot(): number {
    if (this.#used === this.#capacity) {
      this.#grow(Math.max(1024, this.#capacity + (this.#capacity >> 1)));
    }
    return this.#used++;
  }

  #grow(capacity: number): void {
    const grown = <T extends Uint32Array | Float64Array | Uint8Array | Int32Array>(
      old: T,
      make: (n: number) => T,
      per: number,
    ): T => {
      const bigger = make(capacity * per);
      bigger.set(old as never);
      return bigger;
    };
    this.#words = grown(this.#words, (n) => new Uint32Array(n), 8);
    this.#ids = grown(this.#ids, (n) => new Float64Array(n), 1);
    this.#live = grown(this.#live, (n) => new Uint8Array(n), 1);
    this.#next = grown(this.#next, (n) => new Int32Array(n), CHUNKS);
    this.#seen = grown(this.#seen, (n) => new Uint32Array(n), 1);
    this.#capacity = capacity;
    // The id table keeps its load ≤ 0.7 at full capacity: no rehash while filling.
    let size = 2048;
    while (size * 7 < capacity * 10) size *= 2;
    if (size > this.#table.length) this.#rehash(size);
  }
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
