/**
 * The read-through LRU of the hot-path caches (src/cache/read-through-lru.ts)
 * on a fake clock: an entry is used for its lifetime only, an expired entry
 * is told apart from one never cached (the serving fast path re-reads the
 * former itself), a re-read replaces it or forgets it, and concurrent
 * re-reads of one key share one load (never a failed one, never across an
 * invalidation).
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

  it("shares one load among concurrent re-reads of an expired entry", async () => {
    const t = setup();
    await t.cache.read("k", t.load);
    await t.cache.read("other", t.load);
    t.advance(200);
    t.store({ version: 2 });
    const gate = held<Row>();
    const reads = Array.from({ length: 32 }, () => t.cache.read("k", gate.load));
    assert.equal(gate.calls(), 1, "one load for 32 concurrent misses");
    // Another key is not held up by this one's load.
    assert.deepEqual(await t.cache.read("other", t.load), { version: 2 });
    gate.resolve({ version: 2 });
    for (const value of await Promise.all(reads)) assert.deepEqual(value, { version: 2 });
    assert.deepEqual(t.cache.cached("k"), { version: 2 }, "stored once");
    assert.deepEqual(
      { misses: t.cache.stats.misses, shared: t.cache.stats.shared },
      { misses: 4, shared: 31 },
    );
  });

  it("shares a failed load only with the reads waiting for it, and caches nothing", async () => {
    const t = setup();
    await t.cache.read("k", t.load);
    t.advance(200);
    const gate = held<Row>();
    const reads = Array.from({ length: 8 }, () => t.cache.read("k", gate.load));
    gate.reject(new Error("connection lost"));
    for (const outcome of await Promise.allSettled(reads)) {
      assert.equal(outcome.status, "rejected");
    }
    assert.equal(gate.calls(), 1);
    assert.equal(t.cache.cached("k"), undefined, "nothing stored");
    // The next read loads afresh and succeeds.
    t.store({ version: 5 });
    assert.deepEqual(await t.cache.read("k", t.load), { version: 5 });
    assert.equal(t.loads(), 2);
  });

  it("does not join a load begun before an invalidation", async () => {
    const t = setup();
    const gate = held<Row>();
    const stale = t.cache.read("k", gate.load);
    t.cache.invalidate("remote")?.delete("k");
    t.store({ version: 7 });
    const fresh = t.cache.read("k", t.load);
    assert.equal(t.loads(), 1, "the read after the change loads for itself");
    gate.resolve({ version: 1 });
    assert.deepEqual(await stale, { version: 1 });
    assert.deepEqual(await fresh, { version: 7 });
    assert.deepEqual(t.cache.cached("k"), { version: 7 });
  });
});

/** A load that stays pending until the test settles it, counting its calls. */
function held<T>() {
  let calls = 0;
  let settle: { resolve(value: T): void; reject(error: Error): void } | undefined;
  const promise = new Promise<T>((resolve, reject) => {
    settle = { resolve, reject };
  });
  return {
    load: () => {
      calls += 1;
      return promise;
    },
    calls: () => calls,
    resolve: (value: T) => settle?.resolve(value),
    reject: (error: Error) => settle?.reject(error),
  };
}
