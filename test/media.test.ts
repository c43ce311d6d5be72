import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { createDatabase } from "../src/db/database.js";
import { localContentKey } from "../src/storage/media-paths.js";
import { forEachEngine } from "./support/databases.js";
import { allKeys, download, mediaIdOf, rawGet, uploadBytes } from "./support/media.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const V1 = "/_matrix/client/v1/media/download/test.local";

forEachEngine("media upload and download", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let admin: TestUser;
  before(async () => {
    server = await startTestServer(engine, {
      max_upload_size: 64 * 1024,
      max_pending_media_uploads: 3,
    });
    alice = await server.user("alice");
    bob = await server.user("bob");
    admin = await server.user("admin", { admin: true });
  });
  after(() => server.stop());

  describe("upload", () => {
    it("stores the bytes under a new 24-letter id and serves them back with the spec's headers", async () => {
      const bytes = randomBytes(5000);
      const res = await alice.http.request("POST", "/_matrix/media/v3/upload?filename=cat.png", {
        rawBody: bytes,
        headers: { "content-type": "image/png" },
      });
      assert.equal(res.status, 200);
      assert.match(res.body.content_uri, /^mxc:\/\/test\.local\/[A-Za-z]{24}$/);
      const got = await download(server.baseUrl, `${V1}/${mediaIdOf(res.body.content_uri)}`, {
        token: alice.token,
      });
      assert.equal(got.status, 200);
      assert.deepEqual(got.bytes, bytes);
      const h = got.headers;
      assert.equal(h.get("content-type"), "image/png");
      assert.equal(h.get("content-disposition"), "inline; filename=cat.png");
      assert.equal(h.get("content-length"), "5000");
      assert.match(h.get("content-security-policy")!, /^sandbox; default-src 'none'/);
      assert.equal(h.get("cross-origin-resource-policy"), "cross-origin");
      assert.equal(h.get("x-robots-tag"), "noindex, nofollow, noarchive, noimageindex");
      assert.equal(h.get("cache-control"), "public,max-age=86400,s-maxage=0,proxy-revalidate");
      assert.equal(h.get("access-control-allow-origin"), "*");
      assert.ok(h.get("etag"));
    });

    it("accepts the r0 and v1 aliases", async () => {
      for (const version of ["r0", "v1"]) {
        const id = await uploadBytes(alice.http, `via ${version}`, { version });
        const got = await download(server.baseUrl, `${V1}/${id}`, { token: alice.token });
        assert.equal(got.bytes.toString(), `via ${version}`);
      }
    });

    it("stores application/octet-stream when no Content-Type is sent, and the type as given otherwise", async () => {
      const plain = await uploadBytes(alice.http, new Uint8Array([1, 2, 3]));
      const plainGot = await download(server.baseUrl, `${V1}/${plain}`, { token: alice.token });
      assert.equal(plainGot.headers.get("content-type"), "application/octet-stream");
      assert.equal(plainGot.headers.get("content-disposition"), "attachment");
      const bogus = await uploadBytes(alice.http, "x", { contentType: "img/png" });
      const bogusGot = await download(server.baseUrl, `${V1}/${bogus}`, { token: alice.token });
      assert.equal(bogusGot.headers.get("content-type"), "img/png");
      const text = await uploadBytes(alice.http, "hello", { contentType: "text/plain" });
      const textGot = await download(server.baseUrl, `${V1}/${text}`, { token: alice.token });
      assert.equal(textGot.headers.get("content-type"), "text/plain; charset=UTF-8");
    });

    it("round-trips unicode and odd file names through Content-Disposition, and serves no-name uploads bare", async () => {
      const cases: [string, string][] = [
        ["🐔", "inline; filename*=utf-8''%F0%9F%90%94"],
        ["name with spaces.txt", "inline; filename*=utf-8''name%20with%20spaces.txt"],
        ["name;with;semicolons", "inline; filename*=utf-8''name%3Bwith%3Bsemicolons"],
      ];
      for (const [name, expected] of cases) {
        const id = await uploadBytes(alice.http, "x", {
          contentType: "text/plain",
          filename: name,
        });
        const got = await download(server.baseUrl, `${V1}/${id}`, { token: alice.token });
        assert.equal(got.headers.get("content-disposition"), expected, name);
      }
      const id = await uploadBytes(alice.http, "x", { contentType: "text/plain" });
      const noName = await download(server.baseUrl, `${V1}/${id}`, { token: alice.token });
      assert.equal(noName.headers.get("content-disposition"), "inline");
      const overridden = await download(server.baseUrl, `${V1}/${id}/other%20name.txt`, {
        token: alice.token,
      });
      assert.equal(
        overridden.headers.get("content-disposition"),
        "inline; filename*=utf-8''other%20name.txt",
      );
    });

    it("refuses an upload over max_upload_size with 413 M_TOO_LARGE and leaves no file", async () => {
      const before = await allKeys(server.app.store);
      const declared = await alice.http.request("POST", "/_matrix/media/v3/upload", {
        rawBody: randomBytes(64 * 1024 + 1),
      });
      assert.equal(declared.status, 413);
      assert.equal(declared.body.errcode, "M_TOO_LARGE");
      assert.deepEqual(await allKeys(server.app.store), before);
    });

    it("enforces the limit mid-stream for a chunked body without Content-Length, leaving no file", async () => {
      const before = await allKeys(server.app.store);
      const chunk = randomBytes(16 * 1024);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 10) return controller.close();
          sent++;
          controller.enqueue(chunk);
        },
      });
      const response = await fetch(`${server.baseUrl}/_matrix/media/v3/upload`, {
        method: "POST",
        headers: { authorization: `Bearer ${alice.token}` },
        body,
        duplex: "half",
      } as RequestInit);
      assert.equal(response.status, 413);
      assert.equal(((await response.json()) as { errcode: string }).errcode, "M_TOO_LARGE");
      assert.deepEqual(await allKeys(server.app.store), before);
    });

    it("refuses an invalid UTF-8 filename with 400", async () => {
      const res = await alice.http.request("POST", "/_matrix/media/v3/upload?filename=%FF%FE", {
        rawBody: "x",
      });
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, "M_INVALID_PARAM");
    });

    it("requires a token", async () => {
      const res = await server.http.request("POST", "/_matrix/media/v3/upload", { rawBody: "x" });
      assert.equal(res.status, 401);
      assert.equal(res.body.errcode, "M_MISSING_TOKEN");
    });
  });

  describe("download", () => {
    let id: string;
    const bytes = Buffer.from("0123456789abcdefghij");
    before(async () => {
      id = await uploadBytes(alice.http, bytes, { contentType: "video/mp4" });
    });

    it("requires a token on the client v1 endpoint", async () => {
      const res = await download(server.baseUrl, `${V1}/${id}`);
      assert.equal(res.status, 401);
    });

    it("answers unknown media with 404 M_NOT_FOUND", async () => {
      const res = await alice.http.get(`${V1}/NoSuchMediaHereAtAll`);
      assert.equal(res.status, 404);
      assert.equal(res.body.errcode, "M_NOT_FOUND");
    });

    it("answers a row whose bytes are gone with 404 M_NOT_FOUND (whole and ranged), never 500", async () => {
      const lost = await uploadBytes(alice.http, "soon gone", { contentType: "text/plain" });
      await server.app.store.delete(localContentKey(lost));
      for (const headers of [{}, { range: "bytes=0-3" }] as Record<string, string>[]) {
        for (const path of [`${V1}/${lost}`, `/_matrix/media/v3/download/test.local/${lost}`]) {
          const res = await alice.http.get(path, { headers });
          assert.equal(res.status, 404, path);
          assert.equal(res.body.errcode, "M_NOT_FOUND");
        }
      }
    });

    it("answers hostile identifiers with 400 M_INVALID_PARAM before touching storage", async () => {
      for (const path of [
        `${V1}/..`,
        `${V1}/a%2F..%2F..%2Fetc%2Fpasswd`,
        `${V1}/abc%00def`,
        `${V1}/${"a".repeat(5000)}`,
        `${V1}/%C3%A9t%C3%A9`,
        "/_matrix/client/v1/media/download/bad%2Fserver/abc",
        "/_matrix/client/v1/media/download/..%2F..%2F/abc",
        "/_matrix/client/v1/media/download/exa%20mple.org/abc",
        `${V1}/..%2F..%2Fsecret`,
      ]) {
        const res = await rawGet(server.baseUrl, path, alice.token);
        assert.equal(res.status, 400, path);
        assert.equal(res.body.errcode, "M_INVALID_PARAM", path);
      }
    });

    it("serves single byte ranges with 206 and refuses impossible ones with 416", async () => {
      const range = async (value: string) =>
        download(server.baseUrl, `${V1}/${id}`, { token: alice.token, headers: { range: value } });
      const first = await range("bytes=0-0");
      assert.equal(first.status, 206);
      assert.equal(first.bytes.toString(), "0");
      assert.equal(first.headers.get("content-range"), "bytes 0-0/20");
      const middle = await range("bytes=10-14");
      assert.equal(middle.bytes.toString(), "abcde");
      assert.equal(middle.headers.get("content-length"), "5");
      assert.equal((await range("bytes=-3")).bytes.toString(), "hij");
      assert.equal((await range("bytes=15-")).bytes.toString(), "fghij");
      assert.equal((await range("bytes=18-100")).bytes.toString(), "ij");
      const past = await range("bytes=20-");
      assert.equal(past.status, 416);
      assert.equal(past.headers.get("content-range"), "bytes */20");
      const multi = await range("bytes=0-1,4-5");
      assert.equal(multi.status, 200);
      assert.deepEqual(multi.bytes, bytes);
    });

    it("answers If-None-Match with 304", async () => {
      const res = await download(server.baseUrl, `${V1}/${id}`, {
        token: alice.token,
        headers: { "if-none-match": "1" },
      });
      assert.equal(res.status, 304);
      assert.equal(res.bytes.length, 0);
    });

    it("hides media stored with authenticated media on from the legacy endpoints (the freeze)", async () => {
      for (const version of ["v3", "r0", "v1"]) {
        const res = await server.http.get(`/_matrix/media/${version}/download/test.local/${id}`);
        assert.equal(res.status, 404, version);
        assert.equal(res.body.errcode, "M_NOT_FOUND");
      }
    });

    it("hides quarantined media, lets an admin bypass on client v1 only, and refuses the bypass to others", async () => {
      const secret = await uploadBytes(alice.http, "quarantine me");
      await server.app.database.db
        .updateTable("local_media_repository")
        .set({ quarantined_by: "@admin:test.local" })
        .where("media_id", "=", secret)
        .execute();
      const hidden = await alice.http.get(`${V1}/${secret}`);
      assert.equal(hidden.status, 404);
      assert.equal(hidden.body.errcode, "M_NOT_FOUND");
      const adminPlain = await admin.http.get(`${V1}/${secret}`);
      assert.equal(adminPlain.status, 404);
      const bypass = await download(
        server.baseUrl,
        `${V1}/${secret}?admin_unsafely_bypass_quarantine=true`,
        {
          token: admin.token,
        },
      );
      assert.equal(bypass.status, 200);
      assert.equal(bypass.bytes.toString(), "quarantine me");
      const refused = await alice.http.get(
        `${V1}/NoSuchMedia?admin_unsafely_bypass_quarantine=true`,
      );
      assert.equal(refused.status, 400);
      assert.deepEqual(refused.body, {
        errcode: "M_UNKNOWN",
        error: "Must be a server admin to bypass quarantine",
      });
      const ignored = await alice.http.get(`${V1}/${secret}?admin_unsafely_bypass_quarantine=True`);
      assert.equal(ignored.status, 404);
    });

    it("stores new bytes that match quarantined media as quarantined by system", async () => {
      const original = await uploadBytes(alice.http, "known bad bytes");
      await server.app.database.db
        .updateTable("local_media_repository")
        .set({ quarantined_by: "@admin:test.local" })
        .where("media_id", "=", original)
        .execute();
      const copy = await uploadBytes(bob.http, "known bad bytes");
      const row = await server.app.database.db
        .selectFrom("local_media_repository")
        .select(["quarantined_by", "sha256"])
        .where("media_id", "=", copy)
        .executeTakeFirstOrThrow();
      assert.equal(row.quarantined_by, "system");
      assert.equal((await bob.http.get(`${V1}/${copy}`)).status, 404);
    });

    it("answers the media config with m.upload.size", async () => {
      for (const path of [
        "/_matrix/client/v1/media/config",
        "/_matrix/media/v3/config",
        "/_matrix/media/r0/config",
      ]) {
        const res = await alice.http.get(path);
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { "m.upload.size": 64 * 1024 });
      }
      assert.equal((await server.http.get("/_matrix/client/v1/media/config")).status, 401);
    });
  });

  describe("async upload", () => {
    const create = async (user: TestUser) => {
      const res = await user.http.post("/_matrix/media/v1/create");
      assert.equal(res.status, 200);
      assert.ok(res.body.unused_expires_at > Date.now());
      return mediaIdOf(res.body.content_uri);
    };
    const put = (user: TestUser, id: string, body: string | Uint8Array, server_ = "test.local") =>
      user.http.request("PUT", `/_matrix/media/v3/upload/${server_}/${id}`, {
        rawBody: body,
        headers: { "content-type": "text/plain" },
      });

    it("creates an id, fills it, and serves it", async () => {
      const id = await create(alice);
      const res = await put(alice, id, "later bytes");
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, {});
      const got = await download(server.baseUrl, `${V1}/${id}`, { token: bob.token });
      assert.equal(got.bytes.toString(), "later bytes");
    });

    it("checks in order: 404 non-local, 404 unknown, 403 other user, 409 has content, 413 too large", async () => {
      const id = await create(alice);
      const remote = await put(alice, id, "x", "other.server");
      assert.equal(remote.status, 404);
      assert.equal(remote.body.errcode, "M_NOT_FOUND");
      const unknown = await put(alice, "NoSuchCreatedId", "x");
      assert.equal(unknown.status, 404);
      const other = await put(bob, id, "x");
      assert.equal(other.status, 403);
      assert.equal(other.body.errcode, "M_FORBIDDEN");
      const tooBig = await put(alice, id, randomBytes(64 * 1024 + 1));
      assert.equal(tooBig.status, 413);
      assert.equal(tooBig.body.errcode, "M_TOO_LARGE");
      assert.equal((await put(alice, id, "first")).status, 200);
      // Complement's conflict test: an empty JSON-typed body, answered 409 before any body check.
      const again = await alice.http.request("PUT", `/_matrix/media/v3/upload/test.local/${id}`, {
        headers: { "content-type": "application/json" },
      });
      assert.equal(again.status, 409);
      assert.equal(again.body.errcode, "M_CANNOT_OVERWRITE_MEDIA");
    });

    it("lets one of two concurrent uploads to one id win; the other gets 409", async () => {
      const id = await create(bob);
      const results = await Promise.all([
        put(bob, id, "one".repeat(1000)),
        put(bob, id, "two".repeat(1000)),
      ]);
      assert.deepEqual(results.map((r) => r.status).sort(), [200, 409]);
      const got = await download(server.baseUrl, `${V1}/${id}`, { token: bob.token });
      assert.ok(["one".repeat(1000), "two".repeat(1000)].includes(got.bytes.toString()));
    });

    it("caps pending ids per user with 429 M_LIMIT_EXCEEDED", async () => {
      const carol = await server.user("carol");
      for (let i = 0; i < 3; i++) await create(carol);
      const res = await carol.http.post("/_matrix/media/v1/create");
      assert.equal(res.status, 429);
      assert.equal(res.body.errcode, "M_LIMIT_EXCEEDED");
    });

    it("holds a download of pending media until the upload completes", async () => {
      const id = await create(alice);
      const waiting = download(server.baseUrl, `${V1}/${id}?timeout_ms=10000`, {
        token: bob.token,
      });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await put(alice, id, "worth the wait")).status, 200);
      const got = await waiting;
      assert.equal(got.status, 200);
      assert.equal(got.bytes.toString(), "worth the wait");
    });

    it("answers 504 M_NOT_YET_UPLOADED when the wait times out, on the legacy path too", async () => {
      const id = await create(alice);
      const res = await alice.http.get(`${V1}/${id}?timeout_ms=100`);
      assert.equal(res.status, 504);
      assert.equal(res.body.errcode, "M_NOT_YET_UPLOADED");
      const legacy = await server.http.get(
        `/_matrix/media/v3/download/test.local/${id}?timeout_ms=100`,
      );
      assert.equal(legacy.status, 504);
    });
  });
});

