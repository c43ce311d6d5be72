import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

forEachEngine("user admin API", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    for (const name of ["carol", "dave", "erin", "frank"]) await server.user(name);
  });
  after(() => server.stop());

  describe("GET /_synapse/admin/v2/users", () => {
    it("lists users with Synapse's fields, sorted by name", async () => {
      const res = await admin.http.get("/_synapse/admin/v2/users");
      assert.equal(res.status, 200);
      assert.equal(res.body.total, 5);
      assert.deepEqual(
        res.body.users.map((u: { name: string }) => u.name),
        [
          "@admin:test.local",
          "@carol:test.local",
          "@dave:test.local",
          "@erin:test.local",
          "@frank:test.local",
        ],
      );
      const carol = res.body.users[1];
      assert.equal(carol.admin, false);
      assert.equal(carol.deactivated, false);
      assert.equal(carol.is_guest, false);
      assert.equal(carol.displayname, "carol");
      assert.equal(res.body.next_token, undefined);
    });

    it("pages with from/limit and a string next_token", async () => {
      const first = await admin.http.get("/_synapse/admin/v2/users?limit=2");
      assert.equal(first.body.users.length, 2);
      assert.equal(first.body.next_token, "2");
      const last = await admin.http.get("/_synapse/admin/v2/users?limit=2&from=4");
      assert.equal(last.body.users.length, 1);
      assert.equal(last.body.next_token, undefined);
    });

    it("filters by name and admin flag and orders backwards", async () => {
      const byName = await admin.http.get("/_synapse/admin/v2/users?name=er");
      assert.deepEqual(
        byName.body.users.map((u: { name: string }) => u.name),
        ["@erin:test.local"],
      );
      const caseless = await admin.http.get("/_synapse/admin/v2/users?name=ER");
      assert.deepEqual(
        caseless.body.users.map((u: { name: string }) => u.name),
        ["@erin:test.local"],
      );
      const wildcard = await admin.http.get("/_synapse/admin/v2/users?name=_");
      assert.equal(wildcard.body.total, 0, "LIKE wildcards in the search are literal");
      const admins = await admin.http.get("/_synapse/admin/v2/users?admins=true");
      assert.deepEqual(
        admins.body.users.map((u: { name: string }) => u.name),
        ["@admin:test.local"],
      );
      const backwards = await admin.http.get("/_synapse/admin/v2/users?dir=b&limit=1");
      assert.equal(backwards.body.users[0].name, "@frank:test.local");
    });

    it("refuses bad parameters with 400 M_INVALID_PARAM", async () => {
      for (const query of [
        "from=-1",
        "limit=x",
        "order_by=password",
        "dir=up",
        "deactivated=yes",
      ]) {
        const res = await admin.http.get(`/_synapse/admin/v2/users?${query}`);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.errcode, "M_INVALID_PARAM", query);
      }
    });
  });

  describe("GET /_synapse/admin/v3/users", () => {
    const names = (body: { users: { name: string }[] }) => body.users.map((u) => u.name);
    before(async () => {
      await server.user("qgone");
      await server.user("qbot");
      const put = (id: string, body: object) =>
        admin.http.put(`/_synapse/admin/v2/users/${id}:test.local`, body);
      assert.equal((await put("@qgone", { deactivated: true })).status, 200);
      assert.equal((await put("@qbot", { user_type: "bot" })).status, 200);
    });

    it("filters deactivated users as Synapse's v3: absent all, true only them, false none", async () => {
      const all = await admin.http.get("/_synapse/admin/v3/users?name=q");
      assert.equal(all.status, 200);
      assert.deepEqual(names(all.body), ["@qbot:test.local", "@qgone:test.local"]);
      const only = await admin.http.get("/_synapse/admin/v3/users?name=q&deactivated=true");
      assert.deepEqual(names(only.body), ["@qgone:test.local"]);
      const none = await admin.http.get("/_synapse/admin/v3/users?name=q&deactivated=false");
      assert.deepEqual(names(none.body), ["@qbot:test.local"]);
      assert.ok(
        Number.isInteger(all.body.users[0].creation_ts) && all.body.users[0].creation_ts > 1e12,
      );
    });

    it("keeps v2's meaning: deactivated=true includes them, absent leaves them out", async () => {
      const v2 = await admin.http.get("/_synapse/admin/v2/users?name=q");
      assert.deepEqual(names(v2.body), ["@qbot:test.local"]);
      const v2all = await admin.http.get("/_synapse/admin/v2/users?name=q&deactivated=true");
      assert.deepEqual(names(v2all.body), ["@qbot:test.local", "@qgone:test.local"]);
    });

    it("accepts Synapse's other list parameters (guests, locked, not_user_type, every order_by)", async () => {
      const res = await admin.http.get(
        "/_synapse/admin/v3/users?name=q&guests=false&locked=false&not_user_type=bot",
      );
      assert.equal(res.status, 200);
      assert.deepEqual(names(res.body), ["@qgone:test.local"]);
      const typeless = await admin.http.get("/_synapse/admin/v3/users?name=q&not_user_type=");
      assert.deepEqual(names(typeless.body), ["@qbot:test.local"]);
      for (const order of ["is_guest", "shadow_banned", "last_seen_ts"]) {
        const ordered = await admin.http.get(
          `/_synapse/admin/v3/users?name=q&order_by=${order}&dir=b`,
        );
        assert.equal(ordered.status, 200, order);
        assert.deepEqual(names(ordered.body), ["@qbot:test.local", "@qgone:test.local"], order);
      }
      const bad = await admin.http.get("/_synapse/admin/v3/users?guests=maybe");
      assert.equal(bad.status, 400);
      assert.equal(bad.body.errcode, "M_INVALID_PARAM");
    });

    it("reports creation_ts in milliseconds in the list and in seconds for one user, as Synapse", async () => {
      const before = Date.now();
      await server.user("zinc");
      const after = Date.now();
      const list = await admin.http.get("/_synapse/admin/v2/users?name=zinc");
      const ms = list.body.users[0].creation_ts;
      assert.ok(Number.isInteger(ms) && ms >= before && ms <= after, `ms: ${ms}`);
      const one = await admin.http.get("/_synapse/admin/v2/users/@zinc:test.local");
      assert.equal(one.body.creation_ts, Math.floor(ms / 1000));
    });
  });

  describe("GET/PUT /_synapse/admin/v2/users/<user_id>", () => {
    it("returns one user, 404 for unknown and 400 for remote users", async () => {
      const res = await admin.http.get("/_synapse/admin/v2/users/@carol:test.local");
      assert.equal(res.status, 200);
      assert.equal(res.body.name, "@carol:test.local");
      assert.deepEqual(res.body.threepids, []);
      const unknown = await admin.http.get("/_synapse/admin/v2/users/@nobody:test.local");
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, "M_NOT_FOUND");
      const remote = await admin.http.get("/_synapse/admin/v2/users/@carol:elsewhere.org");
      assert.equal(remote.status, 400);
      const malformed = await admin.http.get("/_synapse/admin/v2/users/carol");
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.errcode, "M_INVALID_PARAM");
    });

    it("creates a user (201) who can then log in, as admin when asked", async () => {
      const res = await admin.http.put("/_synapse/admin/v2/users/@grace:test.local", {
        password: "hopper",
        admin: true,
        displayname: "Grace Hopper",
      });
      assert.equal(res.status, 201);
      assert.equal(res.body.admin, true);
      assert.equal(res.body.displayname, "Grace Hopper");
      const login = await server.http.post("/_matrix/client/v3/login", {
        type: "m.login.password",
        user: "grace",
        password: "hopper",
      });
      assert.equal(login.status, 200);
    });

    it("updates a user (200): password change logs the user out, new password works", async () => {
      const henry = await server.user("henry", { password: "old" });
      const res = await admin.http.put("/_synapse/admin/v2/users/@henry:test.local", {
        password: "new",
        displayname: "Henry",
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.displayname, "Henry");
      assert.equal((await henry.http.get("/_matrix/client/v3/account/whoami")).status, 401);
      const login = (password: string) =>
        server.http.post("/_matrix/client/v3/login", {
          type: "m.login.password",
          user: "henry",
          password,
        });
      assert.equal((await login("old")).status, 403);
      assert.equal((await login("new")).status, 200);
    });

    it("deactivates: tokens stop working, login is refused, and the list hides the user", async () => {
      const ivan = await server.user("ivan", { password: "pw" });
      const res = await admin.http.put("/_synapse/admin/v2/users/@ivan:test.local", {
        deactivated: true,
      });
      assert.equal(res.status, 200);
      assert.equal(res.body.deactivated, true);
      assert.equal((await ivan.http.get("/_matrix/client/v3/account/whoami")).status, 401);
      const login = await server.http.post("/_matrix/client/v3/login", {
        type: "m.login.password",
        user: "ivan",
        password: "pw",
      });
      assert.equal(login.status, 403);
      assert.equal(login.body.errcode, "M_USER_DEACTIVATED");
      const list = await admin.http.get("/_synapse/admin/v2/users?name=ivan");
      assert.equal(list.body.total, 0);
      const withDeactivated = await admin.http.get(
        "/_synapse/admin/v2/users?name=ivan&deactivated=true",
      );
      assert.equal(withDeactivated.body.total, 1);
      const reactivate = await admin.http.put("/_synapse/admin/v2/users/@ivan:test.local", {
        deactivated: false,
      });
      assert.equal(reactivate.status, 400);
    });

    it("refuses wrongly typed fields with 400 M_INVALID_PARAM", async () => {
      for (const body of [{ admin: "yes" }, { password: 5 }, { displayname: 3 }]) {
        const res = await admin.http.put("/_synapse/admin/v2/users/@carol:test.local", body);
        assert.equal(res.status, 400, JSON.stringify(body));
        assert.equal(res.body.errcode, "M_INVALID_PARAM");
      }
    });

    it("refuses a new user with an invalid localpart with 400 M_INVALID_USERNAME", async () => {
      const res = await admin.http.put("/_synapse/admin/v2/users/@Bad%20Name:test.local", {
        password: "x",
      });
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, "M_INVALID_USERNAME");
    });
  });

  describe("POST /_synapse/admin/v1/users/<user_id>/login", () => {
    it("gives a token that acts as the user", async () => {
      const res = await admin.http.post("/_synapse/admin/v1/users/@dave:test.local/login", {});
      assert.equal(res.status, 200);
      const whoami = await server.http
        .withToken(res.body.access_token)
        .get("/_matrix/client/v3/account/whoami");
      assert.equal(whoami.body.user_id, "@dave:test.local");
    });

    it("honours valid_until_ms", async () => {
      const res = await admin.http.post("/_synapse/admin/v1/users/@dave:test.local/login", {
        valid_until_ms: Date.now() - 1,
      });
      assert.equal(res.status, 200);
      const whoami = await server.http
        .withToken(res.body.access_token)
        .get("/_matrix/client/v3/account/whoami");
      assert.equal(whoami.status, 401);
    });

    it("refuses self, unknown and remote users", async () => {
      const self = await admin.http.post("/_synapse/admin/v1/users/@admin:test.local/login", {});
      assert.equal(self.status, 400);
      const unknown = await admin.http.post(
        "/_synapse/admin/v1/users/@nobody:test.local/login",
        {},
      );
      assert.equal(unknown.status, 404);
      const remote = await admin.http.post("/_synapse/admin/v1/users/@x:other.org/login", {});
      assert.equal(remote.status, 400);
    });
  });
});
