import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { registrationMac } from "../src/accounts/shared-secret-registration.js";
import { forEachEngine } from "./support/databases.js";
import { startTestServer, TEST_SHARED_SECRET, type TestServer } from "./support/test-server.js";

async function sharedSecretRegister(
  server: TestServer,
  fields: { username: string; password: string; admin?: boolean },
  secret = TEST_SHARED_SECRET,
) {
  const { body } = await server.http.get("/_synapse/admin/v1/register");
  const admin = fields.admin ?? false;
  const mac = registrationMac(secret, { nonce: body.nonce, ...fields, admin });
  return server.http.post("/_synapse/admin/v1/register", {
    nonce: body.nonce,
    ...fields,
    admin,
    mac,
  });
}

forEachEngine("accounts and auth", (engine) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(engine);
  });
  after(() => server.stop());

  describe("shared-secret registration", () => {
    it("creates a user who can log in and ask whoami", async () => {
      const reg = await sharedSecretRegister(server, { username: "alice", password: "wonderland" });
      assert.equal(reg.status, 200);
      assert.equal(reg.body.user_id, "@alice:test.local");
      assert.equal(reg.body.home_server, "test.local");
      assert.match(reg.body.device_id, /^[A-Z]{10}$/);
      const whoami = await server.http
        .withToken(reg.body.access_token)
        .get("/_matrix/client/v3/account/whoami");
      assert.deepEqual(whoami.body, {
        user_id: "@alice:test.local",
        device_id: reg.body.device_id,
        is_guest: false,
      });
      const login = await server.http.post("/_matrix/client/v3/login", {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: "alice" },
        password: "wonderland",
      });
      assert.equal(login.status, 200);
      assert.equal(login.body.user_id, "@alice:test.local");
    });

    it("makes admins when asked", async () => {
      const reg = await sharedSecretRegister(server, {
        username: "root",
        password: "pw",
        admin: true,
      });
      assert.equal(reg.status, 200);
      const user = await server.app.accounts.getUser("@root:test.local");
      assert.equal(user?.admin, true);
    });

    it("refuses a wrong MAC with 403 and uses the nonce up", async () => {
      const { body } = await server.http.get("/_synapse/admin/v1/register");
      const fields = { nonce: body.nonce, username: "mallory", password: "pw", admin: false };
      const mac = registrationMac("wrong secret", fields);
      const bad = await server.http.post("/_synapse/admin/v1/register", { ...fields, mac });
      assert.equal(bad.status, 403);
      assert.deepEqual(bad.body, { errcode: "M_FORBIDDEN", error: "HMAC incorrect" });
      const good = registrationMac(TEST_SHARED_SECRET, fields);
      const again = await server.http.post("/_synapse/admin/v1/register", { ...fields, mac: good });
      assert.equal(again.status, 400);
      assert.equal(again.body.error, "unrecognised nonce");
    });

    it("accepts each nonce once", async () => {
      const { body } = await server.http.get("/_synapse/admin/v1/register");
      const fields = { nonce: body.nonce, username: "once", password: "pw", admin: false };
      const mac = registrationMac(TEST_SHARED_SECRET, fields);
      assert.equal(
        (await server.http.post("/_synapse/admin/v1/register", { ...fields, mac })).status,
        200,
      );
      const replay = await server.http.post("/_synapse/admin/v1/register", { ...fields, mac });
      assert.equal(replay.status, 400);
      assert.equal(replay.body.errcode, "M_UNKNOWN");
    });

    it("refuses a missing nonce with 400 M_MISSING_PARAM", async () => {
      const res = await server.http.post("/_synapse/admin/v1/register", { username: "x" });
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, "M_MISSING_PARAM");
    });

    it("refuses a taken name with 400 M_USER_IN_USE", async () => {
      await sharedSecretRegister(server, { username: "taken", password: "pw" });
      const res = await sharedSecretRegister(server, { username: "taken", password: "pw" });
      assert.equal(res.status, 400);
      assert.equal(res.body.errcode, "M_USER_IN_USE");
    });

    it("refuses an invalid localpart with 400 M_INVALID_USERNAME", async () => {
      for (const username of ["has space", "_reserved", "snow☃man", ""]) {
        const res = await sharedSecretRegister(server, { username, password: "pw" });
        assert.equal(res.status, 400, username);
        assert.equal(res.body.errcode, "M_INVALID_USERNAME", username);
      }
    });

    it("lowercases the user name as Synapse does", async () => {
      const res = await sharedSecretRegister(server, { username: "MixedCase", password: "pw" });
      assert.equal(res.status, 200);
      assert.equal(res.body.user_id, "@mixedcase:test.local");
    });
  });

  describe("login", () => {
    before(async () => {
      await server.user("bob", { password: "builder" });
    });

    it("offers m.login.password", async () => {
      const res = await server.http.get("/_matrix/client/r0/login");
      assert.deepEqual(res.body, { flows: [{ type: "m.login.password" }] });
    });

    for (const [label, body] of [
      ["identifier with localpart", { identifier: { type: "m.id.user", user: "bob" } }],
      ["identifier with full id", { identifier: { type: "m.id.user", user: "@bob:test.local" } }],
      ["legacy top-level user", { user: "bob" }],
    ] as const) {
      it(`accepts the ${label}, on v3 and r0`, async () => {
        for (const version of ["v3", "r0"]) {
          const res = await server.http.post(`/_matrix/client/${version}/login`, {
            type: "m.login.password",
            password: "builder",
            device_id: "MYPHONE",
            ...body,
          });
          assert.equal(res.status, 200);
          assert.equal(res.body.user_id, "@bob:test.local");
          assert.equal(res.body.device_id, "MYPHONE");
          assert.match(res.body.access_token, /^mxcd_/);
        }
      });
    }

    it("treats null optional fields as absent (Ketesa sends device_id: null)", async () => {
      const res = await server.http.post("/_matrix/client/v3/login", {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: "bob" },
        user: null,
        password: "builder",
        device_id: null,
        initial_device_display_name: null,
        refresh_token: null,
      });
      assert.equal(res.status, 200, res.text);
      assert.match(res.body.device_id, /^[A-Z]{10}$/);
      const legacy = await server.http.post("/_matrix/client/v3/login", {
        type: "m.login.password",
        identifier: null,
        user: "bob",
        password: "builder",
      });
      assert.equal(legacy.status, 200, legacy.text);
      const wrongType = await server.http.post("/_matrix/client/v3/login", {
        type: "m.login.password",
        user: "bob",
        password: "builder",
        initial_device_display_name: 5,
      });
      assert.equal(wrongType.status, 400);
      assert.equal(wrongType.body.errcode, "M_BAD_JSON");
    });

    it("refuses a wrong password or unknown user with 403 M_FORBIDDEN", async () => {
      for (const [user, password] of [
        ["bob", "wrong"],
        ["nobody", "builder"],
      ]) {
        const res = await server.http.post("/_matrix/client/v3/login", {
          type: "m.login.password",
          user,
          password,
        });
        assert.equal(res.status, 403);
        assert.equal(res.body.errcode, "M_FORBIDDEN");
      }
    });

    it("refuses an unknown login type with 400 M_UNKNOWN and a missing password with M_BAD_JSON", async () => {
      const type = await server.http.post("/_matrix/client/v3/login", { type: "m.login.token" });
      assert.equal(type.status, 400);
      assert.equal(type.body.errcode, "M_UNKNOWN");
      const password = await server.http.post("/_matrix/client/v3/login", {
        type: "m.login.password",
        user: "bob",
      });
      assert.equal(password.status, 400);
      assert.equal(password.body.errcode, "M_BAD_JSON");
    });

    it("logs out: the token stops working, other sessions keep working", async () => {
      const login = () =>
        server.http.post("/_matrix/client/v3/login", {
          type: "m.login.password",
          user: "bob",
          password: "builder",
        });
      const first = (await login()).body.access_token;
      const second = (await login()).body.access_token;
      const out = await server.http.withToken(first).post("/_matrix/client/v3/logout", {});
      assert.equal(out.status, 200);
      const gone = await server.http.withToken(first).get("/_matrix/client/v3/account/whoami");
      assert.equal(gone.status, 401);
      assert.equal(gone.body.errcode, "M_UNKNOWN_TOKEN");
      const kept = await server.http.withToken(second).get("/_matrix/client/r0/account/whoami");
      assert.equal(kept.status, 200);
    });

    it("accepts the legacy access_token query parameter", async () => {
      const token = (await server.user("querytoken")).token;
      const res = await server.http.get(`/_matrix/client/v3/account/whoami?access_token=${token}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.user_id, "@querytoken:test.local");
    });
  });

  describe("admin endpoints", () => {
    it("check the token first, then the admin flag", async () => {
      const none = await server.http.get("/_synapse/admin/v2/users");
      assert.equal(none.status, 401);
      assert.equal(none.body.errcode, "M_MISSING_TOKEN");
      const unknown = await server.http.withToken("nope").get("/_synapse/admin/v2/users");
      assert.equal(unknown.status, 401);
      assert.equal(unknown.body.errcode, "M_UNKNOWN_TOKEN");
      const user = await server.user("plain");
      const forbidden = await user.http.get("/_synapse/admin/v2/users");
      assert.equal(forbidden.status, 403);
      assert.deepEqual(forbidden.body, {
        errcode: "M_FORBIDDEN",
        error: "You are not a server admin",
      });
    });

    it("report the server version", async () => {
      const res = await server.http.get("/_synapse/admin/v1/server_version");
      assert.equal(res.status, 200);
      assert.match(res.body.server_version, /^mxcd \d+\.\d+\.\d+/);
    });
  });
});

describe("shared-secret registration switched off", () => {
  it("answers 400 when registration_shared_secret is not set", async () => {
    const server = await startTestServer("sqlite", { registration_shared_secret: null });
    try {
      const res = await server.http.get("/_synapse/admin/v1/register");
      assert.equal(res.status, 400);
      assert.equal(res.body.error, "Shared secret registration is not enabled");
    } finally {
      await server.stop();
    }
  });
});
