/**
 * A remote item cached again unquarantined releases the near duplicates it
 * held (docs/trust-and-safety.md "Near-duplicate quarantine"), and those
 * feed records wake a long poll: `notification_poll_interval` is an hour
 * here, so only the wake-up ends the poll before the test's time limit.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { ADMIN, BASE, D, INSIDE, image, WrittenPdqHasher } from "./support/near-duplicate-model.js";
import { quarantinedByOf, uploadHashed } from "./support/near-duplicate-servers.js";
import { freePort } from "./support/postgres-cluster.js";
import { startTestServer, type TestServer } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const FEED = `${ADMIN}/media/quarantine_changes`;
const WOKEN = { timeout: 40_000 };

forEachEngine("near-duplicate release on a remote item cached again", (engine) => {
  const hasher = new WrittenPdqHasher();
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const resolvers = {
      "a.test": `http://127.0.0.1:${portA}`,
      "b.test": `http://127.0.0.1:${portB}`,
    };
    const common = { ip_range_whitelist: ["127.0.0.0/8"], federation_custom_resolvers: resolvers };
    b = await startTestServer(engine, {
      ...common,
      server_name: "b.test",
      listen: { host: "127.0.0.1", port: portB },
    });
    a = await startTestServer(
      engine,
      {
        ...common,
        server_name: "a.test",
        listen: { host: "127.0.0.1", port: portA },
        thumbnail_sizes: [],
        quarantine_similar: { pdq_max_distance: D },
        notification_poll_interval: "1h",
      },
      { appOptions: { pdqHasher: hasher.hash } },
    );
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  it("wakes a feed long poll with the releases", WOKEN, async () => {
    const admin = await a.user("admin", { admin: true });
    const bob = await b.user("bob");
    const remote = await uploadBytes(bob.http, image(BASE), { contentType: "image/png" });
    const fetchRemote = () => admin.http.get(`/_matrix/client/v1/media/download/b.test/${remote}`);
    assert.equal((await fetchRemote()).status, 200);
    // Its PDQ recorded and checked (the queue counts it after both).
    await waitFor(
      async () =>
        (await metric(a.baseUrl, "mxcd_media_hash_outcomes_total", 'outcome="hashed"')) >= 1,
      "remote PDQ",
    );
    const target = await uploadHashed(a, admin, INSIDE);
    await admin.http.post(`${ADMIN}/media/quarantine/b.test/${remote}`);
    assert.equal(await quarantinedByOf(a.app.database, target), admin.userId);
    // The cached copy goes (as a purge that ignored quarantine would), then is fetched again.
    await a.app.database.db
      .deleteFrom("remote_media_cache")
      .where("media_id", "=", remote)
      .execute();
    a.app.mediaChanges.publish({ kind: "remote", origin: "b.test", mediaId: remote });
    const head = await admin.http.get(`${FEED}?from=0&limit=1000`);
    const poll = admin.http.get(`${FEED}?from=${head.body.next_batch}&timeout=60000`);
    assert.equal((await fetchRemote()).status, 200);
    const page = await poll;
    assert.equal(page.status, 200);
    assert.deepEqual(
      page.body.changes.map((c: { media_id: string; quarantined: boolean }) => [
        c.media_id,
        c.quarantined,
      ]),
      [[target, false]],
    );
  });
});
