/**
 * The read-through LRU of the hot-path caches (src/cache/read-through-lru.ts)
 * on a fake clock: an entry is used for its lifetime only, an expired entry
 * is told apart from one never cached (the serving fast path re-reads the
 * former itself), and a re-read replaces it or forgets it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReadThroughLru } from "../src/cache/read-through-lru.js";

interface Row {
  readonly version: number;
}

function setup() {
  let now = 1_000;
  const clock = { now: () => now };
  const cache = new ReadThroughLru<Row>({ maxEntries: 10, ttlMs: 100, clock });
  let stored: Row | undefined = { version: 1 };
  let loads = 0;
  const load = async () => {
    loads += 1;
    return stored;
  };
  return {
    cache,
    load,
    advance: (ms: number) => {
      now += ms;
    },
    store: (row: Row | undefined) => {
      stored = row;
    },
    loads: () => loads,
  };
}

describe("read-through LRU", () => {
  it("uses an entry for its lifetime, then calls it expired until it is read again", async () => {
    const t = setup();
    assert.equal(t.cache.expired("k"), false, "never cached is not expired");
    assert.deepEqual(await t.cache.read("k", t.load), { version: 1 });
    t.advance(99);
    assert.deepEqual(t.cache.cached("k"), { version: 1 });
    assert.equal(t.cache.expired("k"), false);
    t.advance(2);
    assert.equal(t.cache.cached("k"), undefined, "an expired entry is never used");
    assert.equal(t.cache.expired("k"), true, "and stays known as expired");
    assert.equal(t.cache.cached("k"), undefined);
    assert.equal(t.cache.expired("k"), true, "a peek does not forget it");

    t.store({ version: 2 });
    assert.deepEqual(await t.cache.read("k", t.load), { version: 2 }, "a read loads again");
    assert.equal(t.loads(), 2);
    assert.deepEqual(t.cache.cached("k"), { version: 2 }, "and replaces it");
    assert.equal(t.cache.expired("k"), false);
    assert.equal(t.cache.stats.misses, 2);
    assert.equal(t.cache.stats.hits, 0);
  });

  it("forgets an expired entry whose re-read finds nothing to keep", async () => {
    const t = setup();
    await t.cache.read("k", t.load);
    t.advance(200);
    t.store(undefined);
    assert.equal(await t.cache.read("k", t.load), undefined);
    assert.equal(t.cache.expired("k"), false, "gone, not expired");

    t.store({ version: 3 });
    await t.cache.read("k", t.load);
    t.advance(200);
    // Not cacheable (as a pending local row): forgotten too.
    await t.cache.read("k", t.load, () => false);
    assert.equal(t.cache.expired("k"), false);
    assert.equal(t.cache.cached("k"), undefined);
  });

  it("keeps no re-read that raced with an invalidation", async () => {
    const t = setup();
    await t.cache.read("k", t.load);
    t.advance(200);
    let release: (row: Row) => void = () => {};
    const reading = t.cache.read(
      "k",
      () =>
        new Promise<Row>((resolve) => {
          release = resolve;
        }),
    );
    t.cache.invalidate("local")?.delete("k");
    release({ version: 9 });
    assert.deepEqual(await reading, { version: 9 });
    assert.equal(t.cache.cached("k"), undefined, "the raced read is not stored");
    assert.equal(t.cache.expired("k"), false, "and the invalidation forgot the entry");
  });
});
