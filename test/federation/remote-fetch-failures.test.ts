/**
 * The failure memory and the warning rate limit of remote fetches, on a
 * clock the test moves by hand.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MatrixError } from "../../src/domain/matrix-error.js";
import { LogLimiter, RemoteFetchFailures } from "../../src/media/remote-fetch-failures.js";

const failed = () => new MatrixError("M_UNKNOWN", "Failed to fetch remote media", 502);

describe("RemoteFetchFailures", () => {
  it("answers a failure until its TTL has passed, then forgets it", () => {
    let now = 1_000_000;
    const failures = new RemoteFetchFailures({ ttlMs: 30_000, maxEntries: 10 }, () => now);
    const error = failed();
    failures.remember("dead.test/A", error);
    now += 30_000;
    assert.equal(failures.get("dead.test/A"), error);
    now += 1;
    assert.equal(failures.get("dead.test/A"), undefined);
    assert.equal(failures.size, 0);
  });

  it("holds at most maxEntries, dropping the least recently used", () => {
    const failures = new RemoteFetchFailures({ ttlMs: 30_000, maxEntries: 3 });
    for (const id of ["A", "B", "C"]) failures.remember(`dead.test/${id}`, failed());
    failures.get("dead.test/A");
    failures.remember("dead.test/D", failed());
    assert.equal(failures.size, 3);
    assert.equal(failures.get("dead.test/B"), undefined, "the least recently used went");
    assert.ok(failures.get("dead.test/A"));
  });

  it("remembers nothing with a TTL of 0", () => {
    const failures = new RemoteFetchFailures({ ttlMs: 0, maxEntries: 3 });
    failures.remember("dead.test/A", failed());
    assert.equal(failures.get("dead.test/A"), undefined);
  });
});

describe("LogLimiter", () => {
  const settings = { intervalMs: 60_000, maxLinesPerInterval: 3, maxKeys: 100 };

  it("lets one line per key per interval through and reports how many it held back", () => {
    // Not 0: lru-cache reads a start time of 0 as "never expires".
    let now = 1_000_000;
    const limiter = new LogLimiter(settings, () => now);
    assert.deepEqual(limiter.admit("a.test"), { suppressed: 0 });
    for (let i = 0; i < 5; i++) assert.equal(limiter.admit("a.test"), undefined);
    assert.equal(limiter.suppressed, 5);
    now += 60_000;
    assert.deepEqual(limiter.admit("a.test"), { suppressed: 5 });
    assert.equal(limiter.suppressed, 0);
  });

  it("caps the lines of an interval whatever the number of keys", () => {
    // Not 0: lru-cache reads a start time of 0 as "never expires".
    let now = 1_000_000;
    const limiter = new LogLimiter(settings, () => now);
    const admitted = Array.from({ length: 100 }, (_, i) => limiter.admit(`s${i}.test`));
    assert.equal(admitted.filter((a) => a !== undefined).length, 3);
    now += 60_000;
    assert.deepEqual(limiter.admit("s99.test"), { suppressed: 97 });
  });
});
