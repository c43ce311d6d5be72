/**
 * The server-wide media listing reads each table down an index, with no sort
 * step (docs/admin-api.md "Server-wide media listing", "Cost"): the first
 * page and a later page, unfiltered and with each filter that should be an
 * index range scan, on both engines. The queries are the repository's own,
 * compiled and handed to the engine's EXPLAIN:
 *
 * - SQLite: EXPLAIN QUERY PLAN must not say "USE TEMP B-TREE" (a sort) and
 *   must name the index the walk is meant to use.
 * - PostgreSQL: sorts and sequential scans are priced out (`enable_sort`,
 *   `enable_incremental_sort`, `enable_seqscan` off), so the plan has a Sort node only when no index
 *   gives the order — the assertion holds whatever the table sizes and
 *   statistics, where a plain EXPLAIN on a small table would prefer a sort.
 *
 * `room_id` is the one filter that sorts: the room's media, read from the
 * room's references first (its cost grows with the room, not the table) —
 * never a walk of a whole media table that tests each row against the room.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { CompiledQuery } from "kysely";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import {
  type MediaListCursor,
  type MediaListFilter,
  MediaListingRepository,
} from "../src/repositories/media-listing-repository.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { mixedMedia, seedMedia } from "./support/media-listing-seed.js";

const HERE = "test.local";

/** Filters whose pages must be index walks, with the index each side should use (SQLite). */
const WALKS: [string, MediaListFilter, { local?: RegExp; remote?: RegExp }][] = [
  ["none", {}, { local: /local_media_created_id/, remote: /remote_media_created_id/ }],
  ["user_id", { userId: "@alice:test.local" }, { local: /local_media_user_created_id/ }],
  ["origin=local", { origin: { local: true } }, { local: /local_media_created_id/ }],
  [
    "origin=remote",
    { origin: { local: false, name: "a.example" } },
    { remote: /remote_media_origin_created_id/ },
  ],
  [
    "media_type exact",
    { mediaType: { exact: "image/png" } },
    { local: /local_media_type_created_id/, remote: /remote_media_type_created_id/ },
  ],
  ["media_type prefix", { mediaType: { prefix: "image/" } }, {}],
  ["min_size", { minSize: 100 }, {}],
  ["max_size", { maxSize: 100 }, {}],
  [
    "quarantined=true",
    { quarantined: true },
    { local: /local_media_(quarantined_created|created_id)/ },
  ],
  ["quarantined=false", { quarantined: false }, {}],
  ["protected=true", { protected: true }, { local: /local_media_protected_created/ }],
  ["protected=false", { protected: false }, {}],
];

const CURSORS: [string, MediaListCursor | null][] = [
  ["first page", null],
  ["after a local item", { ts: 1_004_000, origin: null, mediaId: "L0004" }],
  ["after a remote item", { ts: 1_004_000, origin: "a.example", mediaId: "R0004" }],
];

forEachEngine("mxcd media listing query plans", (engine) => {
  let database: Database;
  let listing: MediaListingRepository;

  before(async () => {
    database = createDatabase(await freshDatabaseConfig(engine));
    await runMigrations(database);
    await seedMedia(database, mixedMedia(600, 400));
    listing = new MediaListingRepository(database, HERE);
  });
  after(async () => {
    await database?.close();
  });

  /** The plan of a compiled query, one line per node / step. */
  async function plan(query: CompiledQuery, priceOutSorts = true): Promise<string> {
    if (engine === "sqlite") {
      const explained = CompiledQuery.raw(`EXPLAIN QUERY PLAN ${query.sql}`, [...query.parameters]);
      const rows = (await database.db.executeQuery(explained)).rows as { detail: string }[];
      return rows.map((r) => r.detail).join("\n");
    }
    return database.transaction(async (tx) => {
      for (const setting of ["enable_sort", "enable_seqscan", "enable_incremental_sort"]) {
        if (priceOutSorts) await tx.executeQuery(CompiledQuery.raw(`SET LOCAL ${setting} = off`));
      }
      const explained = CompiledQuery.raw(`EXPLAIN ${query.sql}`, [...query.parameters]);
      const rows = (await tx.executeQuery(explained)).rows as Record<string, string>[];
      return rows.map((r) => r["QUERY PLAN"]).join("\n");
    });
  }

  function assertNoSort(text: string, what: string): void {
    if (engine === "sqlite") assert.doesNotMatch(text, /TEMP B-TREE/, `${what}:\n${text}`);
    else assert.doesNotMatch(text, /Sort/, `${what}:\n${text}`);
  }

  for (const [name, filter, indexes] of WALKS) {
    for (const [where, cursor] of CURSORS) {
      it(`${name}, ${where}: an index walk, no sort`, async () => {
        const sides = listing.sides(filter);
        assert.ok(sides.local || sides.remote);
        if (sides.local) {
          const text = await plan(listing.localQuery(filter, cursor, 51).compile());
          assertNoSort(text, `local ${name} ${where}`);
          if (engine === "sqlite" && indexes.local) assert.match(text, indexes.local, text);
        }
        if (sides.remote) {
          const text = await plan(listing.remoteQuery(filter, cursor, 51).compile());
          assertNoSort(text, `remote ${name} ${where}`);
          if (engine === "sqlite" && indexes.remote) assert.match(text, indexes.remote, text);
        }
      });
    }
  }

  it("room_id reads the room's references first, then each media row by its key", async () => {
    const filter: MediaListFilter = { roomId: "!console:test.local" };
    for (const [where, cursor] of CURSORS) {
      for (const query of [
        listing.localQuery(filter, cursor, 51),
        listing.remoteQuery(filter, cursor, 51),
      ]) {
        // The room's media is sorted here: the sort is not priced out.
        const text = await plan(query.compile(), false);
        assert.match(text, /media_references_room/, `${where}:\n${text}`);
        // SQLite: never a walk over a media table testing each row against
        // the room (PostgreSQL's choice follows its statistics, not the SQL).
        if (engine === "sqlite") {
          assert.doesNotMatch(text, /SCAN (local_media_repository|remote_media_cache)/, text);
        }
      }
    }
  });
});
