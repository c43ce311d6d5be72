import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { download, uploadBytes } from "./support/media.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const ADMIN = "/_synapse/admin/v1";
const V1 = "/_matrix/client/v1/media/download/test.local";

forEachEngine("media admin: quarantine, protection, media info", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  const db = () => server.app.database.db;
  const quarantinedBy = async (mediaId: string) =>
    (
      await db()
        .selectFrom("local_media_repository")
        .select("quarantined_by")
        .where("media_id", "=", mediaId)
        .executeTakeFirstOrThrow()
    ).quarantined_by;
  const remoteCopy = async (origin: string, mediaId: string, sha256: string | null) => {
    await db()
      .insertInto("remote_media_cache")
      .values({
        media_origin: origin,
        media_id: mediaId,
        media_type: "image/png",
        media_length: 10,
        created_ts: Date.now(),
        upload_name: null,
        filesystem_id: `fs${mediaId}`.padEnd(24, "x"),
        last_access_ts: Date.now(),
        authenticated: true,
        sha256,
      })
      .execute();
  };
  const sha256Of = async (mediaId: string) =>
    (
      await db()
        .selectFrom("local_media_repository")
        .select("sha256")
        .where("media_id", "=", mediaId)
        .executeTakeFirstOrThrow()
    ).sha256!;
  const feed = async () =>
    db().selectFrom("quarantined_media_changes").selectAll().orderBy("stream_id").execute();

  it("refuses every endpoint without a token (401) and for non-admins (403)", async () => {
    const paths: [string, string][] = [
      ["GET", `${ADMIN}/media/test.local/abc`],
      ["POST", `${ADMIN}/media/quarantine/test.local/abc`],
      ["POST", `${ADMIN}/media/unquarantine/test.local/abc`],
      ["POST", `${ADMIN}/room/!r:test.local/media/quarantine`],
      ["POST", `${ADMIN}/quarantine_media/!r:test.local`],
      ["POST", `${ADMIN}/user/@alice:test.local/media/quarantine`],
      ["POST", `${ADMIN}/media/protect/abc`],
      ["POST", `${ADMIN}/media/unprotect/abc`],
    ];
    for (const [method, path] of paths) {
      const none = await server.http.request(method, path);
      assert.equal(none.status, 401, path);
      assert.equal(none.body.errcode, "M_MISSING_TOKEN");
      const user = await alice.http.request(method, path);
      assert.equal(user.status, 403, path);
      assert.equal(user.body.errcode, "M_FORBIDDEN");
    }
  });

  describe("GET /media/{serverName}/{mediaId}", () => {
    it("returns the 14-field media_info of local media with JSON booleans", async () => {
      const id = await uploadBytes(alice.http, "info please", {
        contentType: "text/plain",
        filename: "a.txt",
      });
      const res = await admin.http.get(`${ADMIN}/media/test.local/${id}`);
      assert.equal(res.status, 200);
      const info = res.body.media_info;
      assert.deepEqual(Object.keys(info).sort(), [
        "authenticated",
        "created_ts",
        "filesystem_id",
        "last_access_ts",
        "md5",
        "media_id",
        "media_length",
        "media_origin",
        "media_type",
        "pdq",
        "pdq_quality",
        "quarantined_by",
        "safe_from_quarantine",
        "sha256",
        "upload_name",
        "url_cache",
        "user_id",
      ]);
      assert.equal(info.media_origin, null);
      assert.equal(info.user_id, "@alice:test.local");
      assert.equal(info.media_length, 11);
      assert.equal(info.upload_name, "a.txt");
      assert.equal(info.authenticated, true);
      assert.equal(info.safe_from_quarantine, false);
      assert.match(info.sha256, /^[0-9a-f]{64}$/);
    });

    it("returns cached remote media with safe_from_quarantine null", async () => {
      await remoteCopy("remote.example", "RemoteInfoMedia", "ab".repeat(32));
      const res = await admin.http.get(`${ADMIN}/media/remote.example/RemoteInfoMedia`);
      assert.equal(res.status, 200);
      assert.equal(res.body.media_info.media_origin, "remote.example");
      assert.equal(res.body.media_info.safe_from_quarantine, null);
      assert.equal(res.body.media_info.user_id, null);
    });

    it("answers unknown media 404 and malformed ids 400; a media id `delete` is addressable", async () => {
      const unknown = await admin.http.get(`${ADMIN}/media/test.local/NoSuchMedia`);
      assert.deepEqual([unknown.status, unknown.body.errcode], [404, "M_NOT_FOUND"]);
      const deleteId = await admin.http.get(`${ADMIN}/media/test.local/delete`);
      assert.deepEqual([deleteId.status, deleteId.body.errcode], [404, "M_NOT_FOUND"]);
      const malformed = await admin.http.get(`${ADMIN}/media/bad%2Fserver/abc`);
      assert.deepEqual([malformed.status, malformed.body.errcode], [400, "M_INVALID_PARAM"]);
    });
  });

  describe("quarantine by id", () => {
    it("hides the media and every copy of its bytes, local and remote, and records each transition", async () => {
      const bytes = randomBytes(64);
      const a = await uploadBytes(alice.http, bytes);
      const b = await uploadBytes(alice.http, bytes);
      await remoteCopy("remote.example", "RemoteCopyOfA", await sha256Of(a));
      const before = (await feed()).length;
      const res = await admin.http.post(`${ADMIN}/media/quarantine/test.local/${a}`);
      assert.deepEqual([res.status, res.body], [200, {}]);
      assert.equal(await quarantinedBy(a), "@admin:test.local");
      assert.equal(await quarantinedBy(b), "@admin:test.local");
      assert.equal((await alice.http.get(`${V1}/${b}`)).status, 404);
      const remote = await admin.http.get(`${ADMIN}/media/remote.example/RemoteCopyOfA`);
      assert.equal(remote.body.media_info.quarantined_by, "@admin:test.local");
      const records = (await feed()).slice(before);
      assert.equal(records.length, 3);
      assert.ok(
        records.every((r) => Boolean(r.quarantined) && r.quarantined_by === "@admin:test.local"),
      );
      // Quarantining again is not a transition: no new record.
      await admin.http.post(`${ADMIN}/media/quarantine/test.local/${b}`);
      assert.equal((await feed()).length, before + 3);
    });

    it("propagates from a cached remote copy to identical local uploads", async () => {
      const bytes = randomBytes(64);
      const local = await uploadBytes(alice.http, bytes);
      await remoteCopy("remote.example", "RemoteSource", await sha256Of(local));
      await admin.http.post(`${ADMIN}/media/quarantine/remote.example/RemoteSource`);
      assert.equal(await quarantinedBy(local), "@admin:test.local");
    });

    it("unquarantines the media and its hash siblings in both directions", async () => {
      const bytes = randomBytes(64);
      const a = await uploadBytes(alice.http, bytes);
      const b = await uploadBytes(alice.http, bytes);
      await remoteCopy("remote.example", "RemoteSibling", await sha256Of(a));
      await admin.http.post(`${ADMIN}/media/quarantine/test.local/${a}`);
      const res = await admin.http.post(`${ADMIN}/media/unquarantine/remote.example/RemoteSibling`);
      assert.deepEqual([res.status, res.body], [200, {}]);
      assert.equal(await quarantinedBy(a), null);
      assert.equal(await quarantinedBy(b), null);
      assert.equal(
        (await download(server.baseUrl, `${V1}/${b}`, { token: alice.token })).status,
        200,
      );
    });

    it("answers 200 for unknown local media and blocks uncached remote media until released", async () => {
      assert.equal(
        (await admin.http.post(`${ADMIN}/media/quarantine/test.local/NoSuchMedia`)).status,
        200,
      );
      const res = await admin.http.post(`${ADMIN}/media/quarantine/far.example/NotCachedYet`);
      assert.equal(res.status, 200);
      const block = await db()
        .selectFrom("quarantine_blocks")
        .selectAll()
        .where("media_origin", "=", "far.example")
        .executeTakeFirst();
      assert.equal(block?.quarantined_by, "@admin:test.local");
      await admin.http.post(`${ADMIN}/media/unquarantine/far.example/NotCachedYet`);
      const gone = await db()
        .selectFrom("quarantine_blocks")
        .selectAll()
        .where("media_origin", "=", "far.example")
        .execute();
      assert.equal(gone.length, 0);
    });

    it("stores a later upload of quarantined bytes quarantined by system, with a feed record", async () => {
      const bytes = randomBytes(64);
      const original = await uploadBytes(alice.http, bytes);
      await admin.http.post(`${ADMIN}/media/quarantine/test.local/${original}`);
      const before = (await feed()).length;
      const copy = await uploadBytes(alice.http, bytes);
      assert.equal(await quarantinedBy(copy), "system");
      const records = (await feed()).slice(before);
      assert.equal(records.length, 1);
      assert.equal(records[0]!.media_id, copy);
      assert.equal(records[0]!.quarantined_by, "system");
      const created = await alice.http.post("/_matrix/media/v1/create");
      const asyncId = created.body.content_uri.split("/").pop();
      await alice.http.request("PUT", `/_matrix/media/v3/upload/test.local/${asyncId}`, {
        rawBody: bytes,
      });
      assert.equal(await quarantinedBy(asyncId), "system");
    });

    it("keeps a /create'd id quarantined while it waits for its bytes, and its feed exact", async () => {
      const created = await alice.http.post("/_matrix/media/v1/create");
      const id = created.body.content_uri.split("/").pop();
      await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`);
      const before = (await feed()).length;
      const put = await alice.http.request("PUT", `/_matrix/media/v3/upload/test.local/${id}`, {
        rawBody: randomBytes(40),
      });
      assert.equal(put.status, 200);
      assert.equal(await quarantinedBy(id), "@admin:test.local");
      assert.equal((await feed()).length, before, "no silent release, no record");
    });

    it("answers malformed ids with 400 M_INVALID_PARAM", async () => {
      for (const path of [
        `${ADMIN}/media/quarantine/bad%2Fserver/abc`,
        `${ADMIN}/media/unquarantine/test.local/a%2Fb`,
      ]) {
        const res = await admin.http.post(path);
        assert.deepEqual([res.status, res.body.errcode], [400, "M_INVALID_PARAM"], path);
      }
    });
  });

  describe("protection", () => {
    it("keeps protected media out of quarantine, directly and through hash siblings, until unprotected", async () => {
      const bytes = randomBytes(64);
      const kept = await uploadBytes(alice.http, bytes);
      const other = await uploadBytes(alice.http, bytes);
      assert.deepEqual((await admin.http.post(`${ADMIN}/media/protect/${kept}`)).body, {});
      await admin.http.post(`${ADMIN}/media/quarantine/test.local/${kept}`);
      assert.equal(await quarantinedBy(kept), null);
      await admin.http.post(`${ADMIN}/media/quarantine/test.local/${other}`);
      assert.equal(await quarantinedBy(other), "@admin:test.local");
      assert.equal(await quarantinedBy(kept), null, "not through its sibling either");
      assert.equal(
        (await download(server.baseUrl, `${V1}/${kept}`, { token: alice.token })).status,
        200,
      );
      await admin.http.post(`${ADMIN}/media/unprotect/${kept}`);
      await admin.http.post(`${ADMIN}/media/quarantine/test.local/${kept}`);
      assert.equal(await quarantinedBy(kept), "@admin:test.local");
    });

    it("answers protect/unprotect of unknown media with 404 M_NOT_FOUND", async () => {
      for (const action of ["protect", "unprotect"]) {
        const res = await admin.http.post(`${ADMIN}/media/${action}/NoSuchMedia`);
        assert.deepEqual([res.status, res.body.errcode], [404, "M_NOT_FOUND"]);
      }
    });
  });

  describe("quarantine by user and by room", () => {
    it("quarantines a user's media, counting real transitions and sparing protected media", async () => {
      const bob = await server.user("bob");
      const same = randomBytes(32);
      await uploadBytes(bob.http, randomBytes(32));
      await uploadBytes(bob.http, randomBytes(32));
      const first = await uploadBytes(bob.http, same);
      const protectedCopy = await uploadBytes(bob.http, same);
      await admin.http.post(`${ADMIN}/media/protect/${protectedCopy}`);
      const res = await admin.http.post(`${ADMIN}/user/@bob:test.local/media/quarantine`);
      assert.deepEqual(res.body, { num_quarantined: 3 });
      assert.equal(await quarantinedBy(first), "@admin:test.local");
      assert.equal(await quarantinedBy(protectedCopy), null);
      const again = await admin.http.post(`${ADMIN}/user/@bob:test.local/media/quarantine`);
      assert.deepEqual(again.body, { num_quarantined: 0 });
      const unknown = await admin.http.post(`${ADMIN}/user/@nobody:elsewhere.org/media/quarantine`);
      assert.deepEqual(unknown.body, { num_quarantined: 0 });
      const malformed = await admin.http.post(`${ADMIN}/user/nobody/media/quarantine`);
      assert.deepEqual([malformed.status, malformed.body.errcode], [400, "M_INVALID_PARAM"]);
    });

    it("quarantines the media referenced in a room (new and legacy paths), with hash siblings", async () => {
      const carol = await server.user("carol");
      const bytes = randomBytes(48);
      const posted = await uploadBytes(carol.http, bytes);
      const sibling = await uploadBytes(alice.http, bytes);
      const room = await carol.http.post("/_matrix/client/v3/createRoom", { name: "spam" });
      const roomId = room.body.room_id;
      await carol.http.put(
        `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`,
        {
          msgtype: "m.image",
          body: "img",
          url: `mxc://test.local/${posted}`,
        },
      );
      const res = await admin.http.post(
        `${ADMIN}/room/${encodeURIComponent(roomId)}/media/quarantine`,
      );
      assert.deepEqual(res.body, { num_quarantined: 2 });
      assert.equal(await quarantinedBy(sibling), "@admin:test.local");
      const legacy = await admin.http.post(
        `${ADMIN}/quarantine_media/${encodeURIComponent(roomId)}`,
      );
      assert.deepEqual(legacy.body, { num_quarantined: 0 });
      const unknown = await admin.http.post(
        `${ADMIN}/room/${encodeURIComponent("!nope:test.local")}/media/quarantine`,
      );
      assert.deepEqual(unknown.body, { num_quarantined: 0 });
      const malformed = await admin.http.post(`${ADMIN}/room/not-a-room/media/quarantine`);
      assert.deepEqual([malformed.status, malformed.body.errcode], [400, "M_INVALID_PARAM"]);
    });
  });
});
