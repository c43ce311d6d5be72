/**
 * NUL (U+0000) in request input (src/http/null-bytes.ts): PostgreSQL cannot
 * store it, and before this pass a NUL in a user id, room id, event type,
 * state key, search term, filename, display name or room name answered 500
 * on PostgreSQL while SQLite stored it. A `%00` anywhere in the URL is now
 * 400 M_INVALID_PARAM on both engines, and a NUL in any string or key of a
 * JSON body is 400 M_BAD_JSON on both, before the route runs. Never a 500.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { createRoom, roomPath, txn } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const enc = encodeURIComponent;

forEachEngine("hostile: NUL bytes in requests", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let admin: TestUser;
  let roomId: string;

  before(async () => {
    server = await startTestServer(engine);
    alice = await server.user("alice");
    admin = await server.user("admin", { admin: true });
    roomId = await createRoom(alice, {});
  });
  after(() => server?.stop());

  it("a %00 in an access_token value is an unknown token: 401 M_UNKNOWN_TOKEN, never 500", async () => {
    for (const token of ["ab%00", "%00", `${alice.token}%00`]) {
      const res = await server.http.get(`/_matrix/client/v3/account/whoami?access_token=${token}`);
      assert.equal(res.status, 401, `${token}: ${res.text}`);
      assert.equal(res.body.errcode, "M_UNKNOWN_TOKEN", token);
    }
  });

  it("a %00 in a path segment or query value is 400 M_INVALID_PARAM on every route", async () => {
    const nulUser = enc("@a\u0000:test.local");
    const nulRoom = enc("!a\u0000:test.local");
    const requests: [TestUser, string, string, unknown?][] = [
      [alice, "PUT", `${roomPath(roomId)}/send/m.ro%00om/${txn()}`, { body: "x" }],
      [alice, "PUT", `${roomPath(roomId)}/state/m.room.name/a%00b`, { name: "x" }],
      [alice, "GET", `${roomPath(roomId)}/event/$a%00b`],
      [alice, "POST", `/_matrix/client/v3/join/${nulRoom}`, {}],
      [alice, "GET", `/_matrix/client/v3/profile/${nulUser}`],
      [alice, "GET", "/_matrix/client/v1/media/download/test.local/a%00b"],
      [admin, "GET", "/_synapse/admin/v2/users?name=a%00b"],
      [admin, "GET", `/_synapse/admin/v2/users/${nulUser}`],
      [admin, "GET", `/_synapse/admin/v1/users/${nulUser}/media`],
      [admin, "GET", `/_synapse/admin/v1/room/${nulRoom}/media`],
      [admin, "GET", "/_synapse/admin/v1/rooms?search_term=a%00b"],
      [admin, "GET", `/_mxcd/admin/v1/users/${nulUser}/media_usage`],
      [admin, "GET", "/_mxcd/admin/v1/media?user_id=%40a%00b%3Atest.local"],
      [admin, "GET", "/_mxcd/admin/v1/media/summary?media_type=image%2F%00"],
    ];
    for (const [user, method, path, body] of requests) {
      const res = await user.http.request(method, path, body === undefined ? {} : { body });
      assert.equal(res.status, 400, `${method} ${path}: ${res.text}`);
      assert.equal(res.body.errcode, "M_INVALID_PARAM", path);
      assert.equal(typeof res.body.error, "string");
    }
    const upload = await alice.http.request("POST", "/_matrix/media/v3/upload?filename=a%00b", {
      rawBody: "hi",
    });
    assert.equal(upload.status, 400, upload.text);
    assert.equal(upload.body.errcode, "M_INVALID_PARAM");
  });

  it("a NUL in any JSON body string or key is 400 M_BAD_JSON on both engines, and nothing is stored", async () => {
    const profile = `/_matrix/client/v3/profile/${enc(alice.userId)}`;
    const adminUser = `/_synapse/admin/v2/users/${enc(alice.userId)}`;
    const requests: [TestUser, string, string, unknown][] = [
      [alice, "POST", "/_matrix/client/v3/createRoom", { name: "a\u0000b", topic: "\u0000" }],
      [alice, "POST", "/_matrix/client/v3/createRoom", { creation_content: { "k\u0000": 1 } }],
      [alice, "PUT", `${profile}/displayname`, { displayname: "a\u0000b" }],
      [alice, "PUT", `${profile}/avatar_url`, { avatar_url: "mxc://test.local/a\u0000" }],
      [alice, "PUT", `${roomPath(roomId)}/send/m.room.message/${txn()}`, { body: ["\u0000"] }],
      [alice, "PUT", `${roomPath(roomId)}/state/m.room.topic/`, { topic: "a\u0000b" }],
      [alice, "POST", `/_matrix/client/v3/invite/${enc(roomId)}`, { user_id: "@b\u0000:x" }],
      [admin, "PUT", adminUser, { displayname: "a\u0000b" }],
      [admin, "POST", "/_synapse/admin/v1/register", { nonce: "n", username: "a\u0000b" }],
      [
        alice,
        "POST",
        "/_matrix/client/v3/login",
        {
          type: "m.login.password",
          identifier: { type: "m.id.user", user: "a\u0000b" },
          password: "x",
        },
      ],
    ];
    const roomsBefore = await roomCount();
    for (const [user, method, path, body] of requests) {
      const res = await user.http.request(method, path, { body });
      assert.equal(res.status, 400, `${method} ${path}: ${res.status} ${res.text}`);
      assert.equal(res.body.errcode, "M_BAD_JSON", path);
      assert.match(res.body.error, /U\+0000/);
    }
    assert.equal(await roomCount(), roomsBefore, "no room was created");
    const name = await alice.http.get(`${profile}/displayname`);
    assert.notEqual(name.body.displayname, "a\u0000b");
    const details = await admin.http.get(adminUser);
    assert.notEqual(details.body.displayname, "a\u0000b");
  });

  it("the text `\\u0000` (an escaped backslash, no NUL) is stored as sent", async () => {
    const profile = `/_matrix/client/v3/profile/${enc(alice.userId)}/displayname`;
    const res = await alice.http.request("PUT", profile, { body: { displayname: "a\\u0000b" } });
    assert.equal(res.status, 200, res.text);
    assert.equal((await alice.http.get(profile)).body.displayname, "a\\u0000b");
  });

  async function roomCount(): Promise<number> {
    const res = await admin.http.get("/_synapse/admin/v1/rooms");
    assert.equal(res.status, 200, res.text);
    return res.body.total_rooms;
  }
});
