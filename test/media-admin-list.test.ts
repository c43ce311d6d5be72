import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { uploadBytes } from "./support/media.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const V1 = "/_synapse/admin/v1";
const ORDER_BY = [
  "media_id",
  "upload_name",
  "created_ts",
  "last_access_ts",
  "media_length",
  "media_type",
  "quarantined_by",
  "safe_from_quarantine",
] as const;

type Row = {
  media_id: string;
  upload_name: string | null;
  created_ts: number;
  last_access_ts: number | null;
  media_length: number | null;
  media_type: string | null;
  quarantined_by: string | null;
  safe_from_quarantine: boolean;
};

// Ids and strings sort the same under any collation (lowercase ASCII letters),
// with ties and NULLs in every sortable column.
const ROWS: Row[] = [
  row("alpha", "b.png", 1000, 5000, 10, "image/png", null, false),
  row("bravo", null, 2000, null, 30, null, "@admin:test.local", true),
  row("charlie", "a.txt", 2000, 3000, null, null, null, false),
  row("delta", "c.gif", 3000, 3000, 20, "image/gif", "system", false),
  row("echo", "b.png", 500, null, 10, "text/plain", null, true),
];

function row(
  ...v: [
    string,
    string | null,
    number,
    number | null,
    number | null,
    string | null,
    string | null,
    boolean,
  ]
): Row {
  const [
    media_id,
    upload_name,
    created_ts,
    last_access_ts,
    media_length,
    media_type,
    quarantined_by,
    safe,
  ] = v;
  return {
    media_id,
    upload_name,
    created_ts,
    last_access_ts,
    media_length,
    media_type,
    quarantined_by,
    safe_from_quarantine: safe,
  };
}

/** The order PostgreSQL gives: NULLs last ascending and first descending; ties by media_id ascending. */
function expectedOrder(column: (typeof ORDER_BY)[number], desc: boolean): string[] {
  const cmp = (a: Row, b: Row): number => {
    const x = a[column];
    const y = b[column];
    if (x !== y) {
      if (x === null) return desc ? -1 : 1;
      if (y === null) return desc ? 1 : -1;
      const c = x < y ? -1 : 1;
      return desc ? -c : c;
    }
    return a.media_id < b.media_id ? -1 : 1;
  };
  return [...ROWS].sort(cmp).map((r) => r.media_id);
}

function userMedia(userId: string, query = ""): string {
  return `${V1}/users/${encodeURIComponent(userId)}/media${query ? `?${query}` : ""}`;
}

