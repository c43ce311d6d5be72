import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import type { Insertable } from "kysely";
import sharp from "sharp";
import type { LocalMediaTable, RemoteMediaTable } from "../src/db/schema.js";
import { MediaDeletionService } from "../src/media/media-deletion-service.js";
import { MediaAdminRepository } from "../src/repositories/media-admin-repository.js";
import { MediaReferenceRepository } from "../src/repositories/media-reference-repository.js";
import type { BlobStore } from "../src/storage/blob-store.js";
import {
  localContentKey,
  localThumbnailKey,
  localThumbnailPrefix,
  remoteContentKey,
  remoteThumbnailKey,
  urlCacheKey,
  urlCacheThumbnailKey,
} from "../src/storage/media-paths.js";
import { forEachEngine } from "./support/databases.js";
import { allKeys, download, uploadBytes } from "./support/media.js";
import { createRoom, setState } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const V1 = "/_synapse/admin/v1";
/** "Now" for the age-based tests: every fixture is dated around it. */
const T = 2_000_000_000_000;

type LocalValues = Partial<Insertable<LocalMediaTable>> & { media_id: string };

/** Inserts local media rows (defaults: 4 bytes of text, created long before T) and writes their bytes. */
async function insertLocal(server: TestServer, rows: LocalValues[], userId = "@owner:test.local") {
  await server.app.database.db
    .insertInto("local_media_repository")
    .values(
      rows.map((r) => ({
        media_type: "text/plain",
        media_length: 4,
        created_ts: T - 1_000_000,
        user_id: userId,
        // SQLite has no DEFAULT in multi-row inserts: give every column.
        quarantined_by: null,
        url_cache: null,
        last_access_ts: null,
        safe_from_quarantine: false,
        authenticated: false,
        ...r,
      })),
    )
    .execute();
  for (const r of rows) {
    const key = r.url_cache ? urlCacheKey(r.media_id) : localContentKey(r.media_id);
    await putBlob(server.app.store, key);
  }
}

async function putBlob(store: BlobStore, key: string, bytes = "data") {
  await store.write(key, Readable.from([Buffer.from(bytes)]));
}

async function localIds(server: TestServer): Promise<string[]> {
  const rows = await server.app.database.db
    .selectFrom("local_media_repository")
    .select("media_id")
    .orderBy("media_id")
    .execute();
  return rows.map((r) => r.media_id);
}

function service(server: TestServer, options: { batchSize?: number; store?: BlobStore } = {}) {
  const errors: unknown[] = [];
  const repo = new MediaAdminRepository(server.app.database, server.app.mediaChanges);
  const deletion = new MediaDeletionService(
    { serverName: "test.local", batchSize: options.batchSize },
    repo,
    new MediaReferenceRepository(server.app.database),
    options.store ?? server.app.store,
    { error: (obj: unknown) => errors.push(obj) } as never,
  );
  return { deletion, repo, errors };
}

/** The server's store, except that deleting `failKey` fails with a permission error. */
function failingStore(store: BlobStore, failKey: string): BlobStore {
  return {
    read: (key, range) => store.read(key, range),
    write: (key, source, options) => store.write(key, source, options),
    stat: (key) => store.stat(key),
    list: (prefix) => store.list(prefix),
    async delete(key) {
      if (key === failKey) throw Object.assign(new Error("permission denied"), { code: "EACCES" });
      await store.delete(key);
    },
  };
}

async function expectError(
  res: { status: number; body: any; text: string },
  status: number,
  errcode: string,
  error?: string,
) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.body.errcode, errcode);
  if (error !== undefined) assert.equal(res.body.error, error);
}

