/**
 * mxcd's admin API for finding media by hash (docs/trust-and-safety.md
 * "Admin API: finding media by hash"): `/_mxcd/admin/v1/media/lookup` by
 * sha256, md5 or pdq, and `/_mxcd/admin/v1/media/{server}/{id}/similar`.
 * Rows are seeded through the repositories with known hashes, so every
 * distance is known. Admins only; hostile parameters get 400 M_INVALID_PARAM,
 * never a 500; paging is stable. On PostgreSQL a second server on the same
 * database stands for a second process. A server started on a log with
 * hashes builds its index in the background, with no query (the
 * `mxcd_pdq_index_state` gauge); one started on an empty log builds nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Database } from "../src/db/database.js";
import { MediaHashRepository } from "../src/repositories/media-hash-repository.js";
import { forEachEngine } from "./support/databases.js";
import { metric } from "./support/metrics.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const V1 = "/_mxcd/admin/v1";
const HERE = "test.local";
const BASE = "0".repeat(64);
const SHA_A = "a".repeat(64);
const MD5_A = "b".repeat(32);

/** BASE with the first `bits` bits set: at distance `bits` from BASE. */
function flipped(bits: number): string {
  const n = (1n << 256n) - (1n << BigInt(256 - bits));
  return n.toString(16).padStart(64, "0");
}

async function seedLocal(
  database: Database,
  mediaId: string,
  hashes: { sha256?: string; md5?: string; pdq?: string | null },
): Promise<void> {
  await database.db
    .insertInto("local_media_repository")
    .values({
      media_id: mediaId,
      media_type: "image/png",
      media_length: 10,
      created_ts: 1000,
      upload_name: `${mediaId}.png`,
      user_id: "@u:test.local",
      authenticated: false,
      sha256: hashes.sha256 ?? null,
      md5: hashes.md5 ?? null,
    })
    .execute();
  await recordPdq(database, { kind: "local", mediaId }, hashes.pdq ?? null);
}

async function seedRemote(
  database: Database,
  origin: string,
  mediaId: string,
  hashes: { sha256?: string; md5?: string; pdq?: string | null },
): Promise<void> {
  await database.db
    .insertInto("remote_media_cache")
    .values({
      media_origin: origin,
      media_id: mediaId,
      media_type: "image/png",
      media_length: 10,
      created_ts: 1000,
      upload_name: null,
      filesystem_id: `fs${mediaId}`,
      last_access_ts: 1000,
      authenticated: false,
      sha256: hashes.sha256 ?? null,
      md5: hashes.md5 ?? null,
    })
    .execute();
  await recordPdq(database, { kind: "remote", origin, mediaId }, hashes.pdq ?? null);
}

async function recordPdq(
  database: Database,
  subject: Parameters<MediaHashRepository["record"]>[0],
  pdq: string | null,
): Promise<void> {
  const columns =
    pdq === null
      ? { pdq: null, pdq_quality: 12, pdq_status: "none" as const, pdq_reason: "quality 12 < 50" }
      : { pdq, pdq_quality: 90, pdq_status: "hashed" as const, pdq_reason: null };
  assert.equal(await new MediaHashRepository(database).record(subject, columns), true);
}

const ids = (body: { media: { media_id: string }[] }) => body.media.map((m) => m.media_id);

