/**
 * Near-duplicate quarantine against a model of its rule
 * (docs/trust-and-safety.md "Near-duplicate quarantine"), on SQLite and
 * PostgreSQL: random quarantine, unquarantine, protect, admit and hash
 * operations over a small set of hashes, checked after every operation
 * against the model (every row, every provenance row), and the feed replayed
 * (gapless, alternating, ending in the rows' state). Hashes are checked by
 * the `near-duplicate-check` job reading the hash log, drained after each.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import {
  assertFeedMatchesRows,
  D,
  Model,
  makeItems,
  operate,
  prng,
  rowStates,
  serviceOn,
} from "./support/near-duplicate-model.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

forEachEngine("near-duplicate quarantine model", (engine) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(engine, {
      quarantine_similar: { pdq_max_distance: D },
      thumbnail_sizes: [],
    });
  });
  after(() => server.stop());

  for (const seed of [1, 2, 3]) {
    it(`follows the model over random operations (seed ${seed})`, async () => {
      const random = prng(seed);
      const items = makeItems(`M${seed}x`, 12, 4, random);
      const model = new Model(items, D);
      const database = server.app.database;
      const service = serviceOn(database, server);
      // The server's own check job runs at D too (one job, whoever drains it).
      await service.drain.drain();
      const log: string[] = [];
      let mostEdges = 0;
      for (let n = 0; n < 400; n++) {
        log.push(await operate(random, items, service, database, model));
        mostEdges = Math.max(mostEdges, model.edges.size);
        const rows = await rowStates(database.db);
        for (const item of items) {
          const row = model.rows.get(item.key);
          assert.equal(rows.has(item.key), row !== undefined, item.key);
          if (!row) continue;
          assert.equal(rows.get(item.key), row.by, `${item.key} after ${log.slice(-5).join("; ")}`);
        }
        const edges = await database.db
          .selectFrom("quarantine_propagations")
          .selectAll()
          .where("target_media_id", "like", `M${seed}x%`)
          .execute();
        assert.deepEqual(
          edges
            .map(
              (e) =>
                `${e.target_origin}/${e.target_media_id}|${e.source_origin}/${e.source_media_id}`,
            )
            .sort(),
          [...model.edges].sort(),
          `provenance after ${log.slice(-5).join("; ")}`,
        );
      }
      await assertFeedMatchesRows(database.db);
      // The run exercised the rule: propagation happened, and so did releases by it.
      assert.ok(mostEdges > 1, "propagation happened");
    });
  }
});
