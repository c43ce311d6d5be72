/**
 * UploadQuotaService on a real database of each engine: a reservation
 * renewed by its process keeps counting past its first lease, one that is
 * not renewed stops counting (and the timer removes it), a released one
 * frees its bytes at once, and a failed renewal is logged.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { MatrixError } from "../src/domain/matrix-error.js";
import { LEASE_MS, UploadQuotaService } from "../src/media/upload-quota-service.js";
import { UploadQuotaRepository } from "../src/repositories/upload-quota-repository.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";

const USER = "@alice:test.local";

/** A logger that keeps its warnings. */
function warnings() {
  const seen: { fields: Record<string, unknown>; message: string }[] = [];
  return {
    seen,
    logger: {
      warn: (fields: object, message: string) =>
        seen.push({ fields: fields as Record<string, unknown>, message }),
    },
  };
}

forEachEngine("upload quota leases", (engine) => {
  let database: Database;
  let clock = Date.UTC(2026, 0, 1);
  let service: UploadQuotaService;

  before(async () => {
    database = createDatabase(await freshDatabaseConfig(engine));
    await runMigrations(database);
    service = new UploadQuotaService(
      {
        maxUploadSize: 4096,
        windows: [{ periodMs: 86_400_000, maxBytes: 1000 }],
        overrides: [],
        infoUri: "https://example.org/",
      },
      new UploadQuotaRepository(database),
      warnings().logger,
      () => clock,
    );
  });
  after(() => database.close());

  const reservationRows = async () =>
    (await database.db.selectFrom("media_upload_reservations").select("reservation_id").execute())
      .length;

  const refused = (promise: Promise<unknown>) =>
    assert.rejects(promise, (error: unknown) => {
      assert.ok(error instanceof MatrixError);
      assert.equal(error.errcode, "M_USER_LIMIT_EXCEEDED");
      return true;
    });

  it("keeps a renewed reservation counting; an unrenewed one lapses", async () => {
    const limits = service.limitsFor(USER);
    const held = await service.reserve(limits, USER, 600);
    assert.ok(held);
    assert.equal(held.granted, 600);
    await refused(service.reserve(limits, USER, 500));
    clock += LEASE_MS - 1000;
    await service.renew();
    clock += LEASE_MS - 1000;
    // Past the first lease: only the renewal keeps the 600 bytes held.
    await refused(service.reserve(limits, USER, 500));
    assert.equal((await service.usage(USER)).reservedBytes, 600);
    clock += LEASE_MS;
    const after = await service.reserve(limits, USER, 500);
    assert.ok(after, "the lapsed reservation no longer counts");
    await after.release();
    await held.release();
  });

  it("removes lapsed reservations on the timer's tick, not before", async () => {
    await database.db
      .insertInto("media_upload_reservations")
      .values({
        reservation_id: "dead",
        user_id: USER,
        bytes: 1,
        owner: "gone",
        expires_ts: clock + 10,
      })
      .execute();
    await service.renew();
    assert.equal(await reservationRows(), 1, "a live lease stays");
    clock += 10;
    await service.renew();
    assert.equal(await reservationRows(), 0, "a lapsed lease is removed");
  });

  it("logs a failed renewal as a warning, without the statement's values, and keeps going", async () => {
    const log = warnings();
    const failing = new UploadQuotaRepository(database);
    failing.renew = () => Promise.reject(new Error("connection terminated"));
    const broken = new UploadQuotaService(
      {
        maxUploadSize: 4096,
        windows: [{ periodMs: 86_400_000, maxBytes: 1000 }],
        overrides: [],
        infoUri: "https://example.org/",
      },
      failing,
      log.logger,
      () => clock,
    );
    const held = await broken.reserve(broken.limitsFor(USER), USER, 10);
    assert.ok(held);
    await broken.renew();
    assert.equal(log.seen.length, 1, "one warning per failed tick");
    assert.match(log.seen[0]!.message, /renew/);
    assert.equal(log.seen[0]!.fields.error, "connection terminated");
    assert.equal(log.seen[0]!.fields.reservations, 1);
    assert.ok(!JSON.stringify(log.seen).includes(USER), "no user id in the log line");
    await held.release();
  });

  it("frees a released reservation at once and grows one as bytes arrive", async () => {
    const limits = service.limitsFor(USER);
    const streaming = await service.reserve(limits, USER, undefined);
    assert.ok(streaming);
    await streaming.ensure(900);
    await refused(service.reserve(limits, USER, 101));
    await refused(streaming.ensure(1001));
    await streaming.release();
    const whole = await service.reserve(limits, USER, 1000);
    assert.ok(whole);
    await whole.release();
    assert.equal((await service.usage(USER)).reservations, 0);
  });
});

forEachEngine("upload quota with several window lists", (engine) => {
  let database: Database;
  const clock = Date.UTC(2026, 0, 1);
  after(() => database?.close());

  // SQLite's check is compiled once per number of windows: users whose
  // lists differ in length, checked in turns, must each get their own.
  it("checks each user against their own windows when their counts differ, in turns", async () => {
    database = createDatabase(await freshDatabaseConfig(engine));
    await runMigrations(database);
    const HOUR = 3_600_000;
    const service = new UploadQuotaService(
      {
        maxUploadSize: 4096,
        windows: [{ periodMs: HOUR, maxBytes: 1000 }],
        overrides: [
          {
            userGlob: "@three:*",
            windows: [
              { periodMs: HOUR, maxBytes: 3000 },
              { periodMs: 24 * HOUR, maxBytes: 700 },
              { periodMs: 48 * HOUR, maxBytes: 2000 },
            ],
          },
          {
            userGlob: "@two:*",
            windows: [
              { periodMs: HOUR, maxBytes: 3000 },
              { periodMs: 2 * HOUR, maxBytes: 400 },
            ],
          },
        ],
        infoUri: "https://example.org/",
      },
      new UploadQuotaRepository(database),
      warnings().logger,
      () => clock,
    );
    // An upload of each stored 2 hours ago: inside the 1-day windows, outside the 1-hour ones.
    await database.db
      .insertInto("local_media_repository")
      .values(
        ["@one:t", "@three:t", "@two:t"].map((userId, i) => ({
          media_id: `old${i}`,
          media_type: "application/octet-stream",
          media_length: 100,
          created_ts: clock - 2 * HOUR + 1,
          user_id: userId,
          authenticated: true,
          safe_from_quarantine: false,
        })),
      )
      .execute();
    const room = async (userId: string) => {
      // The largest single reservation that fits, found by asking.
      const limits = service.limitsFor(userId);
      let low = 0;
      let high = 4096;
      while (low < high) {
        const size = Math.ceil((low + high) / 2);
        const held = await service.reserve(limits, userId, size).catch(() => undefined);
        if (held) {
          await held.release();
          low = size;
        } else high = size - 1;
      }
      return low;
    };
    for (let turn = 0; turn < 2; turn++) {
      assert.equal(await room("@one:t"), 1000, "one window of 1000; the old upload is outside it");
      assert.equal(await room("@three:t"), 600, "the 1-day window of 700 holds the old upload");
      assert.equal(await room("@two:t"), 300, "the 2-hour window of 400 holds the old upload");
    }
  });
});
