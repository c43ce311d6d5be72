/**
 * The upload quota's running totals (migration 0019), on each engine: after
 * random writes of every kind a write path makes to `local_media_repository`
 * — uploads, URL-preview rows, pending ids claimed, stored and given back,
 * imports of many rows in one statement, deletes one by one and purges of
 * many, a row's user, creation time or url_cache changed — the bucket
 * totals equal the rows summed from scratch, and the quota's reads
 * (`usage`, the check-and-insert: SQLite's statement, PostgreSQL's
 * `mxcd_reserve_upload`) equal a plain sum over the rows for windows
 * starting anywhere, on bucket boundaries and one ms either side included.
 * And the migration fills the totals from rows that were there before it.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { MIGRATIONS } from "../src/db/migrations/index.js";
import { migrationContext } from "../src/db/migrations/migration.js";
import { UploadQuotaRepository } from "../src/repositories/upload-quota-repository.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** Around this time: a day boundary, with rows two days either side. */
const BASE = 20_000 * DAY;
const USERS = ["@a:test.local", "@b:test.local", "@c:test.local"];
const CLAIMED = -1;

/** A small seeded generator (mulberry32), so a failure replays. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A time near BASE, often on or next to a minute, hour or day boundary. */
function someTime(next: () => number): number {
  const span = [MINUTE, HOUR, DAY][Math.floor(next() * 3)]!;
  const offset = Math.floor((next() - 0.5) * 4 * DAY);
  if (next() < 0.5) return BASE + offset;
  const edge = BASE + Math.round(offset / span) * span;
  return edge + [-1, 0, 1][Math.floor(next() * 3)]!;
}

interface Row {
  media_id: string;
  user_id: string | null;
  created_ts: number;
  media_length: number | null;
  url_cache: string | null;
}

let ids = 0;

async function insertRows(database: Database, rows: readonly Omit<Row, "media_id">[]) {
  if (rows.length === 0) return;
  await database.db
    .insertInto("local_media_repository")
    .values(
      rows.map((r) => ({
        ...r,
        media_id: `m${++ids}`,
        media_type: "application/octet-stream",
        safe_from_quarantine: false,
        authenticated: true,
      })),
    )
    .execute();
}

async function allRows(database: Database): Promise<Row[]> {
  const rows = await database.db
    .selectFrom("local_media_repository")
    .select(["media_id", "user_id", "created_ts", "media_length", "url_cache"])
    .execute();
  return rows.map((r) => ({
    ...r,
    created_ts: Number(r.created_ts),
    media_length: r.media_length === null ? null : Number(r.media_length),
  }));
}

const counts = (r: Row) => r.user_id !== null && r.url_cache === null && (r.media_length ?? 0) > 0;
const floorTo = (ts: number, span: number) => ts - (((ts % span) + span) % span);

/** The totals table must equal the rows summed from scratch (buckets of 0 aside). */
async function assertTotalsExact(database: Database) {
  const expected = new Map<string, number>();
  for (const row of await allRows(database)) {
    if (!counts(row)) continue;
    for (const span of [MINUTE, HOUR, DAY]) {
      const key = `${row.user_id} ${span} ${floorTo(row.created_ts, span)}`;
      expected.set(key, (expected.get(key) ?? 0) + row.media_length!);
    }
  }
  const actual = new Map<string, number>();
  for (const t of await database.db.selectFrom("local_media_upload_totals").selectAll().execute()) {
    if (Number(t.bytes) !== 0) actual.set(`${t.user_id} ${t.span} ${t.bucket_ts}`, Number(t.bytes));
  }
  assert.deepEqual(
    [...actual].sort(),
    [...expected].filter(([, bytes]) => bytes !== 0).sort(),
    "bucket totals differ from the rows summed",
  );
}

/** What the quota counts, summed plainly over the rows (the module note's rule). */
function plainSum(rows: readonly Row[], user: string, since: number): number {
  let sum = 0;
  for (const r of rows)
    if (r.user_id === user && counts(r) && r.created_ts > since) sum += r.media_length!;
  return sum;
}

/** Window starts: every boundary near the rows and one ms either side, each row's time, random ones. */
function sincesFor(rows: readonly Row[], next: () => number): number[] {
  const sinces = new Set<number>();
  for (let t = BASE - 3 * DAY; t <= BASE + 3 * DAY; t += HOUR) {
    for (const d of [-1, 0, 1]) sinces.add(t + d);
  }
  for (const r of rows) {
    for (const d of [-1, 0, 1]) {
      sinces.add(r.created_ts + d);
      sinces.add(floorTo(r.created_ts, MINUTE) + d);
    }
  }
  for (let i = 0; i < 50; i++) sinces.add(someTime(next));
  sinces.add(0);
  sinces.add(BASE + 10 * DAY);
  return [...sinces];
}

