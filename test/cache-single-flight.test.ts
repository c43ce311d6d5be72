/**
 * Concurrent re-reads of one expired cache entry share one database read
 * (src/cache/read-through-lru.ts), counted by a wrapper around the real
 * repositories on SQLite and PostgreSQL: a media row, its thumbnail list and
 * an access token's owner, each read by 32 callers at once after
 * `media_cache.metadata_ttl` has passed.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Registry } from "prom-client";
import { hashAccessToken } from "../src/accounts/access-token.js";
import { registerCacheMetrics } from "../src/cache/cache-metrics.js";
import { CacheStats } from "../src/cache/cache-stats.js";
import { MediaChanges } from "../src/cache/media-changes.js";
import { MediaMetadataCache, type MediaRowReads } from "../src/cache/media-metadata-cache.js";
import { TokenCache } from "../src/cache/token-cache.js";
import { TokenChanges } from "../src/cache/token-changes.js";
import { InProcessNotificationBus } from "../src/db/in-process-notification-bus.js";
import { AccessTokenRepository } from "../src/repositories/access-token-repository.js";
import { MediaRepository } from "../src/repositories/media-repository.js";
import { forEachEngine } from "./support/databases.js";
import { mediaIdOf } from "./support/media.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const CALLERS = 32;
const TTL_MS = 10_000;

forEachEngine("cache single flight", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let mediaId: string;
  // Not 0: lru-cache takes a load time of 0 for "no lifetime".
  let now = 1_000;
  const clock = { now: () => now };
  const bus = new InProcessNotificationBus();

  before(async () => {
    server = await startTestServer(engine);
    alice = await server.user("alice");
    const res = await alice.http.request("POST", "/_matrix/media/v3/upload", {
      rawBody: "shared read",
      headers: { "content-type": "text/plain" },
    });
    assert.equal(res.status, 200, res.text);
    mediaId = mediaIdOf(res.body.content_uri);
  });
  after(() => server?.stop());

  it("32 concurrent reads of an expired media row and thumbnail list read each once", async () => {
    const reads = { getLocal: 0, listLocalThumbnails: 0 };
    const media = new MediaRepository(server.app.database, new MediaChanges(bus));
    const counted: MediaRowReads = {
      getLocal: (id) => {
        reads.getLocal += 1;
        return media.getLocal(id);
      },
      listLocalThumbnails: (id) => {
        reads.listLocalThumbnails += 1;
        return media.listLocalThumbnails(id);
      },
      getRemote: (origin, id) => media.getRemote(origin, id),
      listRemoteThumbnails: (origin, id) => media.listRemoteThumbnails(origin, id),
    };
    const cache = new MediaMetadataCache(counted, new MediaChanges(bus), {
      maxEntries: 100,
      ttlMs: TTL_MS,
      clock,
    });
    assert.equal((await cache.getLocal(mediaId))?.mediaId, mediaId);
    assert.deepEqual(await cache.listLocalThumbnails(mediaId), []);
    now += TTL_MS + 1;
    assert.ok(cache.expiredLocal(mediaId) && cache.expiredLocalThumbnails(mediaId));

    const rows = await Promise.all(Array.from({ length: CALLERS }, () => cache.getLocal(mediaId)));
    const lists = await Promise.all(
      Array.from({ length: CALLERS }, () => cache.listLocalThumbnails(mediaId)),
    );
    assert.deepEqual(reads, { getLocal: 2, listLocalThumbnails: 2 }, "one re-read each");
    for (const row of rows) assert.equal(row?.mediaId, mediaId);
    for (const list of lists) assert.deepEqual(list, []);
    assert.deepEqual(
      { misses: cache.stats.misses, shared: cache.stats.shared, hits: cache.stats.hits },
      { misses: 4, shared: 2 * (CALLERS - 1), hits: 0 },
    );
  });

  it("32 concurrent look-ups of an expired token owner read it once", async () => {
    let reads = 0;
    const tokens = new AccessTokenRepository(server.app.database, new TokenChanges(bus));
    const cache = new TokenCache(
      (hash) => {
        reads += 1;
        return tokens.findOwner(hash);
      },
      new TokenChanges(bus),
      { maxEntries: 100, ttlMs: TTL_MS, clock },
    );
    const hash = hashAccessToken(alice.token);
    assert.equal((await cache.findOwner(hash))?.userId, alice.userId);
    now += TTL_MS + 1;
    const owners = await Promise.all(Array.from({ length: CALLERS }, () => cache.findOwner(hash)));
    assert.equal(reads, 2, "one re-read");
    for (const owner of owners) assert.equal(owner?.userId, alice.userId);
  });
});

describe("cache metrics", () => {
  it('count reads that joined another\'s as result="shared", apart from misses', async () => {
    const stats = new CacheStats();
    Object.assign(stats, { hits: 5, misses: 2, shared: 31 });
    const registry = new Registry();
    registerCacheMetrics(registry, { media_metadata: stats });
    const text = await registry.metrics();
    const count = (result: string) =>
      new RegExp(
        `^mxcd_cache_requests_total\\{cache="media_metadata",result="${result}"\\} (\\d+)$`,
        "m",
      ).exec(text)?.[1];
    assert.deepEqual([count("hit"), count("miss"), count("shared")], ["5", "2", "31"]);
  });
});
