import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { CLIENT, createRoom, roomPath } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

forEachEngine("profiles", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    alice = await server.user("alice");
    bob = await server.user("bob");
  });
  after(() => server.stop());

  const profile = (user: TestUser, userId: string, field = "") =>
    user.http.get(`${CLIENT}/profile/${encodeURIComponent(userId)}${field && `/${field}`}`);

  describe("GET /profile/<user_id>", () => {
    it("returns the profile, leaving out unset fields", async () => {
      const res = await profile(bob, alice.userId);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { displayname: "alice" });
      assert.deepEqual((await profile(bob, alice.userId, "avatar_url")).body, {});
      assert.deepEqual((await profile(bob, alice.userId, "displayname")).body, {
        displayname: "alice",
      });
    });

    it("answers 404 M_NOT_FOUND for unknown and remote users, 401 without a token", async () => {
      for (const userId of ["@nobody:test.local", "@alice:elsewhere.example"]) {
        for (const field of ["", "displayname", "avatar_url"]) {
          const res = await profile(alice, userId, field);
          assert.equal(res.status, 404, `${userId} ${field}`);
          assert.equal(res.body.errcode, "M_NOT_FOUND");
        }
      }
      const anonymous = await server.http.get(`${CLIENT}/profile/${alice.userId}`);
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.body.errcode, "M_MISSING_TOKEN");
    });
  });

  describe("PUT /profile/<user_id>/<field>", () => {
    it("sets one's own display name and avatar, on v3 and r0", async () => {
      const name = await alice.http.put(`/_matrix/client/r0/profile/${alice.userId}/displayname`, {
        displayname: "Alice A.",
      });
      assert.equal(name.status, 200);
      const avatar = await alice.http.put(`${CLIENT}/profile/${alice.userId}/avatar_url`, {
        avatar_url: "mxc://test.local/AliceFace",
      });
      assert.equal(avatar.status, 200);
      assert.deepEqual((await profile(bob, alice.userId)).body, {
        displayname: "Alice A.",
        avatar_url: "mxc://test.local/AliceFace",
      });
    });

    it("refuses to change another user's profile with 403 M_FORBIDDEN", async () => {
      for (const [field, value] of [
        ["displayname", "Mallory"],
        ["avatar_url", "mxc://test.local/x"],
      ] as const) {
        const res = await bob.http.put(`${CLIENT}/profile/${alice.userId}/${field}`, {
          [field]: value,
        });
        assert.equal(res.status, 403, field);
        assert.equal(res.body.errcode, "M_FORBIDDEN");
      }
      const admin = await server.user("root", { admin: true });
      const byAdmin = await admin.http.put(`${CLIENT}/profile/${alice.userId}/displayname`, {
        displayname: "Hijacked",
      });
      assert.equal(byAdmin.status, 403);
    });

    it("refuses a missing or non-string field with 400 M_BAD_JSON, too long with M_INVALID_PARAM", async () => {
      for (const body of [{}, { displayname: 5 }]) {
        const res = await alice.http.put(`${CLIENT}/profile/${alice.userId}/displayname`, body);
        assert.equal(res.status, 400);
        assert.equal(res.body.errcode, "M_BAD_JSON");
      }
      const long = await alice.http.put(`${CLIENT}/profile/${alice.userId}/displayname`, {
        displayname: "x".repeat(300),
      });
      assert.equal(long.status, 400);
      assert.equal(long.body.errcode, "M_INVALID_PARAM");
    });

    it("clears a field with an empty string", async () => {
      const carol = await server.user("carol");
      await carol.http.put(`${CLIENT}/profile/${carol.userId}/displayname`, { displayname: "" });
      assert.deepEqual((await profile(carol, carol.userId)).body, {});
    });

    it("copies the new profile into the member events of joined rooms", async () => {
      const dave = await server.user("dave");
      const roomId = await createRoom(dave);
      await dave.http.put(`${CLIENT}/profile/${dave.userId}/avatar_url`, {
        avatar_url: "mxc://test.local/DaveFace",
      });
      const member = await dave.http.get(
        `${roomPath(roomId)}/state/m.room.member/${encodeURIComponent(dave.userId)}`,
      );
      assert.deepEqual(member.body, {
        membership: "join",
        displayname: "dave",
        avatar_url: "mxc://test.local/DaveFace",
      });
    });
  });
});
