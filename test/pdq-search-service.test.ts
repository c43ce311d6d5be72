/**
 * PdqSearchService (src/media/pdq-search-service.ts): finds stored media by
 * PDQ distance, local and cached remote, correct across processes. Two
 * services on two separate connections (pools) to one database stand for
 * two processes: a hash recorded through one is found by the other's next
 * query (the catch-up), and media deleted or re-hashed is never returned
 * (the verification). The background build (`warmUp`): nothing with an
 * empty log; built without any query; a query during it waits and sees the
 * whole log, including a hash another process records meanwhile; a stopped
 * build is continued by the next query. A page's media rows cost one query.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { KyselyPlugin } from "kysely";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import {
  PDQ_INDEX_BUILDING,
  PDQ_INDEX_BUILT,
  PDQ_INDEX_IDLE,
  PdqSearchService,
} from "../src/media/pdq-search-service.js";
import { MediaHashRepository } from "../src/repositories/media-hash-repository.js";
import {
  type LoggedHash,
  PdqHashLogRepository,
} from "../src/repositories/pdq-hash-log-repository.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { waitFor } from "./support/wait-for.js";

const SERVER = "here.test";
const BASE = "0".repeat(64);

/** BASE with the first `bits` bits set: at distance `bits` from BASE. */
function flipped(bits: number, from = BASE): string {
  const n = BigInt(`0x${from}`) ^ ((1n << 256n) - (1n << BigInt(256 - bits)));
  return n.toString(16).padStart(64, "0");
}

async function insertLocal(database: Database, mediaId: string): Promise<void> {
  await database.db
    .insertInto("local_media_repository")
    .values({
      media_id: mediaId,
      media_type: "image/png",
      media_length: 10,
      created_ts: 1,
      upload_name: null,
      user_id: "@u:here.test",
      authenticated: false,
    })
    .execute();
}

async function insertRemote(database: Database, origin: string, mediaId: string): Promise<void> {
  await database.db
    .insertInto("remote_media_cache")
    .values({
      media_origin: origin,
      media_id: mediaId,
      media_type: "image/png",
      media_length: 10,
      created_ts: 1,
      upload_name: null,
      filesystem_id: mediaId,
      last_access_ts: 1,
      authenticated: false,
    })
    .execute();
}

/** A log repository whose `gatedRead`-th read waits for `open()` (a build held in the middle). */
class GatedLogRepository extends PdqHashLogRepository {
  reads = 0;
  #open!: () => void;
  readonly #gate = new Promise<void>((resolve) => {
    this.#open = resolve;
  });
  constructor(
    database: Database,
    private readonly gatedRead: number,
  ) {
    super(database);
  }
  open(): void {
    this.#open();
  }
  override async hashesAfter(after: number, limit: number): Promise<LoggedHash[]> {
    this.reads += 1;
    if (this.reads === this.gatedRead) await this.#gate;
    return super.hashesAfter(after, limit);
  }
}

/** `database` with every SELECT counted in `counter.selects`. */
function countingSelects(database: Database, counter: { selects: number }): Database {
  const plugin: KyselyPlugin = {
    transformQuery(args) {
      if (args.node.kind === "SelectQueryNode") counter.selects += 1;
      return args.node;
    },
    async transformResult(args) {
      return args.result;
    },
  };
  return { ...database, db: database.db.withPlugin(plugin) };
}

const hashed = (pdq: string) => ({
  pdq,
  pdq_quality: 90,
  pdq_status: "hashed" as const,
  pdq_reason: null,
});

