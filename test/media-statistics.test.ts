import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const PATH = "/_synapse/admin/v1/statistics/users/media";

type Usage = {
  user_id: string;
  displayname: string | null;
  media_count: number;
  media_length: number;
};

forEachEngine("media admin: user media statistics (A15)", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  const get = (query = "") => admin.http.get(`${PATH}${query ? `?${query}` : ""}`);
  const ids = (body: { users: Usage[] }) => body.users.map((u) => u.user_id.slice(1).split(":")[0]);

  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
    bob = await server.user("bob");
    carol = await server.user("carol");
    await server.user("dave"); // no media: never listed
    for (const [user, name] of [
      [alice, "Alice Liddell"],
      [carol, "Zed"],
      [bob, ""], // clears the default (the localpart)
    ] as const) {
      const res = await user.http.put(
        `/_matrix/client/v3/profile/${encodeURIComponent(user.userId)}/displayname`,
        { displayname: name },
      );
      assert.equal(res.status, 200, res.text);
    }
    const media = (id: string, userId: string, length: number | null, created: number) => ({
      media_id: id,
      media_type: length === null ? null : "text/plain",
      media_length: length,
      created_ts: created,
      user_id: userId,
      quarantined_by: null,
      url_cache: null,
      last_access_ts: null,
      safe_from_quarantine: false,
      authenticated: false,
    });
    await server.app.database.db
      .insertInto("local_media_repository")
      .values([
        media("aone", alice.userId, 10, 1000),
        media("atwo", alice.userId, 20, 2000),
        media("apending", alice.userId, null, 3000),
        media("bone", bob.userId, 100, 4000),
        media("cone", carol.userId, 5, 5000),
        media("ctwo", carol.userId, 5, 6000),
      ])
      .execute();
  });
  after(() => server.stop());

  it("needs an admin token", async () => {
    for (const [client, status, errcode] of [
      [server.http, 401, "M_MISSING_TOKEN"],
      [server.http.withToken("nonsense"), 401, "M_UNKNOWN_TOKEN"],
      [alice.http, 403, "M_FORBIDDEN"],
    ] as const) {
      const res = await client.get(`${PATH}?order_by=bad`);
      assert.equal(res.status, status);
      assert.equal(res.body.errcode, errcode);
    }
  });

  it("lists users with media by user id, with counts, bytes and display names", async () => {
    const res = await get();
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, {
      users: [
        { user_id: alice.userId, displayname: "Alice Liddell", media_count: 3, media_length: 30 },
        { user_id: bob.userId, displayname: null, media_count: 1, media_length: 100 },
        { user_id: carol.userId, displayname: "Zed", media_count: 2, media_length: 10 },
      ],
      total: 3,
    });
  });

  describe("ordering", () => {
    const cases: [string, string[]][] = [
      ["order_by=user_id&dir=b", ["carol", "bob", "alice"]],
      ["order_by=media_length", ["carol", "alice", "bob"]],
      ["order_by=media_length&dir=b", ["bob", "alice", "carol"]],
      ["order_by=media_count", ["bob", "carol", "alice"]],
      ["order_by=media_count&dir=b", ["alice", "carol", "bob"]],
      // NULL display names last ascending, first descending.
      ["order_by=displayname", ["alice", "carol", "bob"]],
      ["order_by=displayname&dir=b", ["bob", "carol", "alice"]],
    ];
    for (const [query, expected] of cases) {
      it(query, async () => {
        assert.deepEqual(ids((await get(query)).body), expected);
      });
    }
  });

  it("pages with from/limit and an integer next_token while from + limit < total", async () => {
    const first = (await get("limit=2")).body;
    assert.deepEqual(ids(first), ["alice", "bob"]);
    assert.equal(first.next_token, 2);
    assert.equal(first.total, 3);
    const last = (await get("limit=2&from=2")).body;
    assert.deepEqual(ids(last), ["carol"]);
    assert.equal(last.next_token, undefined);
    const past = (await get("from=9")).body;
    assert.deepEqual(past, { users: [], total: 3 });
  });

  it("filters by creation time: from_ts inclusive, until_ts inclusive", async () => {
    const body = (await get("from_ts=2000&until_ts=5000")).body;
    assert.deepEqual(
      body.users.map((u: Usage) => [u.user_id, u.media_count, u.media_length]),
      [
        [alice.userId, 2, 20],
        [bob.userId, 1, 100],
        [carol.userId, 1, 5],
      ],
    );
    assert.deepEqual(ids((await get("from_ts=5500")).body), ["carol"]);
  });

  it("searches the localpart or display name, case-insensitively, wildcards literal", async () => {
    assert.deepEqual(ids((await get("search_term=LIC")).body), ["alice"]);
    assert.deepEqual(ids((await get("search_term=zed")).body), ["carol"]);
    assert.deepEqual((await get("search_term=test.local")).body, { users: [], total: 0 });
    assert.deepEqual((await get("search_term=%25")).body, { users: [], total: 0 });
  });

  it("errors, in Synapse's order and with its texts", async () => {
    const cases: [string, string, string?][] = [
      [
        "order_by=size&from=-1",
        "M_INVALID_PARAM",
        "Query parameter 'order_by' must be one of ['media_length', 'media_count', 'user_id', 'displayname']",
      ],
      ["from=-1", "M_INVALID_PARAM", "Query parameter from must be a positive integer."],
      ["limit=-1", "M_INVALID_PARAM", "Query parameter limit must be a positive integer."],
      ["limit=0", "M_INVALID_PARAM"],
      ["from_ts=-1", "M_INVALID_PARAM", "Query parameter from_ts must be a positive integer."],
      ["until_ts=-1", "M_INVALID_PARAM", "Query parameter until_ts must be a positive integer."],
      ["until_ts=0", "M_INVALID_PARAM", "Query parameter until_ts must be greater than from_ts."],
      [
        "from_ts=5&until_ts=5",
        "M_INVALID_PARAM",
        "Query parameter until_ts must be greater than from_ts.",
      ],
      ["search_term=", "M_INVALID_PARAM", "Query parameter search_term cannot be an empty string."],
      [
        "search_term=&dir=x",
        "M_INVALID_PARAM",
        "Query parameter search_term cannot be an empty string.",
      ],
      ["dir=x", "M_INVALID_PARAM", "Query parameter 'dir' must be one of ['b', 'f']"],
    ];
    for (const [query, errcode, error] of cases) {
      const res = await get(query);
      assert.equal(res.status, 400, query);
      assert.equal(res.body.errcode, errcode, query);
      if (error !== undefined) assert.equal(res.body.error, error, query);
    }
  });
});
