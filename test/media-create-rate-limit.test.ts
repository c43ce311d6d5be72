/**
 * The rate limits of `POST /_matrix/media/v1/create` (docs/media.md "Rate
 * limits"): `rc_media_create` per user on a fake clock, and
 * `max_pending_media_uploads`, whose 429 says when the first pending id
 * expires (Synapse: first pending expiry − now). Both answer 429
 * M_LIMIT_EXCEEDED with `retry_after_ms` and `Retry-After` (whole seconds,
 * rounded up) and are counted in `mxcd_rate_limited_total{limiter}`.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import type { HttpResponse } from "./support/http-client.js";
import { metric } from "./support/metrics.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

const CREATE = "/_matrix/media/v1/create";
const REFUSALS = "mxcd_rate_limited_total";

function assertLimited(res: HttpResponse, retryAfterMs: number): void {
  assert.equal(res.status, 429, res.text);
  assert.equal(res.body.errcode, "M_LIMIT_EXCEEDED");
  assert.equal(res.body.retry_after_ms, retryAfterMs);
  assert.equal(res.headers.get("retry-after"), String(Math.ceil(retryAfterMs / 1000)));
}

forEachEngine("rc_media_create", (engine) => {
  let server: TestServer;
  let clock = 1_000_000;
  before(async () => {
    server = await startTestServer(
      engine,
      // 0.3/s: one more create fits 3333.3 ms after the burst, sent as 4 s.
      { rc_media_create: { per_second: 0.3, burst_count: 3 }, max_pending_media_uploads: 100 },
      { appOptions: { now: () => clock } },
    );
  });
  after(() => server.stop());

  it("allows a burst per user, then 429 with Retry-After until the bucket leaks", async () => {
    const alice = await server.user("alice");
    const bob = await server.user("bob");
    for (let i = 0; i < 3; i++) assert.equal((await alice.http.post(CREATE)).status, 200);
    const refused = await alice.http.post(CREATE);
    assertLimited(refused, 3334);
    assert.equal(await metric(server.baseUrl, REFUSALS, 'limiter="rc_media_create"'), 1);
    // Per user: bob has his own bucket.
    assert.equal((await bob.http.post(CREATE)).status, 200);
    // A refused create was not counted: still one create away after 3334 ms, not two.
    clock += 3000;
    assertLimited(await alice.http.post(CREATE), 334);
    clock += 334;
    assert.equal((await alice.http.post(CREATE)).status, 200);
    // Four creates by t0 + 3334 ms: the next fits at t0 + 2/0.3 s = 6666.7 ms.
    assertLimited(await alice.http.post(CREATE), 3333);
    assert.equal(await metric(server.baseUrl, REFUSALS, 'limiter="rc_media_create"'), 3);
    assert.equal(await metric(server.baseUrl, REFUSALS, 'limiter="max_pending_media_uploads"'), 0);
  });
});

forEachEngine("max_pending_media_uploads", (engine) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(engine, {
      max_pending_media_uploads: 2,
      unused_expiration_time: "1h",
      rc_media_create: { per_second: 1000, burst_count: 1000 },
    });
  });
  after(() => server.stop());

  it("refuses one pending upload too many until the first pending id expires", async () => {
    const carol = await server.user("carol");
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await carol.http.post(CREATE);
      assert.equal(res.status, 200);
      ids.push((res.body.content_uri as string).split("/").pop()!);
    }
    // Created 20 and 10 minutes ago: the first expires in 40 minutes.
    const now = Date.now();
    const db = server.app.database.db;
    await db
      .updateTable("local_media_repository")
      .set({ created_ts: now - 20 * 60_000 })
      .where("media_id", "=", ids[0]!)
      .execute();
    await db
      .updateTable("local_media_repository")
      .set({ created_ts: now - 10 * 60_000 })
      .where("media_id", "=", ids[1]!)
      .execute();
    const refused = await carol.http.post(CREATE);
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.body.errcode, "M_LIMIT_EXCEEDED");
    const retryMs = refused.body.retry_after_ms as number;
    // Real clock: the time since `now` (well under a minute) has passed meanwhile.
    assert.ok(retryMs <= 40 * 60_000 && retryMs > 39 * 60_000, `retry_after_ms ${retryMs}`);
    assert.equal(refused.headers.get("retry-after"), String(Math.ceil(retryMs / 1000)));
    assert.equal(await metric(server.baseUrl, REFUSALS, 'limiter="max_pending_media_uploads"'), 1);
    // An expired pending id no longer counts.
    await db
      .updateTable("local_media_repository")
      .set({ created_ts: now - 2 * 3_600_000 })
      .where("media_id", "=", ids[0]!)
      .execute();
    assert.equal((await carol.http.post(CREATE)).status, 200);
  });
});
