/**
 * UploadQuotaRepository.reserve on a real database of each engine:
 *
 * - the window sums of the one-round-trip check (SQLite's statement,
 *   PostgreSQL's `mxcd_reserve_upload`, migration 0016) agree on windows
 *   given in any order, sharing a start, and on rows exactly at a window's
 *   start (not inside it); live reservations count, expired ones and the
 *   reservation's own do not;
 * - (PostgreSQL) the check reads AFTER the user's lock: a racer that holds
 *   the lock and commits a reservation, or its upload's row, while the check
 *   waits for the lock is counted. A check whose snapshot were taken before
 *   the lock (one statement taking the lock itself) would miss it and grant
 *   room already held. And an upload that lands without the lock (its row
 *   in, its reservation out, one commit) is counted once however its commit
 *   falls between the check's reads: rows and reservations are read by one
 *   statement. SQLite has no such racer: its one connection in one
 *   process runs one statement at a time.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import pg from "pg";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import {
  quotaLockKey,
  type ReserveRequest,
  UploadQuotaRepository,
} from "../src/repositories/upload-quota-repository.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";

const FAR = 10_000_000;
let ids = 0;

/** Rows of `user`: [created_ts, media_length], url_cache as given (null: an upload). */
async function insertRows(
  database: Database,
  user: string,
  rows: readonly (readonly [number, number, string?])[],
) {
  for (const [createdTs, length, urlCache] of rows) {
    await database.db
      .insertInto("local_media_repository")
      .values({
        media_id: `m${++ids}`,
        media_type: "application/octet-stream",
        media_length: length,
        created_ts: createdTs,
        user_id: user,
        url_cache: urlCache ?? null,
        safe_from_quarantine: false,
        authenticated: true,
      })
      .execute();
  }
}

function request(user: string, overrides: Partial<ReserveRequest>): ReserveRequest {
  return {
    reservationId: `r${++ids}`,
    userId: user,
    owner: "test",
    windows: [{ sinceTs: 0, maxBytes: 1000 }],
    atLeast: 1,
    atMost: 1000,
    now: 1000,
    expiresTs: FAR,
    ...overrides,
  };
}

forEachEngine("upload quota check: window sums", (engine) => {
  let database: Database;
  let repo: UploadQuotaRepository;
  before(async () => {
    database = createDatabase(await freshDatabaseConfig(engine));
    await runMigrations(database);
    repo = new UploadQuotaRepository(database);
  });
  after(() => database.close());

  it("takes the smallest room of windows in any order, a start shared, rows at a start outside", async () => {
    const user = "@sums:test.local";
    await insertRows(database, user, [
      [100, 10],
      [101, 20],
      [200, 40],
      [201, 80],
      [300, 160],
      // Not counted: a URL-preview image, an empty row.
      [250, 5000, "https://example.org/"],
      [250, 0],
    ]);
    // Used: since 100 → 300 bytes, since 200 → 240, since 50 → 310.
    const windows = [
      { sinceTs: 100, maxBytes: 1000 }, // room 700
      { sinceTs: 50, maxBytes: 400 }, // room 90
      { sinceTs: 200, maxBytes: 300 }, // room 60
      { sinceTs: 200, maxBytes: 500 }, // room 260
    ];
    assert.equal(await repo.reserve(request(user, { windows, atLeast: 61 })), undefined);
    const id = `r${++ids}`;
    assert.equal(
      await repo.reserve(request(user, { reservationId: id, windows, atLeast: 60 })),
      60,
    );
    // Its own reservation does not count against it when it grows; shrinking to 10 frees 50.
    assert.equal(
      await repo.reserve(request(user, { reservationId: id, windows, atLeast: 10, atMost: 10 })),
      10,
    );
    assert.equal(await repo.reserve(request(user, { windows, atLeast: 51 })), undefined);
    assert.equal(await repo.reserve(request(user, { windows, atLeast: 50 })), 50);
    // Both reservations lapse at FAR: then only the rows count again.
    assert.equal(
      await repo.reserve(request(user, { windows, atLeast: 60, now: FAR, expiresTs: FAR + 1 })),
      60,
    );
  });

  it("counts every row of a single window after its start", async () => {
    const user = "@one:test.local";
    await insertRows(database, user, [
      [500, 300],
      [501, 200],
    ]);
    const windows = [{ sinceTs: 500, maxBytes: 1000 }];
    assert.equal(await repo.reserve(request(user, { windows, atLeast: 801 })), undefined);
    assert.equal(await repo.reserve(request(user, { windows, atLeast: 800, atMost: 5000 })), 800);
  });
});

