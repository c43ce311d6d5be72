/**
 * When the PDQ index is built (`pdq_index.warm_up`, docs/configuration.md;
 * docs/trust-and-safety.md "How a PDQ look-up works"), on SQLite and
 * PostgreSQL, after a restart on a log that has hashes, observed through
 * `mxcd_pdq_index_state` / `_build_seconds` / `_hashes` once the start's
 * warm-up (if any) is over:
 * - `auto` with near-duplicate quarantine off, and `never`: nothing is built
 *   until the first look-up, which builds the index and answers from the
 *   whole log (two concurrent first look-ups both do);
 * - `auto` with near-duplicate quarantine on, and `always`: built at start.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import type { Engine } from "../src/db/database.js";
import { PDQ_INDEX_BUILT, PDQ_INDEX_IDLE } from "../src/media/pdq-search-service.js";
import { forEachEngine } from "./support/databases.js";
import { metric } from "./support/metrics.js";
import { BASE, D, FAR, INSIDE, WrittenPdqHasher } from "./support/near-duplicate-model.js";
import { serverOn, uploadHashed } from "./support/near-duplicate-servers.js";
import { asConfigText } from "./support/second-process.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

const LOOKUP = "/_mxcd/admin/v1/media/lookup";

forEachEngine("PDQ index warm-up", (engine: Engine) => {
  const hasher = new WrittenPdqHasher();
  let first: TestServer;
  const ids: string[] = [];
  const running: TestServer[] = [];

  before(async () => {
    first = await serverOn(engine, undefined, null, hasher);
    const alice = await first.user("alice");
    for (const pdq of [BASE, INSIDE, FAR]) ids.push(await uploadHashed(first, alice, pdq));
    await first.stop();
  });
  after(async () => {
    for (const s of running.splice(0)) await s.stop();
  });

  /** A server on the first one's database and store; resolves once its start's warm-up is over. */
  const restart = async (warmUp: "auto" | "always" | "never", distance: number | null) => {
    for (const s of running.splice(0)) await s.stop();
    const server = await startTestServer(
      engine,
      {
        thumbnail_sizes: [],
        quarantine_similar: { pdq_max_distance: distance },
        pdq_index: { warm_up: warmUp },
        database: first.app.config.database,
        media_store: asConfigText(first.app.config.media_store),
      },
      { appOptions: { pdqHasher: hasher.hash } },
    );
    running.push(server);
    await server.app.pdqWarmUp();
    return server;
  };
  const index = async (server: TestServer) => ({
    state: await metric(server.baseUrl, "mxcd_pdq_index_state"),
    hashes: await metric(server.baseUrl, "mxcd_pdq_index_hashes"),
    built: (await metric(server.baseUrl, "mxcd_pdq_index_build_seconds")) > 0,
  });
  const unbuilt = { state: PDQ_INDEX_IDLE, hashes: 0, built: false };
  const built = { state: PDQ_INDEX_BUILT, hashes: 3, built: true };

  const lazily = async (server: TestServer, admin: string) => {
    assert.deepEqual(await index(server), unbuilt, "nothing built before a look-up");
    const user = await server.user(admin, { admin: true });
    const look = async () => {
      const res = await user.http.get(`${LOOKUP}?pdq=${BASE}&max_distance=${D}`);
      assert.equal(res.status, 200);
      return (res.body as { media: { media_id: string }[] }).media.map((m) => m.media_id);
    };
    // Two first look-ups at once: one builds, the other waits; both see the whole log.
    const [a, b] = await Promise.all([look(), look()]);
    assert.deepEqual(a, [ids[0], ids[1]]);
    assert.deepEqual(b, [ids[0], ids[1]]);
    assert.deepEqual(await index(server), built, "built by the first look-up");
  };

  it("auto, near-duplicate quarantine off: built by the first look-up only", async () => {
    await lazily(await restart("auto", null), "admin1");
  });

  it("never, near-duplicate quarantine on: built by the first look-up only", async () => {
    await lazily(await restart("never", D), "admin2");
  });

  it("auto, near-duplicate quarantine on: built at start", async () => {
    assert.deepEqual(await index(await restart("auto", D)), built);
  });

  it("always, near-duplicate quarantine off: built at start", async () => {
    assert.deepEqual(await index(await restart("always", null)), built);
  });
});