forEachEngine("media settings", (engine) => {
  it("serves everything on the legacy endpoints when enable_authenticated_media is false", async () => {
    const server = await startTestServer(engine, { enable_authenticated_media: false });
    try {
      const alice = await server.user("alice");
      const id = await uploadBytes(alice.http, "open to all", { contentType: "text/plain" });
      for (const version of ["v3", "r0", "v1"]) {
        const res = await download(
          server.baseUrl,
          `/_matrix/media/${version}/download/test.local/${id}`,
        );
        assert.equal(res.status, 200, version);
        assert.equal(res.bytes.toString(), "open to all");
      }
    } finally {
      await server.stop();
    }
  });

  it("expires unused /create ids: the upload and downloads answer 404", async () => {
    const server = await startTestServer(engine, { unused_expiration_time: "50ms" });
    try {
      const alice = await server.user("alice");
      const created = await alice.http.post("/_matrix/media/v1/create");
      const id = mediaIdOf(created.body.content_uri);
      await new Promise((r) => setTimeout(r, 100));
      const put = await alice.http.request("PUT", `/_matrix/media/v3/upload/test.local/${id}`, {
        rawBody: "x",
      });
      assert.equal(put.status, 404);
      assert.equal(put.body.error, "Media ID has expired");
      assert.equal((await alice.http.get(`${V1}/${id}`)).status, 404);
    } finally {
      await server.stop();
    }
  });

  it("records last_access_ts in batches and writes them at shutdown", async () => {
    const server = await startTestServer(engine);
    const alice = await server.user("alice");
    const id = await uploadBytes(alice.http, "touch me");
    const before = Date.now();
    await download(server.baseUrl, `${V1}/${id}`, { token: alice.token });
    const unflushed = await server.app.database.db
      .selectFrom("local_media_repository")
      .select("last_access_ts")
      .where("media_id", "=", id)
      .executeTakeFirstOrThrow();
    assert.equal(unflushed.last_access_ts, null, "coalesced, not written per request");
    await server.stop();
    const database = createDatabase(server.app.config.database);
    try {
      const row = await database.db
        .selectFrom("local_media_repository")
        .select("last_access_ts")
        .where("media_id", "=", id)
        .executeTakeFirstOrThrow();
      assert.ok(Number(row.last_access_ts) >= before);
    } finally {
      await database.close();
    }
  });
});
