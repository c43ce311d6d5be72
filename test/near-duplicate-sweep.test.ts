/**
 * The `near-duplicate-check` job's sweep (docs/trust-and-safety.md
 * "Near-duplicate quarantine"), on SQLite and PostgreSQL: turning the
 * distance on, then raising it, takes the older images near quarantined
 * sources, once in the feed per transition, and an image an admin released
 * within the distance already checked stays released.
 */
import assert from "node:assert/strict";
import { after, it } from "node:test";
import { NEAR_DUPLICATE_CHECK } from "../src/jobs/near-duplicate-check-job.js";
import { forEachEngine } from "./support/databases.js";
import {
  ADMIN,
  assertFeedMatchesRows,
  BASE,
  D,
  feedOf,
  flip,
  WrittenPdqHasher,
} from "./support/near-duplicate-model.js";
import {
  quarantinedByOf,
  serverOn,
  sourcesOf,
  uploadHashed,
} from "./support/near-duplicate-servers.js";
import type { TestServer } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

forEachEngine("near-duplicate sweep", (engine) => {
  const hasher = new WrittenPdqHasher();
  const servers: TestServer[] = [];
  const stopAll = async () => {
    for (const s of servers.splice(0)) await s.stop();
  };
  after(stopAll);

  it("sweeps older hashes when the distance is turned on, then raised", async () => {
    // Off: the quarantine of `source` takes nothing.
    const a = await serverOn(engine, undefined, null, hasher);
    servers.push(a);
    const admin = await a.user("admin", { admin: true });
    const source = await uploadHashed(a, admin, BASE);
    const near3 = await uploadHashed(a, admin, flip(BASE, 3));
    const near8 = await uploadHashed(a, admin, flip(BASE, 8));
    const far = await uploadHashed(a, admin, flip(BASE, 20));
    assert.equal(
      (await admin.http.post(`${ADMIN}/media/quarantine/test.local/${source}`)).status,
      200,
    );
    assert.equal(await quarantinedByOf(a.app.database, near3), null);
    await stopAll();

    // On at 4: the sweep takes near3 (by `system`, held by source), not near8.
    const b = await serverOn(engine, a, 4, hasher);
    servers.push(b);
    await waitFor(
      async () => (await quarantinedByOf(b.app.database, near3)) === "system",
      "sweep at 4",
    );
    const done = async (server: TestServer, distance: number) => {
      const job = (await server.app.jobs.states()).find((s) => s.name === NEAR_DUPLICATE_CHECK);
      const p = job?.progress as { distance: number | null; sweep: unknown };
      return p.distance === distance && p.sweep === null;
    };
    await waitFor(() => done(b, 4), "sweep at 4 finished");
    assert.equal(await quarantinedByOf(b.app.database, near8), null);
    assert.deepEqual(await sourcesOf(b.app.database, near3), [source]);
    // An admin releases near3 directly: within the distance already checked.
    const admin2 = await b.user("admin2", { admin: true });
    await admin2.http.post(`${ADMIN}/media/unquarantine/test.local/${near3}`);
    assert.equal(await quarantinedByOf(b.app.database, near3), null);
    await stopAll();

    // Raised to 10: the sweep takes near8 only; near3 stays released.
    const c = await serverOn(engine, a, D, hasher);
    servers.push(c);
    await waitFor(
      async () => (await quarantinedByOf(c.app.database, near8)) === "system",
      "sweep at 10",
    );
    await waitFor(() => done(c, D), "sweep at 10 finished");
    const db = c.app.database.db;
    assert.equal(
      await quarantinedByOf(c.app.database, near3),
      null,
      "released within 4 stays released",
    );
    assert.equal(await quarantinedByOf(c.app.database, far), null);
    assert.deepEqual(await feedOf(db, near3), [
      [true, "system"],
      [false, null],
    ]);
    assert.deepEqual(await feedOf(db, near8), [[true, "system"]]);
    assert.deepEqual(await feedOf(db, far), []);
    await assertFeedMatchesRows(db);
    await stopAll();
  });
});