forEachEngine("PDQ search service", (engine) => {
  let one: Database;
  let two: Database;
  let hashesOne: MediaHashRepository;
  let hashesTwo: MediaHashRepository;
  let searchOne: PdqSearchService;
  let searchTwo: PdqSearchService;

  before(async () => {
    const config = await freshDatabaseConfig(engine);
    one = createDatabase(config);
    await runMigrations(one);
    two = createDatabase(config);
    hashesOne = new MediaHashRepository(one);
    hashesTwo = new MediaHashRepository(two);
    // A small batch: the catch-up must loop over several pages.
    searchOne = new PdqSearchService(new PdqHashLogRepository(one), SERVER, { batchSize: 3 });
    searchTwo = new PdqSearchService(new PdqHashLogRepository(two), SERVER, { batchSize: 3 });
  });
  after(async () => {
    await one?.close();
    await two?.close();
  });

  describe("lookup", () => {
    it("is not loaded before the first query", () => {
      assert.equal(searchOne.loaded, false);
      assert.equal(searchOne.stats.indexed, 0);
    });

    it("finds local and remote media by distance, sorted, within the bound only", async () => {
      for (const [id, bits] of [
        ["a0", 0],
        ["a5", 5],
        ["a31", 31],
        ["a32", 32],
      ] as const) {
        await insertLocal(one, id);
        assert.equal(
          await hashesOne.record({ kind: "local", mediaId: id }, hashed(flipped(bits))),
          true,
        );
      }
      await insertRemote(one, "there.test", "r7");
      await hashesOne.record(
        { kind: "remote", origin: "there.test", mediaId: "r7" },
        hashed(flipped(7)),
      );
      const found = await searchOne.findSimilar(BASE, 31);
      assert.deepEqual(
        found.map((f) => [f.origin, f.mediaId, f.local, f.distance]),
        [
          [SERVER, "a0", true, 0],
          [SERVER, "a5", true, 5],
          ["there.test", "r7", false, 7],
          [SERVER, "a31", true, 31],
        ],
      );
      assert.equal(searchOne.loaded, true);
      assert.deepEqual(
        (await searchOne.findSimilar(BASE, 4)).map((f) => f.mediaId),
        ["a0"],
      );
    });

    it("pages with `after` and `limit`, and leaves out `exclude`", async () => {
      const all = await searchOne.findSimilar(BASE, 31);
      const pages: string[] = [];
      let cursor: (typeof all)[number]["cursor"] | undefined;
      for (;;) {
        const page = await searchOne.findSimilar(BASE, 31, {
          limit: 2,
          ...(cursor && { after: cursor }),
        });
        pages.push(...page.map((f) => f.mediaId));
        if (page.length < 2) break;
        cursor = page.at(-1)!.cursor;
      }
      assert.deepEqual(
        pages,
        all.map((f) => f.mediaId),
      );
      const excluded = await searchOne.findSimilar(BASE, 31, {
        exclude: { origin: SERVER, mediaId: "a0" },
      });
      assert.deepEqual(
        excluded.map((f) => f.mediaId),
        ["a5", "r7", "a31"],
      );
    });

    it("refuses malformed input with RangeError", async () => {
      await assert.rejects(searchOne.findSimilar("xyz", 31), RangeError);
      await assert.rejects(
        searchOne.findSimilar(BASE.toUpperCase().replace(/0/g, "A"), 31),
        RangeError,
      );
      await assert.rejects(searchOne.findSimilar(BASE, -1), RangeError);
      await assert.rejects(searchOne.findSimilar(BASE, 257), RangeError);
      await assert.rejects(searchOne.findSimilar(BASE, 1.5), RangeError);
    });
  });

  describe("across processes", () => {
    it("a hash recorded through one process is found by the other's next query", async () => {
      // Both indexes are loaded first, so only the catch-up can find it.
      await searchTwo.findSimilar(BASE, 31);
      assert.equal(searchTwo.loaded, true);
      await insertLocal(two, "b3");
      await hashesTwo.record({ kind: "local", mediaId: "b3" }, hashed(flipped(3)));
      const seenByOne = await searchOne.findSimilar(BASE, 31);
      assert.ok(seenByOne.some((f) => f.mediaId === "b3" && f.distance === 3));
      await insertLocal(one, "c2");
      await hashesOne.record({ kind: "local", mediaId: "c2" }, hashed(flipped(2)));
      const seenByTwo = await searchTwo.findSimilar(BASE, 31);
      assert.ok(seenByTwo.some((f) => f.mediaId === "c2" && f.distance === 2));
    });

    it("media deleted through one process is not returned by the other", async () => {
      assert.ok((await searchTwo.findSimilar(BASE, 31)).some((f) => f.mediaId === "a5"));
      const droppedBefore = searchTwo.stats.dropped;
      await one.db.deleteFrom("local_media_repository").where("media_id", "=", "a5").execute();
      const found = await searchTwo.findSimilar(BASE, 31);
      assert.ok(!found.some((f) => f.mediaId === "a5"));
      assert.equal(searchTwo.stats.dropped, droppedBefore + 1);
      // Dropped from the index too: not verified again.
      await searchTwo.findSimilar(BASE, 31);
      assert.equal(searchTwo.stats.dropped, droppedBefore + 1);
    });

    it("re-fetched remote media with a new hash is found by the new hash only; same hash once", async () => {
      await one.db
        .deleteFrom("remote_media_cache")
        .where("media_origin", "=", "there.test")
        .where("media_id", "=", "r7")
        .execute();
      await insertRemote(one, "there.test", "r7");
      await hashesOne.record(
        { kind: "remote", origin: "there.test", mediaId: "r7" },
        hashed(flipped(20, flipped(256))),
      );
      assert.ok(!(await searchTwo.findSimilar(BASE, 31)).some((f) => f.mediaId === "r7"));
      const far = await searchTwo.findSimilar(flipped(256), 31);
      assert.deepEqual(
        far.map((f) => [f.mediaId, f.distance]),
        [["r7", 20]],
      );
      // Fetched again with the same hash: logged twice, answered once.
      await one.db.deleteFrom("remote_media_cache").where("media_id", "=", "r7").execute();
      await insertRemote(one, "there.test", "r7");
      await hashesOne.record(
        { kind: "remote", origin: "there.test", mediaId: "r7" },
        hashed(flipped(20, flipped(256))),
      );
      const again = await searchTwo.findSimilar(flipped(256), 31);
      assert.deepEqual(
        again.map((f) => [f.mediaId, f.distance]),
        [["r7", 20]],
      );
    });

    it("concurrent recording from both processes loses no log record", async () => {
      const ids = Array.from({ length: 20 }, (_, i) => `p${i}`);
      for (const id of ids) await insertLocal(one, id);
      // SQLite is one process (deployment shape 1): two synchronous
      // connections in one event loop would only wait on each other.
      const other = engine === "postgres" ? hashesTwo : hashesOne;
      await Promise.all(
        ids.map((id, i) =>
          (i % 2 ? hashesOne : other).record({ kind: "local", mediaId: id }, hashed(flipped(40))),
        ),
      );
      const found = await searchOne.findSimilar(flipped(40), 0);
      assert.deepEqual(found.map((f) => f.mediaId).sort(), [...ids].sort());
    });
  });

  describe("background build", () => {
    let writer: Database;
    let reader: Database;
    let writes: MediaHashRepository;
    /** Every log record seeded here: media id → distance from BASE. */
    const expected = new Map<string, number>();

    const seed = async (mediaId: string, bits: number) => {
      await insertLocal(writer, mediaId);
      await writes.record({ kind: "local", mediaId }, hashed(flipped(bits)));
      expected.set(mediaId, bits);
    };
    const all = () =>
      [...expected].sort((x, y) => x[1] - y[1] || 0).map(([id, bits]) => [id, bits]);
    const answer = (found: Awaited<ReturnType<PdqSearchService["findSimilar"]>>) =>
      found.map((f) => [f.mediaId, f.distance]);

    before(async () => {
      const config = await freshDatabaseConfig(engine);
      writer = createDatabase(config);
      await runMigrations(writer);
      reader = createDatabase(config);
      writes = new MediaHashRepository(writer);
    });
    after(async () => {
      await writer?.close();
      await reader?.close();
    });

    it("with an empty log builds nothing", async () => {
      const search = new PdqSearchService(new PdqHashLogRepository(reader), SERVER);
      assert.equal(await search.warmUp(), undefined);
      assert.equal(search.stats.state, PDQ_INDEX_IDLE);
      assert.equal(search.stats.indexed, 0);
      assert.equal(search.stats.logRead, 0);
    });

    it("builds without a query; a query during the build waits and sees the whole log", async () => {
      // Distinct distances (1–12), so the expected order is unique.
      for (let i = 1; i <= 12; i++) await seed(`w${i}`, i);
      const log = new GatedLogRepository(reader, 3);
      const search = new PdqSearchService(log, SERVER, { batchSize: 3 });
      const built = search.warmUp();
      // Two reads done, the third held: the build is half way, no query sent.
      await waitFor(
        () => search.stats.state === PDQ_INDEX_BUILDING && search.stats.indexed === 6,
        "the build to load two batches",
      );
      let answered = false;
      const during = search.findSimilar(BASE, 31).then((found) => {
        answered = true;
        return found;
      });
      // Another process records a hash while the build is held.
      await seed("meanwhile", 13);
      assert.equal(answered, false, "the query waits for the build");
      log.open();
      assert.deepEqual(answer(await during), all());
      assert.deepEqual(await built, { hashes: 13, ms: search.stats.buildMs });
      assert.equal(search.stats.state, PDQ_INDEX_BUILT);
      assert.equal(search.loaded, true);
      assert.equal(search.stats.logRead, 13);
    });

    it("finds a hash recorded after the build; drops a deleted item from answer and index", async () => {
      const search = new PdqSearchService(new PdqHashLogRepository(reader), SERVER);
      await search.warmUp();
      assert.equal(search.stats.indexed, 13);
      await seed("later", 14);
      assert.deepEqual(answer(await search.findSimilar(BASE, 31)), all());
      await writer.db.deleteFrom("local_media_repository").where("media_id", "=", "w4").execute();
      expected.delete("w4");
      assert.deepEqual(answer(await search.findSimilar(BASE, 31)), all());
      assert.equal(search.stats.dropped, 1);
      assert.equal(search.stats.indexed, 13);
    });

    it("a build stopped by its signal is continued, not restarted, by the next query", async () => {
      const log = new GatedLogRepository(reader, 2);
      const search = new PdqSearchService(log, SERVER, { batchSize: 5 });
      const stop = new AbortController();
      const built = search.warmUp(stop.signal);
      await waitFor(() => search.stats.indexed === 5, "the first batch");
      stop.abort();
      log.open();
      await assert.rejects(built, { name: "AbortError" });
      assert.equal(search.stats.state, PDQ_INDEX_BUILDING);
      assert.deepEqual(answer(await search.findSimilar(BASE, 31)), all());
      assert.equal(search.stats.state, PDQ_INDEX_BUILT);
      // 14 log records, each read once.
      assert.equal(search.stats.logRead, 14);
    });

    it("a page's media rows cost one query, not one per row", async () => {
      const counter = { selects: 0 };
      const counted = countingSelects(reader, counter);
      const search = new PdqSearchService(new PdqHashLogRepository(counted), SERVER);
      await search.warmUp();
      counter.selects = 0;
      const page = await search.findSimilarPage(BASE, 31, { limit: 10 });
      assert.deepEqual(
        page.rows.map((r) => [r.mediaId, r.distance, r.media.media.mediaId]),
        all()
          .slice(0, 10)
          .map(([id, bits]) => [id, bits, id]),
      );
      assert.ok(page.next);
      // The catch-up, the verification, the rows: three, whatever the page size.
      assert.equal(counter.selects, 3);
    });
  });
});