async function assertReadsExact(
  database: Database,
  repo: UploadQuotaRepository,
  next: () => number,
) {
  const rows = await allRows(database);
  const sinces = sincesFor(rows, next);
  for (const user of USERS) {
    const used: number[] = [];
    for (let i = 0; i < sinces.length; i += 100) {
      used.push(...(await repo.usage(user, sinces.slice(i, i + 100), 0)).used);
    }
    const wrong = sinces.filter((since, i) => used[i] !== plainSum(rows, user, since));
    assert.deepEqual(wrong, [], `${user}: usage() differs from the plain sum for these starts`);
  }
  // The check-and-insert reads the same sums: it grants exactly the room left.
  const MAX = 1e12;
  for (const user of USERS) {
    for (let i = 0; i < 40; i++) {
      const picked = Array.from(
        { length: 1 + (i % 3) },
        () => sinces[Math.floor(next() * sinces.length)]!,
      );
      const windows = picked.map((sinceTs, j) => ({ sinceTs, maxBytes: MAX - j * 1000 }));
      const room = Math.min(...windows.map((w) => w.maxBytes - plainSum(rows, user, w.sinceTs)));
      const ask = { userId: user, owner: "test", windows, now: 0, expiresTs: 1 };
      const id = `r${++ids}`;
      assert.equal(
        await repo.reserve({
          ...ask,
          reservationId: `r${++ids}`,
          atLeast: room + 1,
          atMost: room + 1,
        }),
        undefined,
        `${user} ${picked}: granted more than the room`,
      );
      assert.equal(
        await repo.reserve({ ...ask, reservationId: id, atLeast: room, atMost: room + 5 }),
        room,
        `${user} ${picked}: did not grant the room`,
      );
      await repo.drop(id);
    }
  }
}

/** One random write, as some write path of mxcd makes it. */
async function randomWrite(database: Database, next: () => number) {
  const db = database.db;
  const user = () => USERS[Math.floor(next() * USERS.length)]!;
  const length = () => 1 + Math.floor(next() * 10_000);
  const pick = async () => {
    const rows = await allRows(database);
    return rows[Math.floor(next() * rows.length)];
  };
  const kind = Math.floor(next() * 11);
  switch (kind) {
    case 0:
    case 1: // an upload
      return insertRows(database, [
        { user_id: user(), created_ts: someTime(next), media_length: length(), url_cache: null },
      ]);
    case 2: // a URL-preview image (not counted), a pending id, an empty upload, a claimed id
      return insertRows(database, [
        {
          user_id: user(),
          created_ts: someTime(next),
          media_length: length(),
          url_cache: "https://e.org/",
        },
        { user_id: user(), created_ts: someTime(next), media_length: null, url_cache: null },
        { user_id: user(), created_ts: someTime(next), media_length: 0, url_cache: null },
        { user_id: user(), created_ts: someTime(next), media_length: CLAIMED, url_cache: null },
        { user_id: null, created_ts: someTime(next), media_length: length(), url_cache: null },
      ]);
    case 3: // the importer: many rows in one statement
      return insertRows(
        database,
        Array.from({ length: 20 }, () => ({
          user_id: user(),
          created_ts: someTime(next),
          media_length: length(),
          url_cache: next() < 0.2 ? "https://e.org/" : null,
        })),
      );
    case 4: {
      // a pending id claimed, then stored or given back (media_length: null → -1 → n or null)
      const row = await pick();
      if (!row) return;
      await db
        .updateTable("local_media_repository")
        .set({ media_length: CLAIMED })
        .where("media_id", "=", row.media_id)
        .execute();
      const stored = next() < 0.7 ? length() : null;
      await db
        .updateTable("local_media_repository")
        .set({ media_length: stored })
        .where("media_id", "=", row.media_id)
        .execute();
      return;
    }
    case 5: {
      // a delete by id (the admin API, retention)
      const row = await pick();
      if (row)
        await db
          .deleteFrom("local_media_repository")
          .where("media_id", "=", row.media_id)
          .execute();
      return;
    }
    case 6: // a purge: every row created before a time, one statement
      await db
        .deleteFrom("local_media_repository")
        .where("created_ts", "<", someTime(next) - 2 * DAY)
        .execute();
      return;
    case 7: {
      // a row moved to another user or none
      const row = await pick();
      const to = next() < 0.2 ? null : user();
      if (row)
        await db
          .updateTable("local_media_repository")
          .set({ user_id: to })
          .where("media_id", "=", row.media_id)
          .execute();
      return;
    }
    case 8: {
      // a row's creation time changed
      const row = await pick();
      if (row)
        await db
          .updateTable("local_media_repository")
          .set({ created_ts: someTime(next) })
          .where("media_id", "=", row.media_id)
          .execute();
      return;
    }
    case 9: {
      // url_cache set or cleared, and a column that decides nothing (quarantine)
      const row = await pick();
      if (!row) return;
      const urlCache = row.url_cache === null ? "https://e.org/" : null;
      await db
        .updateTable("local_media_repository")
        .set({ url_cache: urlCache })
        .where("media_id", "=", row.media_id)
        .execute();
      await db
        .updateTable("local_media_repository")
        .set({ quarantined_by: "@admin:test.local" })
        .where("media_id", "=", row.media_id)
        .execute();
      return;
    }
    default: {
      // every deciding column set to its own value, and one statement changing many rows
      const row = await pick();
      if (row)
        await db
          .updateTable("local_media_repository")
          .set({ ...row })
          .where("media_id", "=", row.media_id)
          .execute();
      await db
        .updateTable("local_media_repository")
        .set((eb) => ({ media_length: eb("media_length", "+", 1) }))
        .where("user_id", "=", user())
        .where("media_length", ">", 0)
        .execute();
    }
  }
}

