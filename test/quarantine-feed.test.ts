import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { uploadBytes } from "./support/media.js";
import { until } from "./support/mxcd-processes.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const FEED = "/_synapse/admin/v1/media/quarantine_changes";
const ADMIN = "/_synapse/admin/v1";

/** `mxcd_waiting_requests{kind="feed"}` of the server: long-polls waiting right now. */
async function feedWaiters(server: TestServer): Promise<number> {
  const text = (await server.http.get("/metrics")).text;
  return Number(/^mxcd_waiting_requests\{kind="feed"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

forEachEngine("quarantine change feed endpoint", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  before(async () => {
    // An hour between re-reads: a long-poll that returns early was woken by
    // the commit's notification, nothing else.
    server = await startTestServer(engine, { notification_poll_interval: "1h" });
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  describe("on an empty feed", () => {
    it("answers next_batch 1 with no changes; from=1 is valid and from=2 is not", async () => {
      assert.deepEqual((await admin.http.get(FEED)).body, { next_batch: 1, changes: [] });
      assert.deepEqual((await admin.http.get(`${FEED}?from=1`)).body, {
        next_batch: 1,
        changes: [],
      });
      const beyond = await admin.http.get(`${FEED}?from=2`);
      assert.deepEqual([beyond.status, beyond.body.errcode], [400, "M_INVALID_PARAM"]);
    });

    it("requires an admin", async () => {
      assert.equal((await server.http.get(FEED)).status, 401);
      assert.equal((await alice.http.get(FEED)).status, 403);
      assert.equal((await admin.http.post(FEED)).status, 405);
    });

    it("refuses bad parameters with 400 M_INVALID_PARAM", async () => {
      const cases: [string, string][] = [
        ["from=-1", "Query parameter from must be a positive integer."],
        ["from=abc", "Query parameter from must be an integer"],
        ["limit=0", ""],
        ["limit=1001", ""],
        ["timeout=60001", ""],
        ["timeout=x", ""],
      ];
      for (const [query, text] of cases) {
        const res = await admin.http.get(`${FEED}?${query}`);
        assert.deepEqual([res.status, res.body.errcode], [400, "M_INVALID_PARAM"], query);
        if (text) assert.equal(res.body.error, text);
      }
    });
  });

  describe("paging (Synapse's walk-through)", () => {
    it("pages 105 hash-propagated changes as 100 + 5 with Synapse's next_batch values", async () => {
      const bytes = randomBytes(32);
      const ids: string[] = [];
      for (let i = 0; i < 105; i++) ids.push(await uploadBytes(alice.http, bytes));
      await admin.http.post(`${ADMIN}/media/quarantine/test.local/${ids[0]}`);
      const first = await admin.http.get(FEED);
      assert.equal(first.body.changes.length, 100);
      assert.equal(first.body.next_batch, 101);
      const change = first.body.changes[0];
      assert.equal(change.origin, "test.local");
      assert.equal(change.quarantined, true);
      assert.equal(change.quarantined_by, "@admin:test.local");
      assert.match(change.sha256, /^[0-9a-f]{64}$/);
      assert.equal(typeof change.ts, "number");
      const second = await admin.http.get(`${FEED}?from=101`);
      assert.equal(second.body.changes.length, 5);
      assert.equal(second.body.next_batch, 106);
      const end = await admin.http.get(`${FEED}?from=106`);
      assert.deepEqual(end.body, { next_batch: 106, changes: [] });
      const seen = new Set([...first.body.changes, ...second.body.changes].map((c) => c.media_id));
      assert.deepEqual([...seen].sort(), [...ids].sort());
      const big = await admin.http.get(`${FEED}?limit=1000`);
      assert.equal(big.body.changes.length, 105);
    });

    it("records unquarantine as quarantined: false", async () => {
      const id = await uploadBytes(alice.http, randomBytes(32));
      await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`);
      const position = (await admin.http.get(`${FEED}?limit=1000&from=106`)).body.next_batch;
      await admin.http.post(`${ADMIN}/media/unquarantine/test.local/${id}`);
      const res = await admin.http.get(`${FEED}?from=${position}`);
      assert.deepEqual(
        res.body.changes.map(
          (c: { media_id: string; quarantined: boolean; quarantined_by: null }) => [
            c.media_id,
            c.quarantined,
            c.quarantined_by,
          ],
        ),
        [[id, false, null]],
      );
    });
  });

  describe("long-poll", () => {
    // The poll interval is an hour and the long-poll's own timeout 60 s, so
    // within this test's 20 s limit only the commit's wake-up can answer it
    // (it usually takes well under a second; the limit bounds a hang).
    it("returns as soon as a new record commits", { timeout: 20_000 }, async () => {
      const position = (await admin.http.get(`${FEED}?from=0&limit=1000`)).body.changes.length + 1;
      const current = (await admin.http.get(`${FEED}?from=${position}`)).body.next_batch;
      const id = await uploadBytes(alice.http, randomBytes(32));
      const waiting = admin.http.get(`${FEED}?from=${current}&timeout=60000`);
      await until(async () => (await feedWaiters(server)) === 1);
      await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`);
      const res = await waiting;
      assert.equal(res.status, 200);
      assert.deepEqual(
        res.body.changes.map((c: { media_id: string }) => c.media_id),
        [id],
      );
      assert.equal(res.body.next_batch, current + 1);
      assert.equal(await feedWaiters(server), 0);
    });

    it("returns an empty page with the position when the timeout passes", async () => {
      const current = (await admin.http.get(`${FEED}?from=0&limit=1`)).body.next_batch;
      const latest = await admin.http.get(`${FEED}?from=${current}&limit=1000`);
      const end = latest.body.next_batch;
      const res = await admin.http.get(`${FEED}?from=${end}&timeout=200`);
      assert.deepEqual(res.body, { next_batch: end, changes: [] });
    });
  });
});