// A racer holding the lock in another transaction exists only on PostgreSQL.
forEachEngine("upload quota check: reads after the lock", (engine) => {
  if (engine !== "postgres") return;
  let database: Database;
  let repo: UploadQuotaRepository;
  let url: string;
  before(async () => {
    const config = await freshDatabaseConfig(engine);
    if (config.engine !== "postgres") throw new Error("unreachable");
    url = config.url;
    database = createDatabase(config);
    await runMigrations(database);
    repo = new UploadQuotaRepository(database);
  });
  after(() => database.close());

  /** Another process's live reservation of `bytes` for `user`. */
  async function holdReservation(user: string, id: string, bytes: number): Promise<void> {
    await database.db
      .insertInto("media_upload_reservations")
      .values({ reservation_id: id, user_id: user, bytes, owner: "other", expires_ts: FAR })
      .execute();
  }

  /** Resolves once some session waits for a lock of `locktype` (the check behind the racer). */
  async function someoneWaitsForTheLock(locktype = "advisory"): Promise<void> {
    const observer = new pg.Client({ connectionString: url });
    await observer.connect();
    try {
      for (;;) {
        const { rows } = await observer.query(
          "select count(*)::int as n from pg_locks where locktype = $1 and not granted",
          [locktype],
        );
        if (rows[0].n > 0) return;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    } finally {
      await observer.end();
    }
  }

  /** Runs `work` in the racer's transaction holding `user`'s lock, starts a check, then commits. */
  async function raceWhileLocked(user: string, work: string, params: unknown[]) {
    const racer = new pg.Client({ connectionString: url });
    await racer.connect();
    try {
      await racer.query("begin");
      await racer.query("select pg_advisory_xact_lock($1::bigint)", [quotaLockKey(user)]);
      await racer.query(work, params);
      const check = repo.reserve(
        request(user, { windows: [{ sinceTs: 0, maxBytes: 1000 }], atLeast: 1, atMost: 1000 }),
      );
      await someoneWaitsForTheLock();
      await racer.query("commit");
      return await check;
    } finally {
      await racer.end();
    }
  }

  it("counts a reservation the lock's holder committed while the check waited", async () => {
    const user = "@held:test.local";
    const granted = await raceWhileLocked(
      user,
      "insert into media_upload_reservations (reservation_id, user_id, bytes, owner, expires_ts) values ('racer', $1, 1000, 'other', $2)",
      [user, FAR],
    );
    assert.equal(granted, undefined, "the racer's 1000 bytes were not counted");
  });

  it("counts an upload's row committed (its reservation deleted) while the check waited", async () => {
    const user = "@landed:test.local";
    await holdReservation(user, "landing", 600);
    const granted = await raceWhileLocked(
      user,
      `with gone as (delete from media_upload_reservations where reservation_id = 'landing')
       insert into local_media_repository (media_id, media_type, media_length, created_ts, user_id, safe_from_quarantine, authenticated)
       values ('landed', 'application/octet-stream', 600, 10, $1, false, true)`,
      [user],
    );
    assert.equal(granted, 400, "the upload's 600 bytes were counted zero or two times");
  });

  it("counts an upload that lands without the lock while the check reads (rows and reservations in one snapshot)", async () => {
    // An upload landing swaps its reservation for its row in one commit and
    // takes no lock. The racer holds the reservations table, so a check that
    // read the rows, then the reservations in a later statement, would wait
    // between the two reads and see the row missing and the reservation gone.
    const user = "@unlocked:test.local";
    await holdReservation(user, "unlocked", 600);
    const racer = new pg.Client({ connectionString: url });
    await racer.connect();
    try {
      await racer.query("begin");
      await racer.query("lock table media_upload_reservations in access exclusive mode");
      await racer.query(
        `with gone as (delete from media_upload_reservations where reservation_id = 'unlocked')
         insert into local_media_repository (media_id, media_type, media_length, created_ts, user_id, safe_from_quarantine, authenticated)
         values ('unlocked', 'application/octet-stream', 600, 10, $1, false, true)`,
        [user],
      );
      const check = repo.reserve(
        request(user, { windows: [{ sinceTs: 0, maxBytes: 1000 }], atLeast: 1, atMost: 1000 }),
      );
      await someoneWaitsForTheLock("relation");
      await racer.query("commit");
      assert.equal(await check, 400, "the landed 600 bytes were counted zero or two times");
    } finally {
      await racer.end();
    }
  });

  it("counts a row the lock's holder committed while the check waited (the window sums)", async () => {
    const user = "@row:test.local";
    const granted = await raceWhileLocked(
      user,
      `insert into local_media_repository (media_id, media_type, media_length, created_ts, user_id, safe_from_quarantine, authenticated)
       values ('row', 'application/octet-stream', 700, 10, $1, false, true)`,
      [user],
    );
    assert.equal(granted, 300, "the racer's 700 stored bytes were not counted");
  });

  it("frees a reservation the lock's holder released while the check waited", async () => {
    const user = "@released:test.local";
    await holdReservation(user, "failing", 600);
    const granted = await raceWhileLocked(
      user,
      "delete from media_upload_reservations where reservation_id = 'failing'",
      [],
    );
    assert.equal(granted, 1000, "the released 600 bytes still counted");
  });

  it("refuses to run outside READ COMMITTED (its reads would precede its lock)", async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query("begin isolation level repeatable read");
      await assert.rejects(
        client.query(
          "select mxcd_reserve_upload(1, 'rr', '@rr:test.local', 'p', '{0}', '{1000}', 1, 1, 0, 10)",
        ),
        /READ COMMITTED/,
      );
    } finally {
      await client.end();
    }
  });
});