forEachEngine("upload quota totals", (engine) => {
  let database: Database;
  let repo: UploadQuotaRepository;
  before(async () => {
    database = createDatabase(await freshDatabaseConfig(engine));
    await runMigrations(database);
    repo = new UploadQuotaRepository(database);
  });
  after(() => database.close());

  it("equal the rows summed after random writes of every kind, and the reads equal plain sums", async () => {
    const next = random(17);
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 25; i++) await randomWrite(database, next);
      await assertTotalsExact(database);
      await assertReadsExact(database, repo, next);
    }
  });

  it("count an upload whose row lands and whose reservation ends in one transaction once", async () => {
    const user = "@land:test.local";
    const windows = [{ sinceTs: BASE - DAY, maxBytes: 1000 }];
    const ask = { userId: user, owner: "test", windows, now: 0, expiresTs: 1 };
    assert.equal(
      await repo.reserve({ ...ask, reservationId: "land", atLeast: 600, atMost: 600 }),
      600,
    );
    await database.transaction(async (tx) => {
      await tx
        .insertInto("local_media_repository")
        .values({
          media_id: "landed",
          media_type: "application/octet-stream",
          media_length: 600,
          created_ts: BASE,
          user_id: user,
          safe_from_quarantine: false,
          authenticated: true,
        })
        .execute();
      await repo.drop("land", tx);
    });
    assert.equal(
      await repo.reserve({ ...ask, reservationId: "r", atLeast: 401, atMost: 401 }),
      undefined,
    );
    assert.equal(
      await repo.reserve({ ...ask, reservationId: "r", atLeast: 400, atMost: 401 }),
      400,
    );
  });
});

forEachEngine("upload quota totals: migration 0019", (engine) => {
  it("fills the totals from the rows already there", async () => {
    const database = createDatabase(await freshDatabaseConfig(engine));
    try {
      const at = MIGRATIONS.findIndex((m) => m.name === "0019-upload-totals");
      const context = migrationContext(engine);
      const db = database.db as never;
      for (const migration of MIGRATIONS.slice(0, at)) await migration.up(db, context);
      const next = random(5);
      for (let i = 0; i < 8; i++) {
        await insertRows(
          database,
          Array.from({ length: 30 }, () => ({
            user_id: next() < 0.1 ? null : USERS[Math.floor(next() * USERS.length)]!,
            created_ts: someTime(next),
            media_length: [null, 0, CLAIMED, 1 + Math.floor(next() * 5000)][
              Math.floor(next() * 4)
            ]!,
            url_cache: next() < 0.2 ? "https://e.org/" : null,
          })),
        );
      }
      await MIGRATIONS[at]!.up(db, context);
      await assertTotalsExact(database);
      await assertReadsExact(database, new UploadQuotaRepository(database), next);
      // And its triggers run from then on.
      for (let i = 0; i < 10; i++) await randomWrite(database, next);
      await assertTotalsExact(database);
    } finally {
      await database.close();
    }
  });
});