forEachEngine("media admin: list user media (A3)", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let plain: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
    plain = await server.user("plain");
    await server.app.database.db
      .insertInto("local_media_repository")
      .values(ROWS.map((r) => ({ ...r, user_id: alice.userId, authenticated: false })))
      .execute();
  });
  after(() => server.stop());

  it("needs an admin token: 401 M_MISSING_TOKEN, 401 M_UNKNOWN_TOKEN, 403 M_FORBIDDEN", async () => {
    const cases = [
      [server.http, 401, "M_MISSING_TOKEN"],
      [server.http.withToken("nonsense"), 401, "M_UNKNOWN_TOKEN"],
      [plain.http, 403, "M_FORBIDDEN"],
    ] as const;
    for (const [client, status, errcode] of cases) {
      // Auth comes before everything, even a malformed user id.
      const res = await client.get(userMedia("not-a-user", "order_by=nope"));
      assert.equal(res.status, status);
      assert.equal(res.body.errcode, errcode);
    }
  });

  it("lists newest first by default with the 12 fields and JSON booleans", async () => {
    const res = await admin.http.get(userMedia(alice.userId));
    assert.equal(res.status, 200);
    assert.equal(res.body.total, 5);
    assert.equal(res.body.next_token, undefined);
    assert.deepEqual(
      res.body.media.map((m: Row) => m.media_id),
      ["delta", "bravo", "charlie", "alpha", "echo"],
    );
    assert.deepEqual(res.body.media[1], {
      media_id: "bravo",
      media_type: null,
      media_length: 30,
      upload_name: null,
      created_ts: 2000,
      url_cache: null,
      last_access_ts: null,
      quarantined_by: "@admin:test.local",
      safe_from_quarantine: true,
      user_id: alice.userId,
      authenticated: false,
      sha256: null,
      // mxcd's extra fields (docs/trust-and-safety.md "Stored hashes").
      md5: null,
      pdq: null,
      pdq_quality: null,
    });
  });

  it("describes a real upload completely", async () => {
    const dave = await server.user("dave");
    const id = await uploadBytes(dave.http, "hello", {
      contentType: "text/plain",
      filename: "hi.txt",
    });
    const res = await admin.http.get(userMedia(dave.userId));
    assert.equal(res.status, 200);
    const [media] = res.body.media;
    // Synapse's 12 fields plus mxcd's md5, pdq, pdq_quality.
    assert.equal(Object.keys(media).length, 15);
    assert.equal(media.media_id, id);
    assert.equal(media.media_type, "text/plain");
    assert.equal(media.media_length, 5);
    assert.equal(media.upload_name, "hi.txt");
    assert.equal(typeof media.created_ts, "number");
    assert.equal(media.last_access_ts, null);
    assert.equal(media.safe_from_quarantine, false);
    assert.equal(typeof media.authenticated, "boolean");
    assert.match(media.sha256, /^[0-9a-f]{64}$/);
    assert.equal(media.md5, "5d41402abc4b2a76b9719d911017c592");
    assert.equal(media.pdq, null);
  });

  describe("ordering", () => {
    for (const column of ORDER_BY) {
      for (const dir of ["f", "b"] as const) {
        it(`order_by=${column}&dir=${dir}`, async () => {
          const res = await admin.http.get(
            userMedia(alice.userId, `order_by=${column}&dir=${dir}`),
          );
          assert.equal(res.status, 200, res.text);
          assert.deepEqual(
            res.body.media.map((m: Row) => m.media_id),
            expectedOrder(column, dir === "b"),
          );
        });
      }
    }

    it("places NULLs last ascending and first descending (spelled out)", async () => {
      const asc = await admin.http.get(userMedia(alice.userId, "order_by=last_access_ts"));
      assert.deepEqual(
        asc.body.media.map((m: Row) => m.media_id),
        ["charlie", "delta", "alpha", "bravo", "echo"],
      );
      const desc = await admin.http.get(userMedia(alice.userId, "order_by=last_access_ts&dir=b"));
      assert.deepEqual(
        desc.body.media.map((m: Row) => m.media_id),
        ["bravo", "echo", "alpha", "charlie", "delta"],
      );
    });

    it("defaults the other of order_by/dir to created_ts/f when only one is given", async () => {
      const ascending = ["echo", "alpha", "bravo", "charlie", "delta"];
      const dirF = await admin.http.get(userMedia(alice.userId, "dir=f"));
      assert.deepEqual(
        dirF.body.media.map((m: Row) => m.media_id),
        ascending,
      );
      const dirB = await admin.http.get(userMedia(alice.userId, "dir=b"));
      assert.deepEqual(
        dirB.body.media.map((m: Row) => m.media_id),
        ["delta", "bravo", "charlie", "alpha", "echo"],
      );
      const byId = await admin.http.get(userMedia(alice.userId, "order_by=media_id"));
      assert.deepEqual(
        byId.body.media.map((m: Row) => m.media_id),
        ["alpha", "bravo", "charlie", "delta", "echo"],
      );
    });
  });

  describe("pagination", () => {
    const page = async (query: string) =>
      (await admin.http.get(userMedia(alice.userId, query))).body;

    it("gives next_token (an integer) only while from + limit < total", async () => {
      const first = await page("limit=2");
      assert.deepEqual(
        first.media.map((m: Row) => m.media_id),
        ["delta", "bravo"],
      );
      assert.equal(first.next_token, 2);
      const second = await page("limit=2&from=2");
      assert.deepEqual(
        second.media.map((m: Row) => m.media_id),
        ["charlie", "alpha"],
      );
      assert.equal(second.next_token, 4);
      const last = await page("limit=2&from=4");
      assert.deepEqual(
        last.media.map((m: Row) => m.media_id),
        ["echo"],
      );
      assert.equal(last.next_token, undefined);
      assert.equal(last.total, 5);
    });

    it("has no next_token when from + limit equals total", async () => {
      const body = await page("limit=2&from=3");
      assert.equal(body.media.length, 2);
      assert.equal(body.next_token, undefined);
    });

    it("answers an empty page, no next_token, from at or past the end", async () => {
      for (const from of [5, 50]) {
        const body = await page(`from=${from}`);
        assert.deepEqual(body.media, []);
        assert.equal(body.total, 5);
        assert.equal(body.next_token, undefined);
      }
    });

    it("refuses limit=0 with 400 M_INVALID_PARAM (it would loop a client)", async () => {
      const res = await admin.http.get(userMedia(alice.userId, "limit=0"));
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, "M_INVALID_PARAM");
    });
  });

  describe("errors, in Synapse's order", () => {
    const expectError = async (path: string, status: number, errcode: string, error?: string) => {
      const res = await admin.http.get(path);
      assert.equal(res.status, status, res.text);
      assert.equal(res.body.errcode, errcode);
      if (error !== undefined) assert.equal(res.body.error, error);
    };

    it("malformed user ids: 400 M_INVALID_PARAM", async () => {
      await expectError(
        userMedia("alice"),
        400,
        "M_INVALID_PARAM",
        "Expected UserID string to start with '@'",
      );
      await expectError(
        userMedia("@alice"),
        400,
        "M_INVALID_PARAM",
        "Expected UserID of the form '@localname:domain'",
      );
    });

    it("a remote user: 400 M_INVALID_PARAM before anything else is looked at", async () => {
      await expectError(
        userMedia("@alice:other.example", "limit=-1"),
        400,
        "M_INVALID_PARAM",
        "Can only look up local users",
      );
    });

    it("an unknown local user: 404 M_NOT_FOUND, even with bad parameters", async () => {
      await expectError(userMedia("@nobody:test.local"), 404, "M_NOT_FOUND", "Unknown user");
      await expectError(
        userMedia("@nobody:test.local", "order_by=nope&limit=0"),
        404,
        "M_NOT_FOUND",
        "Unknown user",
      );
    });

    it("accepts the user id unencoded in the path", async () => {
      const res = await admin.http.get(`${V1}/users/${alice.userId}/media?limit=1`);
      assert.equal(res.status, 200);
      assert.equal(res.body.total, 5);
    });

    it("bad from/limit/order_by/dir give Synapse's texts", async () => {
      const id = alice.userId;
      await expectError(
        userMedia(id, "from=-1"),
        400,
        "M_INVALID_PARAM",
        "Query parameter from must be a positive integer.",
      );
      await expectError(
        userMedia(id, "from=x"),
        400,
        "M_INVALID_PARAM",
        "Query parameter from must be an integer",
      );
      await expectError(
        userMedia(id, "limit=-5"),
        400,
        "M_INVALID_PARAM",
        "Query parameter limit must be a positive integer.",
      );
      await expectError(
        userMedia(id, "order_by=size"),
        400,
        "M_INVALID_PARAM",
        "Query parameter 'order_by' must be one of ['media_id', 'upload_name', 'created_ts', 'last_access_ts', 'media_length', 'media_type', 'quarantined_by', 'safe_from_quarantine']",
      );
      await expectError(
        userMedia(id, "dir=up"),
        400,
        "M_INVALID_PARAM",
        "Query parameter 'dir' must be one of ['b', 'f']",
      );
    });
  });

  it("a local user without media (deactivated users included): empty list, total 0", async () => {
    const carol = await server.user("carol");
    const off = await admin.http.put(
      `/_synapse/admin/v2/users/${encodeURIComponent(carol.userId)}`,
      {
        deactivated: true,
      },
    );
    assert.equal(off.status, 200, off.text);
    const res = await admin.http.get(userMedia(carol.userId));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { media: [], total: 0 });
  });
});
