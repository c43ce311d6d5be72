import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { cacheLifetimeMs } from "../../src/net/cache-control.js";

describe("cacheLifetimeMs", () => {
  it("reads max-age in milliseconds", () => {
    assert.equal(cacheLifetimeMs("max-age=3600"), 3_600_000);
    assert.equal(cacheLifetimeMs("public, MAX-AGE=60, must-revalidate"), 60_000);
    assert.equal(cacheLifetimeMs(["public", "max-age=1"]), 1000);
  });

  it("gives 0 for no-store and no-cache, undefined when silent or malformed", () => {
    assert.equal(cacheLifetimeMs("no-store, max-age=60"), 0);
    assert.equal(cacheLifetimeMs("no-cache"), 0);
    assert.equal(cacheLifetimeMs(undefined), undefined);
    assert.equal(cacheLifetimeMs("public"), undefined);
    assert.equal(cacheLifetimeMs("max-age=soon"), undefined);
    assert.equal(cacheLifetimeMs("max-age=-5"), undefined);
  });
});
