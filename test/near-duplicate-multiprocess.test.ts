/**
 * Near-duplicate quarantine with several writers on PostgreSQL
 * (docs/trust-and-safety.md "Near-duplicate quarantine"): random operations
 * from several independent connection pools at once (each draining the
 * `near-duplicate-check` job after its hashes), and admin quarantines
 * through a second real `mxcd serve` process, keep the feed gapless and
 * exactly-once. The cross-process catch-ups: near-duplicate-cross-process.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createDatabase } from "../src/db/database.js";
import { HttpClient } from "./support/http-client.js";
import {
  ADMIN,
  assertFeedMatchesRows,
  D,
  makeItems,
  operate,
  prng,
  rowStates,
  serviceOn,
} from "./support/near-duplicate-model.js";
import {
  type SecondProcess,
  startSecondProcess,
  stopSecondProcess,
} from "./support/second-process.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

describe("near-duplicate quarantine, concurrent writers [postgres]", () => {
  if (!process.env.MXCD_TEST_POSTGRES_URL) return;
  let server: TestServer;
  let second: SecondProcess | undefined;
  before(async () => {
    server = await startTestServer("postgres", {
      quarantine_similar: { pdq_max_distance: D },
      thumbnail_sizes: [],
    });
    // A second real `mxcd serve` on the same database, quarantining over HTTP.
    second = await startSecondProcess(server, { quarantine_similar: { pdq_max_distance: D } });
  });
  after(async () => {
    await stopSecondProcess(second);
    await server.stop();
  });

  it("keeps the feed gapless and exactly-once", async () => {
    const items = makeItems("C", 16, 6, prng(99));
    let mostEdges = 0;
    const pools = [
      server.app.database,
      ...[1, 2].map(() => createDatabase(server.app.config.database)),
    ];
    const admin = await server.user("admin", { admin: true });
    const viaSecond = new HttpClient(second!.base, admin.token);
    let overHttp = 0;
    try {
      const overSecond = async () => {
        const random = prng(700);
        for (let n = 0; n < 200; n++) {
          const item = items[Math.floor(random() * items.length)]!;
          const verb = random() < 0.55 ? "quarantine" : "unquarantine";
          const res = await viaSecond.post(
            `${ADMIN}/media/${verb}/${item.origin ?? "test.local"}/${item.mediaId}`,
          );
          assert.equal(res.status, 200);
          overHttp += 1;
        }
      };
      await Promise.all([
        overSecond(),
        ...pools.map(async (database, i) => {
          const random = prng(500 + i);
          const service = serviceOn(database, server);
          for (let n = 0; n < 300; n++) {
            await operate(random, items, service, database);
            const { n: edges } = await database.db
              .selectFrom("quarantine_propagations")
              .select((eb) => eb.fn.countAll<number>().as("n"))
              .executeTakeFirstOrThrow();
            mostEdges = Math.max(mostEdges, Number(edges));
          }
        }),
      ]);
      assert.equal(overHttp, 200);
      await assertFeedMatchesRows(server.app.database.db);
      // Non-transitive: a source is never held; every target is quarantined.
      const db = server.app.database.db;
      const edges = await db.selectFrom("quarantine_propagations").selectAll().execute();
      assert.ok(mostEdges > 1, "propagation happened");
      const states = await rowStates(db);
      const targets = new Set(edges.map((e) => `${e.target_origin}/${e.target_media_id}`));
      for (const e of edges) {
        assert.notEqual(states.get(`${e.target_origin}/${e.target_media_id}`) ?? null, null);
        assert.ok(
          !targets.has(`${e.source_origin}/${e.source_media_id}`),
          "a source is never held",
        );
      }
    } finally {
      for (const p of pools.slice(1)) await p.close();
    }
  });
});