forEachEngine("media hash look-up API", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;

  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
    const db = server.app.database;
    await seedLocal(db, "d00", { sha256: SHA_A, md5: MD5_A, pdq: flipped(0) });
    await seedLocal(db, "d05", { sha256: SHA_A, pdq: flipped(5) });
    await seedLocal(db, "d31", { md5: MD5_A, pdq: flipped(31) });
    await seedLocal(db, "d32", { pdq: flipped(32) });
    await seedLocal(db, "nopdq", { sha256: SHA_A, pdq: null });
    await seedRemote(db, "far.test", "r07", { sha256: SHA_A, md5: MD5_A, pdq: flipped(7) });
    await seedRemote(db, "far.test", "r09", { pdq: flipped(9) });
  });
  after(async () => {
    await server?.stop();
  });

  describe("lookup", () => {
    it("started on an empty log, the index is built by the first PDQ query, not by exact look-ups", async () => {
      assert.equal(await metric(server.baseUrl, "mxcd_pdq_index_state"), 0);
      assert.equal(await metric(server.baseUrl, "mxcd_pdq_index_hashes"), 0);
      assert.equal((await admin.http.get(`${V1}/media/lookup?sha256=${SHA_A}`)).status, 200);
      assert.equal(await metric(server.baseUrl, "mxcd_pdq_index_hashes"), 0);
      assert.equal(await metric(server.baseUrl, "mxcd_pdq_index_state"), 0);
      assert.equal((await admin.http.get(`${V1}/media/lookup?pdq=${BASE}`)).status, 200);
      assert.equal(await metric(server.baseUrl, "mxcd_pdq_index_hashes"), 6);
      assert.equal(await metric(server.baseUrl, "mxcd_pdq_index_state"), 2);
    });

    it("by sha256: local then remote, media_info fields, distance 0", async () => {
      const res = await admin.http.get(`${V1}/media/lookup?sha256=${SHA_A}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(ids(res.body), ["d00", "d05", "nopdq", "r07"]);
      assert.equal(res.body.next_batch, undefined);
      const [first] = res.body.media;
      assert.equal(first.media_origin, null);
      assert.equal(first.sha256, SHA_A);
      assert.equal(first.upload_name, "d00.png");
      assert.equal(first.distance, 0);
      assert.equal(res.body.media[3].media_origin, "far.test");
    });

    it("by md5, upper case accepted", async () => {
      const res = await admin.http.get(`${V1}/media/lookup?md5=${MD5_A.toUpperCase()}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(ids(res.body), ["d00", "d31", "r07"]);
    });

    it("by pdq: within max_distance (default 31), by distance, with distances", async () => {
      const res = await admin.http.get(`${V1}/media/lookup?pdq=${BASE}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(
        res.body.media.map((m: { media_id: string; distance: number }) => [m.media_id, m.distance]),
        [
          ["d00", 0],
          ["d05", 5],
          ["r07", 7],
          ["r09", 9],
          ["d31", 31],
        ],
      );
      const near = await admin.http.get(`${V1}/media/lookup?pdq=${BASE}&max_distance=6`);
      assert.deepEqual(ids(near.body), ["d00", "d05"]);
      const wide = await admin.http.get(`${V1}/media/lookup?pdq=${BASE}&max_distance=64`);
      assert.deepEqual(ids(wide.body), ["d00", "d05", "r07", "r09", "d31", "d32"]);
    });

    it("pages with from/limit/next_batch, the same rows as one page", async () => {
      for (const query of [`pdq=${BASE}&max_distance=64`, `sha256=${SHA_A}`]) {
        const whole = ids((await admin.http.get(`${V1}/media/lookup?${query}`)).body);
        const paged: string[] = [];
        let from: string | undefined;
        for (let pages = 0; pages < 10; pages++) {
          const res = await admin.http.get(
            `${V1}/media/lookup?${query}&limit=2${from ? `&from=${from}` : ""}`,
          );
          assert.equal(res.status, 200, res.text);
          assert.ok(res.body.media.length <= 2);
          paged.push(...ids(res.body));
          from = res.body.next_batch;
          if (from === undefined) break;
        }
        assert.deepEqual(paged, whole);
      }
    });

    it("a page survives a deletion before it: the cursor continues after the last row", async () => {
      await seedLocal(server.app.database, "gone", { pdq: flipped(1) });
      const first = await admin.http.get(`${V1}/media/lookup?pdq=${BASE}&limit=2`);
      assert.deepEqual(ids(first.body), ["d00", "gone"]);
      await server.app.database.db
        .deleteFrom("local_media_repository")
        .where("media_id", "=", "gone")
        .execute();
      const second = await admin.http.get(
        `${V1}/media/lookup?pdq=${BASE}&limit=2&from=${first.body.next_batch}`,
      );
      assert.deepEqual(ids(second.body), ["d05", "r07"]);
      const again = await admin.http.get(`${V1}/media/lookup?pdq=${BASE}&limit=2`);
      assert.deepEqual(ids(again.body), ["d00", "d05"]);
      assert.equal(await metric(server.baseUrl, "mxcd_pdq_index_dropped_total"), 1);
      assert.equal(await metric(server.baseUrl, "mxcd_pdq_index_hashes"), 6);
    });
  });

  describe("similar", () => {
    it("lists media similar to an item, the item itself excluded", async () => {
      const res = await admin.http.get(`${V1}/media/${HERE}/d05/similar?max_distance=10`);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.pdq, flipped(5));
      assert.deepEqual(
        res.body.media.map((m: { media_id: string; distance: number }) => [m.media_id, m.distance]),
        [
          ["d00", 5],
          ["r07", 2],
          ["r09", 4],
        ].sort((x, y) => (x[1] as number) - (y[1] as number)),
      );
      const remote = await admin.http.get(`${V1}/media/far.test/r07/similar?max_distance=2`);
      assert.deepEqual(ids(remote.body), ["d05", "r09"]);
    });

    it("unknown media → 404; media without a PDQ → 200, empty, with the reason", async () => {
      const unknown = await admin.http.get(`${V1}/media/${HERE}/nosuchmedia/similar`);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, "M_NOT_FOUND");
      const unknownRemote = await admin.http.get(`${V1}/media/far.test/d00/similar`);
      assert.equal(unknownRemote.status, 404);
      const none = await admin.http.get(`${V1}/media/${HERE}/nopdq/similar`);
      assert.equal(none.status, 200, none.text);
      assert.deepEqual(none.body, { media: [], pdq: null, reason: "quality 12 < 50" });
    });
  });

  describe("access and hostile input", () => {
    it("refuses non-admins (403) and anonymous callers (401)", async () => {
      for (const path of [`/media/lookup?sha256=${SHA_A}`, `/media/${HERE}/d00/similar`]) {
        const res = await alice.http.get(`${V1}${path}`);
        assert.equal(res.status, 403, path);
        assert.equal(res.body.errcode, "M_FORBIDDEN");
        assert.equal((await server.http.get(`${V1}${path}`)).status, 401, path);
      }
    });

    it("answers 400 M_INVALID_PARAM, never a 500", async () => {
      const bad = [
        "/media/lookup",
        `/media/lookup?sha256=${SHA_A}&md5=${MD5_A}`,
        `/media/lookup?pdq=${BASE}&sha256=${SHA_A}`,
        "/media/lookup?sha256=abc",
        `/media/lookup?sha256=${"g".repeat(64)}`,
        `/media/lookup?md5=${SHA_A}`,
        `/media/lookup?pdq=${BASE}0`,
        `/media/lookup?pdq=${BASE}&max_distance=65`,
        `/media/lookup?pdq=${BASE}&max_distance=-1`,
        `/media/lookup?pdq=${BASE}&max_distance=1.5`,
        `/media/lookup?pdq=${BASE}&max_distance=x`,
        `/media/lookup?sha256=${SHA_A}&max_distance=3`,
        `/media/lookup?pdq=${BASE}&limit=0`,
        `/media/lookup?pdq=${BASE}&limit=-5`,
        `/media/lookup?pdq=${BASE}&limit=99999999999999999999`,
        `/media/lookup?pdq=${BASE}&from=garbage`,
        `/media/lookup?pdq=${BASE}&from=1_99999999999999999999`,
        `/media/lookup?sha256=${SHA_A}&from=!!`,
        `/media/lookup?sha256=${SHA_A}&from=${Buffer.from("[1,2]").toString("base64url")}`,
        `/media/lookup?sha256=${SHA_A}&from=${Buffer.from("{").toString("base64url")}`,
        `/media/${HERE}/d00/similar?max_distance=100`,
        `/media/${HERE}/nopdq/similar?limit=0`,
        `/media/${HERE}/d00/similar?from=x`,
        "/media/bad%20server!/d00/similar",
        `/media/${HERE}/bad%2Fid/similar`,
      ];
      for (const path of bad) {
        const res = await admin.http.get(`${V1}${path}`);
        assert.equal(res.status, 400, `${path}: ${res.text}`);
        assert.equal(res.body.errcode, "M_INVALID_PARAM", path);
      }
    });

    it("caps a huge limit instead of refusing it", async () => {
      const res = await admin.http.get(`${V1}/media/lookup?pdq=${BASE}&limit=1000000`);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.media.length, 5);
    });
  });

  if (engine === "postgres") {
    describe("two processes on one database", () => {
      let other: TestServer;
      let otherAdmin: TestUser;
      before(async () => {
        // warm_up "always": built at start although near-duplicate quarantine is off.
        other = await startTestServer(engine, {
          database: server.app.config.database,
          pdq_index: { warm_up: "always" },
        } as never);
        otherAdmin = await other.user("admin2", { admin: true });
      });
      after(async () => {
        await other?.stop();
      });

      it("a hash recorded through one is found by the other; a deleted item is not", async () => {
        // Started on a database full of hashes, it builds its index with no query.
        await waitFor(
          async () => (await metric(other.baseUrl, "mxcd_pdq_index_state")) === 2,
          "the other process's background build",
        );
        assert.ok((await metric(other.baseUrl, "mxcd_pdq_index_hashes")) >= 7);
        await seedLocal(server.app.database, "late2", { pdq: flipped(2) });
        const seen = await otherAdmin.http.get(`${V1}/media/lookup?pdq=${BASE}&max_distance=3`);
        assert.deepEqual(ids(seen.body), ["d00", "late2"]);
        await server.app.database.db
          .deleteFrom("local_media_repository")
          .where("media_id", "=", "late2")
          .execute();
        const after = await otherAdmin.http.get(`${V1}/media/lookup?pdq=${BASE}&max_distance=3`);
        assert.deepEqual(ids(after.body), ["d00"]);
      });
    });
  }

  describe("background build after start-up", () => {
    let first: TestServer | undefined;
    let second: TestServer | undefined;
    after(async () => {
      await first?.stop();
      await second?.stop();
    });

    it("with warm_up always, a server started on a log with hashes builds its index without any query", async () => {
      first = await startTestServer(engine);
      const db = first.app.database;
      for (let i = 0; i < 20; i++) await seedLocal(db, `bg${i}`, { pdq: flipped(i) });
      const database = first.app.config.database;
      await first.stop();
      first = undefined;
      second = await startTestServer(engine, {
        database,
        pdq_index: { warm_up: "always" },
      } as never);
      const { baseUrl } = second;
      await waitFor(
        async () => (await metric(baseUrl, "mxcd_pdq_index_state")) === 2,
        "the background build",
      );
      assert.equal(await metric(baseUrl, "mxcd_pdq_index_hashes"), 20);
      assert.equal(await metric(baseUrl, "mxcd_pdq_index_dropped_total"), 0);
      assert.ok((await metric(baseUrl, "mxcd_pdq_index_build_seconds")) > 0);
      const admin2 = await second.user("admin", { admin: true });
      const res = await admin2.http.get(`${V1}/media/lookup?pdq=${BASE}&max_distance=3`);
      assert.deepEqual(ids(res.body), ["bg0", "bg1", "bg2", "bg3"]);
    });
  });
});