forEachEngine("media admin: deletion", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  it("every endpoint needs an admin token, checked before anything else", async () => {
    const endpoints: [string, string][] = [
      ["DELETE", `${V1}/users/@x/media?limit=0`],
      ["DELETE", `${V1}/media/bad_server/bad.id`],
      ["POST", `${V1}/media/delete`],
      ["POST", `${V1}/media/other.example/delete`],
      ["POST", `${V1}/purge_media_cache`],
    ];
    for (const [method, path] of endpoints) {
      await expectError(await server.http.request(method, path), 401, "M_MISSING_TOKEN");
      const bad = server.http.withToken("nonsense");
      await expectError(await bad.request(method, path), 401, "M_UNKNOWN_TOKEN");
      await expectError(
        await alice.http.request(method, path),
        403,
        "M_FORBIDDEN",
        "You are not a server admin",
      );
    }
  });

  describe("DELETE /media/{serverName}/{mediaId} (A12)", () => {
    it("removes the bytes, every thumbnail file and the rows of an image", async () => {
      const png = await sharp({
        create: { width: 1000, height: 800, channels: 3, background: { r: 10, g: 200, b: 30 } },
      })
        .png()
        .toBuffer();
      const id = await uploadBytes(alice.http, png, { contentType: "image/png" });
      // A thumbnail request waits for pre-generation to finish.
      const thumb = await download(
        server.baseUrl,
        `/_matrix/client/v1/media/thumbnail/test.local/${id}?width=32&height=32&method=crop`,
        { token: alice.token },
      );
      assert.equal(thumb.status, 200);
      const before = await allKeys(server.app.store);
      const thumbnails = before.filter((k) => k.startsWith(localThumbnailPrefix(id)));
      assert.equal(thumbnails.length, 5);
      assert.ok(before.includes(localContentKey(id)));

      const res = await admin.http.delete(`${V1}/media/test.local/${id}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, { deleted_media: [id], total: 1 });
      const left = await allKeys(server.app.store);
      assert.deepEqual(
        left.filter((k) => k === localContentKey(id) || k.startsWith(localThumbnailPrefix(id))),
        [],
      );
      const thumbRows = await server.app.database.db
        .selectFrom("local_media_repository_thumbnails")
        .select("media_id")
        .where("media_id", "=", id)
        .execute();
      assert.deepEqual(thumbRows, []);
      assert.ok(!(await localIds(server)).includes(id));
      const gone = await download(
        server.baseUrl,
        `/_matrix/client/v1/media/download/test.local/${id}`,
        {
          token: alice.token,
        },
      );
      assert.equal(gone.status, 404);
    });

    it("deletes quarantined and protected media alike", async () => {
      await insertLocal(server, [
        { media_id: "quarantinedone", quarantined_by: "@admin:test.local" },
        { media_id: "protectedone", safe_from_quarantine: true },
      ]);
      for (const id of ["quarantinedone", "protectedone"]) {
        const res = await admin.http.delete(`${V1}/media/test.local/${id}`);
        assert.deepEqual(res.body, { deleted_media: [id], total: 1 });
      }
    });

    it("treats a missing file as already deleted", async () => {
      const id = await uploadBytes(alice.http, "soon gone");
      await server.app.store.delete(localContentKey(id));
      const res = await admin.http.delete(`${V1}/media/test.local/${id}`);
      assert.deepEqual(res.body, { deleted_media: [id], total: 1 });
      assert.ok(!(await localIds(server)).includes(id));
    });

    it("deletes bytes an async upload renames into place between the file pass and the rows", async () => {
      // The PUT's rename lands just after the deletion removed the (absent)
      // content: simulated by a store that writes the blob right after the
      // first delete of it, as a concurrent upload would.
      await insertLocal(server, [{ media_id: "racingupload" }]);
      const key = localContentKey("racingupload");
      await server.app.store.delete(key);
      let raced = false;
      const store: BlobStore = {
        ...failingStore(server.app.store, "nothing"),
        async delete(k) {
          await server.app.store.delete(k);
          if (k === key && !raced) {
            raced = true;
            await putBlob(server.app.store, key, "late bytes");
          }
        },
      };
      const { deletion } = service(server, { store });
      assert.equal(await deletion.deleteLocalMedia("racingupload"), "deleted");
      assert.ok(raced);
      assert.ok(!(await allKeys(server.app.store)).includes(key));
      assert.ok(!(await localIds(server)).includes("racingupload"));
    });

    it("deletes a URL preview's files under url_cache/ and url_cache_thumbnails/", async () => {
      const id = "2024-01-01_abcdefghijklmnop";
      await insertLocal(server, [{ media_id: id, url_cache: "https://example.com/" }]);
      const thumb = urlCacheThumbnailKey(id, 32, 32, "image/png", "crop");
      await putBlob(server.app.store, thumb);
      const res = await admin.http.delete(`${V1}/media/test.local/${id}`);
      assert.deepEqual(res.body, { deleted_media: [id], total: 1 });
      const left = await allKeys(server.app.store);
      assert.ok(!left.includes(urlCacheKey(id)) && !left.includes(thumb));
    });

    it("keeps media whose id is `delete` addressable by GET, DELETE and the legacy POST", async () => {
      await insertLocal(server, [{ media_id: "delete" }]);
      const got = await admin.http.get(`${V1}/media/test.local/delete`);
      assert.equal(got.status, 200, got.text);
      const legacy = await admin.http.post(`${V1}/media/test.local/delete`);
      await expectError(legacy, 400, "M_MISSING_PARAM");
      const res = await admin.http.delete(`${V1}/media/test.local/delete`);
      assert.deepEqual(res.body, { deleted_media: ["delete"], total: 1 });
      assert.ok(!(await allKeys(server.app.store)).includes(localContentKey("delete")));
    });

    it("errors: malformed 400 M_INVALID_PARAM, remote 400 M_INVALID_PARAM, unknown 404 M_NOT_FOUND", async () => {
      await expectError(
        await admin.http.delete(`${V1}/media/bad_server/abc`),
        400,
        "M_INVALID_PARAM",
      );
      await expectError(
        await admin.http.delete(`${V1}/media/test.local/bad.id`),
        400,
        "M_INVALID_PARAM",
      );
      await expectError(
        await admin.http.delete(`${V1}/media/other.example/abcdef`),
        400,
        "M_INVALID_PARAM",
        "Can only delete local media",
      );
      await expectError(
        await admin.http.delete(`${V1}/media/test.local/nosuchmedia`),
        404,
        "M_NOT_FOUND",
        "Unknown media",
      );
    });

    it("skips, logs and keeps media whose bytes cannot be deleted", async () => {
      await insertLocal(server, [{ media_id: "stuckmedia" }]);
      const { deletion, errors } = service(server, {
        store: failingStore(server.app.store, localContentKey("stuckmedia")),
      });
      assert.equal(await deletion.deleteLocalMedia("stuckmedia"), "kept");
      assert.equal(errors.length, 1);
      assert.ok((await localIds(server)).includes("stuckmedia"));
      assert.equal(await service(server).deletion.deleteLocalMedia("stuckmedia"), "deleted");
      assert.equal(await service(server).deletion.deleteLocalMedia("stuckmedia"), "unknown");
    });
  });

  describe("DELETE /users/{userId}/media (A4)", () => {
    const path = (userId: string, query = "") =>
      `${V1}/users/${encodeURIComponent(userId)}/media${query ? `?${query}` : ""}`;

    it("deletes exactly the page A3 lists, quarantined and protected media included", async () => {
      const erin = await server.user("erin");
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await uploadBytes(erin.http, `erin ${i}`));
      await server.app.database.db
        .updateTable("local_media_repository")
        .set({ quarantined_by: "@admin:test.local", safe_from_quarantine: true })
        .where("media_id", "in", ids.slice(0, 3))
        .execute();
      const page = await admin.http.get(path(erin.userId, "from=1&limit=3"));
      const expected = page.body.media.map((m: { media_id: string }) => m.media_id);
      assert.equal(expected.length, 3);

      const res = await admin.http.delete(path(erin.userId, "from=1&limit=3"));
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, { deleted_media: expected, total: 3 });
      const left = await admin.http.get(path(erin.userId));
      assert.equal(left.body.total, 2);
      const keys = await allKeys(server.app.store);
      for (const id of expected) assert.ok(!keys.includes(localContentKey(id)));
    });

    it("answers an empty list for a user without media", async () => {
      const fred = await server.user("fred");
      const res = await admin.http.delete(path(fred.userId));
      assert.deepEqual(res.body, { deleted_media: [], total: 0 });
    });

    it("checks as A3 does: remote 400, unknown 404 before parameters, limit=0 400", async () => {
      await expectError(
        await admin.http.delete(path("@a:other.example")),
        400,
        "M_INVALID_PARAM",
        "Can only look up local users",
      );
      await expectError(
        await admin.http.delete(path("@nobody:test.local", "limit=0")),
        404,
        "M_NOT_FOUND",
        "Unknown user",
      );
      await expectError(
        await admin.http.delete(path(alice.userId, "limit=0")),
        400,
        "M_INVALID_PARAM",
      );
      await expectError(
        await admin.http.delete(path(alice.userId, "order_by=x")),
        400,
        "M_INVALID_PARAM",
      );
    });

    it("works through a page in chunks, and keeps the page when an item is skipped", async () => {
      const owner = "@gina:test.local";
      const ids = ["ga", "gb", "gc", "gd", "ge", "gf", "gg"];
      await insertLocal(
        server,
        ids.map((media_id) => ({ media_id })),
        owner,
      );
      const { deletion } = service(server, {
        batchSize: 2,
        store: failingStore(server.app.store, localContentKey("gc")),
      });
      const page = {
        userId: owner,
        from: 1,
        limit: 5,
        orderBy: "media_id",
        direction: "f",
      } as const;
      assert.deepEqual(await deletion.deleteUserMedia(page), ["gb", "gd", "ge", "gf"]);
      const left = await server.app.database.db
        .selectFrom("local_media_repository")
        .select("media_id")
        .where("user_id", "=", owner)
        .orderBy("media_id")
        .execute();
      assert.deepEqual(
        left.map((r) => r.media_id),
        ["ga", "gc", "gg"],
      );
    });
  });
});

forEachEngine("media admin: delete by age and size (A13)", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  const post = (query: string, legacyServer?: string) =>
    admin.http.post(
      `${V1}/media/${legacyServer ? `${legacyServer}/` : ""}delete${query ? `?${query}` : ""}`,
    );

  it("checks parameters in Synapse's order, with its texts", async () => {
    await expectError(
      await post(""),
      400,
      "M_MISSING_PARAM",
      "Missing required integer query parameter before_ts",
    );
    await expectError(
      await post("before_ts=-1"),
      400,
      "M_INVALID_PARAM",
      "Query parameter before_ts must be a positive integer.",
    );
    await expectError(
      await post("before_ts=soon"),
      400,
      "M_INVALID_PARAM",
      "Query parameter before_ts must be an integer",
    );
    await expectError(
      await post("before_ts=1&size_gt=-1"),
      400,
      "M_INVALID_PARAM",
      "Query parameter size_gt must be a positive integer.",
    );
    await expectError(
      await post("before_ts=1&keep_profiles=yes"),
      400,
      "M_INVALID_PARAM",
      "Boolean query parameter 'keep_profiles' must be one of ['true', 'false']",
    );
    const year1970 =
      "Query parameter before_ts you provided is from the year 1970. Double check that you are providing a timestamp in milliseconds.";
    await expectError(await post("before_ts=0"), 400, "M_INVALID_PARAM", year1970);
    await expectError(await post("before_ts=29999999999"), 400, "M_INVALID_PARAM", year1970);
    const edge = await post("before_ts=30000000000");
    assert.deepEqual(edge.body, { deleted_media: [], total: 0 });
  });

  it("legacy path: parameters first, then 400 M_INVALID_PARAM for another server", async () => {
    await expectError(await post("", "other.example"), 400, "M_MISSING_PARAM");
    await expectError(
      await post("before_ts=1", "other.example"),
      400,
      "M_INVALID_PARAM",
      "Query parameter before_ts you provided is from the year 1970. Double check that you are providing a timestamp in milliseconds.",
    );
    await expectError(
      await post(`before_ts=${T}`, "other.example"),
      400,
      "M_INVALID_PARAM",
      "Can only delete local media",
    );
    const ok = await post("before_ts=30000000000", "test.local");
    assert.deepEqual(ok.body, { deleted_media: [], total: 0 });
  });

  it("selects old media, strictly, and spares quarantined, protected and (by default) avatar media", async () => {
    const preview = "2024-02-02_abcdefghijklmnop";
    await insertLocal(server, [
      { media_id: "accessedlongago", last_access_ts: T - 1, created_ts: T - 100 },
      { media_id: "accessedrecently", last_access_ts: T + 1, created_ts: T - 100 },
      { media_id: "accessedatcutoff", last_access_ts: T, created_ts: T - 100 },
      { media_id: "neveraccessedold", created_ts: T - 1 },
      { media_id: "neveraccessednew", created_ts: T },
      { media_id: "zerobytes", media_length: 0 },
      { media_id: "pendingupload", media_length: null, media_type: null },
      { media_id: "quarantinedold", quarantined_by: "@admin:test.local" },
      { media_id: "protectedold", safe_from_quarantine: true },
      { media_id: preview, url_cache: "https://example.com/" },
      { media_id: "profileavatar" },
      { media_id: "memberavatar" },
      { media_id: "roomavatarold" },
      { media_id: "roomavatarnow" },
    ]);
    const thumb = localThumbnailKey("accessedlongago", 32, 32, "image/png", "crop");
    await putBlob(server.app.store, thumb);
    // A member event keeps the first avatar after the profile moves on.
    await setAvatar(alice, "mxc://test.local/memberavatar");
    const roomId = await createRoom(alice);
    await setAvatar(alice, "mxc://test.local/profileavatar");
    await setState(alice, roomId, "m.room.avatar", { url: "mxc://test.local/roomavatarold" });
    await setState(alice, roomId, "m.room.avatar", { url: "mxc://test.local/roomavatarnow" });

    const res = await post(`before_ts=${T}`);
    assert.equal(res.status, 200, res.text);
    const expected = ["accessedlongago", "neveraccessedold", preview, "roomavatarold"];
    assert.deepEqual([...res.body.deleted_media].sort(), [...expected].sort());
    assert.equal(res.body.total, 4);
    const keys = await allKeys(server.app.store);
    for (const key of [localContentKey("accessedlongago"), thumb, urlCacheKey(preview)]) {
      assert.ok(!keys.includes(key), key);
    }
    assert.ok(keys.includes(localContentKey("accessedrecently")));

    const again = await post(`before_ts=${T}&keep_profiles=false`);
    assert.deepEqual([...again.body.deleted_media].sort(), [
      "memberavatar",
      "profileavatar",
      "roomavatarnow",
    ]);
    assert.deepEqual(await localIds(server), [
      "accessedatcutoff",
      "accessedrecently",
      "neveraccessednew",
      "pendingupload",
      "protectedold",
      "quarantinedold",
      "zerobytes",
    ]);
  });

  it("deletes only media strictly larger than size_gt", async () => {
    await insertLocal(server, [
      { media_id: "tenbytes", media_length: 10 },
      { media_id: "elevenbytes", media_length: 11 },
    ]);
    const res = await post(`before_ts=${T}&size_gt=10`, "test.local");
    assert.deepEqual(res.body, { deleted_media: ["elevenbytes"], total: 1 });
    assert.ok((await localIds(server)).includes("tenbytes"));
  });

  it("works through many media in bounded batches", async () => {
    const rows: LocalValues[] = [];
    for (let i = 0; i < 275; i++) {
      const id = `bulk${String(i).padStart(4, "0")}`;
      // Every 11th is protected, so each batch also has to step past kept rows.
      rows.push({
        media_id: id,
        created_ts: T - 5000 + (i % 7),
        safe_from_quarantine: i % 11 === 0,
      });
    }
    await insertLocal(server, rows);
    const { deletion, repo } = service(server, { batchSize: 100 });
    const batchSizes: number[] = [];
    const read = repo.oldLocalMediaBatch.bind(repo);
    repo.oldLocalMediaBatch = async (...args) => {
      assert.ok(args[3] <= 100);
      const batch = await read(...args);
      batchSizes.push(batch.length);
      return batch;
    };
    const deleted = await deletion.deleteOldMedia({ beforeTs: T, sizeGt: 0, keepProfiles: true });
    // "tenbytes" from the size_gt test is old too.
    assert.deepEqual(
      deleted.filter((id) => !id.startsWith("bulk")),
      ["tenbytes"],
    );
    assert.equal(new Set(deleted.filter((id) => id.startsWith("bulk"))).size, 250);
    assert.equal(deleted.length, 251);
    assert.ok(batchSizes.length >= 3 && Math.max(...batchSizes) <= 100, String(batchSizes));
    const left = (await localIds(server)).filter((id) => id.startsWith("bulk"));
    assert.equal(left.length, 25);
    const keys = await allKeys(server.app.store);
    assert.equal(keys.filter((k) => k.startsWith("local_content/bu/lk")).length, 25);
  });
});

async function setAvatar(user: TestUser, url: string) {
  const res = await user.http.put(
    `/_matrix/client/v3/profile/${encodeURIComponent(user.userId)}/avatar_url`,
    { avatar_url: url },
  );
  assert.equal(res.status, 200, res.text);
}

forEachEngine("media admin: purge remote media cache (A14)", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
  });
  after(() => server.stop());

  /** Inserts a cached remote item with its bytes, one thumbnail file and its thumbnail row. */
  async function cacheRemote(
    values: Partial<Insertable<RemoteMediaTable>> & {
      media_origin: string;
      media_id: string;
      filesystem_id: string;
    },
  ) {
    const db = server.app.database.db;
    await db
      .insertInto("remote_media_cache")
      .values({
        media_type: "image/png",
        media_length: 4,
        created_ts: T - 10,
        last_access_ts: T - 1,
        authenticated: false,
        ...values,
      })
      .execute();
    await db
      .insertInto("remote_media_cache_thumbnails")
      .values({
        media_origin: values.media_origin,
        media_id: values.media_id,
        thumbnail_width: 32,
        thumbnail_height: 32,
        thumbnail_method: "crop",
        thumbnail_type: "image/png",
        thumbnail_length: 4,
        filesystem_id: values.filesystem_id,
      })
      .execute();
    const content = remoteContentKey(values.media_origin, values.filesystem_id);
    const thumb = remoteThumbnailKey(
      values.media_origin,
      values.filesystem_id,
      32,
      32,
      "image/png",
      "crop",
    );
    await putBlob(server.app.store, content);
    await putBlob(server.app.store, thumb);
    return [content, thumb];
  }

  const remoteRows = async () =>
    (
      await server.app.database.db
        .selectFrom("remote_media_cache")
        .select("media_id")
        .orderBy("media_id")
        .execute()
    ).map((r) => r.media_id);

  it("checks before_ts as A13 does", async () => {
    const post = (q: string) => admin.http.post(`${V1}/purge_media_cache${q}`);
    await expectError(
      await post(""),
      400,
      "M_MISSING_PARAM",
      "Missing required integer query parameter before_ts",
    );
    await expectError(
      await post("?before_ts=-5"),
      400,
      "M_INVALID_PARAM",
      "Query parameter before_ts must be a positive integer.",
    );
    await expectError(
      await post("?before_ts=x"),
      400,
      "M_INVALID_PARAM",
      "Query parameter before_ts must be an integer",
    );
    await expectError(
      await post("?before_ts=1000"),
      400,
      "M_INVALID_PARAM",
      "Query parameter before_ts you provided is from the year 1970. Double check that you are providing a timestamp in milliseconds.",
    );
  });

  it("purges old cached media (bytes, thumbnails, rows) and spares recent and quarantined media", async () => {
    const oldOne = await cacheRemote({
      media_origin: "one.example",
      media_id: "oldone",
      filesystem_id: "fsoldonexxxxxxxxxxxxxxxx",
    });
    const oldTwo = await cacheRemote({
      media_origin: "two.example",
      media_id: "oldtwo",
      filesystem_id: "fsoldtwoxxxxxxxxxxxxxxxx",
    });
    const recent = await cacheRemote({
      media_origin: "one.example",
      media_id: "recent",
      filesystem_id: "fsrecentxxxxxxxxxxxxxxxx",
      last_access_ts: T,
    });
    const quarantined = await cacheRemote({
      media_origin: "one.example",
      media_id: "quarantined",
      filesystem_id: "fsquarantinedxxxxxxxxxxx",
      quarantined_by: "@admin:test.local",
    });
    // A missing original counts as already deleted.
    await server.app.store.delete(oldTwo[0]!);

    const res = await admin.http.post(`${V1}/purge_media_cache?before_ts=${T}`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { deleted: 2 });
    const keys = await allKeys(server.app.store);
    for (const key of [...oldOne, ...oldTwo]) assert.ok(!keys.includes(key), key);
    for (const key of [...recent, ...quarantined]) assert.ok(keys.includes(key), key);
    assert.deepEqual(await remoteRows(), ["quarantined", "recent"]);
    const thumbRows = await server.app.database.db
      .selectFrom("remote_media_cache_thumbnails")
      .select("media_id")
      .orderBy("media_id")
      .execute();
    assert.deepEqual(
      thumbRows.map((r) => r.media_id),
      ["quarantined", "recent"],
    );
  });

  it("works in batches across equal access times and origins", async () => {
    for (let i = 0; i < 7; i++) {
      await cacheRemote({
        media_origin: i % 2 ? "a.example" : "b.example",
        media_id: `batch${i}`,
        filesystem_id: `fsbatch${i}xxxxxxxxxxxxxxxx`,
        last_access_ts: T - 100,
      });
    }
    const { deletion } = service(server, { batchSize: 2 });
    assert.equal(await deletion.purgeRemoteCache(T), 7);
    assert.deepEqual(await remoteRows(), ["quarantined", "recent"]);
  });
});
