/**
 * UploadQuotaService on a real database of each engine: a reservation
 * renewed by its process keeps counting past its first lease, one that is
 * not renewed stops counting, and a released one frees its bytes at once.
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
      () => clock,
    );
  });
  after(() => database.close());

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
