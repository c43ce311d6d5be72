import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient } from "matrix-js-sdk";
import sharp from "sharp";
import { forEachEngine } from "./support/databases.js";
import { CLIENT, createRoom, image, join, redact, send, setState } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const ADMIN = "/_synapse/admin/v1";
const local = (id: string) => `mxc://test.local/${id}`;
const remote = (id: string) => `mxc://remote.example/${id}`;
/** Keeps matrix-js-sdk's request logging out of the test output. */
const quiet = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
  getChild: () => quiet,
};
const media = (user: TestUser, roomId: string) =>
  user.http.get(`${ADMIN}/room/${encodeURIComponent(roomId)}/media`);

forEachEngine("room admin API", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  describe("GET /room/<room_id>/media", () => {
    it("checks the token first, then the admin flag", async () => {
      const roomId = await createRoom(alice);
      const none = await server.http.get(`${ADMIN}/room/${encodeURIComponent(roomId)}/media`);
      assert.equal(none.status, 401);
      assert.equal(none.body.errcode, "M_MISSING_TOKEN");
      const plain = await media(alice, roomId);
      assert.equal(plain.status, 403);
      assert.equal(plain.body.errcode, "M_FORBIDDEN");
    });

    it("answers 200 with empty lists for unknown or garbage rooms (as Synapse)", async () => {
      for (const roomId of ["!unknown:test.local", "garbage"]) {
        const res = await media(admin, roomId);
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { local: [], remote: [] });
      }
    });

    it("lists local and remote media newest first, de-duplicated, url before thumbnail", async () => {
      const roomId = await createRoom(alice, { preset: "public_chat" });
      await send(alice, roomId, image(local("Old")));
      await send(alice, roomId, image(remote("R1"), local("R1Thumb")));
      await send(alice, roomId, {
        msgtype: "m.image",
        info: { thumbnail_url: local("OnlyThumb") },
      });
      await send(alice, roomId, { url: remote("Sticker"), info: {} }, "m.sticker");
      await setState(alice, roomId, "m.room.avatar", { url: local("RoomFace") });
      await send(alice, roomId, image(local("Old")));
      await send(alice, roomId, { body: "not a reference", url: "https://example.org/x.png" });
      const res = await media(admin, roomId);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, {
        local: [local("Old"), local("RoomFace"), local("OnlyThumb"), local("R1Thumb")],
        remote: [remote("Sticker"), remote("R1")],
      });
    });

    it("includes member avatars and drops redacted references", async () => {
      const bob = await server.user("bob");
      await bob.http.put(`${CLIENT}/profile/${bob.userId}/avatar_url`, {
        avatar_url: local("BobFace"),
      });
      const roomId = await createRoom(alice, { preset: "public_chat" });
      await join(bob, roomId);
      const event = await send(bob, roomId, image(local("Secret")));
      assert.deepEqual((await media(admin, roomId)).body.local, [
        local("Secret"),
        local("BobFace"),
      ]);
      await redact(bob, roomId, event);
      assert.deepEqual((await media(admin, roomId)).body.local, [local("BobFace")]);
    });

    it("lists nothing for encrypted events", async () => {
      const roomId = await createRoom(alice, {
        initial_state: [
          { type: "m.room.encryption", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        ],
      });
      await send(
        alice,
        roomId,
        { algorithm: "m.megolm.v1.aes-sha2", ciphertext: "AwgA" },
        "m.room.encrypted",
      );
      assert.deepEqual((await media(admin, roomId)).body, { local: [], remote: [] });
    });
  });

  describe("GET /rooms and /rooms/<room_id>", () => {
    let rooms: Record<string, string>;
    before(async () => {
      const bob = await server.user("roomlister");
      rooms = {
        apple: await createRoom(bob, {
          name: "Apple",
          preset: "public_chat",
          visibility: "public",
        }),
        banana: await createRoom(bob, {
          name: "Banana split",
          topic: "desserts",
          initial_state: [
            { type: "m.room.encryption", content: { algorithm: "m.megolm.v1.aes-sha2" } },
            { type: "m.room.avatar", content: { url: local("BananaFace") } },
          ],
        }),
        cherry: await createRoom(bob, { name: "Cherry", preset: "public_chat" }),
      };
      await join(alice, rooms.cherry!);
      await join(admin, rooms.cherry!); // the largest room: 3 members
    });

    it("lists rooms with Synapse's fields, ordered by name", async () => {
      const res = await admin.http.get(`${ADMIN}/rooms?search_term=an`);
      assert.equal(res.status, 200);
      assert.equal(res.body.offset, 0);
      assert.equal(res.body.total_rooms, 1);
      assert.deepEqual(res.body.rooms, [
        {
          room_id: rooms.banana,
          name: "Banana split",
          canonical_alias: null,
          joined_members: 1,
          joined_local_members: 1,
          version: "10",
          creator: "@roomlister:test.local",
          encryption: "m.megolm.v1.aes-sha2",
          federatable: true,
          public: false,
          join_rules: "invite",
          guest_access: "can_join",
          history_visibility: "shared",
          state_events: 10,
          room_type: null,
        },
      ]);
      const all = await admin.http.get(`${ADMIN}/rooms?limit=1000`);
      const names = all.body.rooms.map((r: any) => r.name).filter((n: string | null) => n !== null);
      assert.deepEqual(names, ["Apple", "Banana split", "Cherry"]);
      assert.equal(all.body.rooms.at(-1).name, null, "unnamed rooms last");
    });

    it("orders, filters and pages with next_batch / prev_batch", async () => {
      const bySize = await admin.http.get(`${ADMIN}/rooms?order_by=joined_members&limit=1`);
      assert.equal(bySize.body.rooms[0].room_id, rooms.cherry);
      assert.equal(bySize.body.next_batch, 1);
      assert.equal(bySize.body.prev_batch, undefined);
      const reversed = await admin.http.get(`${ADMIN}/rooms?search_term=Banana&dir=b`);
      assert.equal(reversed.body.rooms[0].room_id, rooms.banana);
      const page = await admin.http.get(`${ADMIN}/rooms?from=2&limit=1&search_term=a`);
      assert.equal(page.body.offset, 2);
      assert.equal(page.body.prev_batch, 1);
      const byId = await admin.http.get(
        `${ADMIN}/rooms?search_term=${encodeURIComponent(rooms.apple!)}`,
      );
      assert.deepEqual(
        byId.body.rooms.map((r: any) => r.room_id),
        [rooms.apple],
      );
      const publicOnly = await admin.http.get(`${ADMIN}/rooms?public_rooms=true`);
      assert.deepEqual(
        publicOnly.body.rooms.map((r: any) => r.room_id),
        [rooms.apple],
      );
    });

    it("refuses bad parameters with 400 M_INVALID_PARAM", async () => {
      for (const query of ["order_by=size_desc", "dir=x", "from=-1", "limit=x", "search_term="]) {
        const res = await admin.http.get(`${ADMIN}/rooms?${query}`);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.errcode, "M_INVALID_PARAM", query);
      }
      assert.equal((await alice.http.get(`${ADMIN}/rooms`)).status, 403);
    });

    it("returns one room's details, 404 M_NOT_FOUND when unknown", async () => {
      const res = await admin.http.get(`${ADMIN}/rooms/${encodeURIComponent(rooms.banana!)}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.room_id, rooms.banana);
      assert.equal(res.body.topic, "desserts");
      assert.equal(res.body.avatar, local("BananaFace"));
      assert.equal(res.body.encryption, "m.megolm.v1.aes-sha2");
      assert.equal(res.body.joined_local_devices, 1);
      assert.equal(res.body.forgotten, false);
      const cherry = await admin.http.get(`${ADMIN}/rooms/${encodeURIComponent(rooms.cherry!)}`);
      assert.equal(cherry.body.joined_members, 3);
      assert.equal(cherry.body.join_rules, "public");
      const unknown = await admin.http.get(
        `${ADMIN}/rooms/${encodeURIComponent("!nope:test.local")}`,
      );
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, "M_NOT_FOUND");
    });
  });

  describe("with matrix-js-sdk", () => {
    it("lists an image sent by the SDK, and nothing from an encrypted room", async () => {
      await server.user("sdkuser", { password: "sdk-password" });
      const login = await createClient({ baseUrl: server.baseUrl, logger: quiet }).loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: "sdkuser" },
        password: "sdk-password",
      });
      const client = createClient({
        baseUrl: server.baseUrl,
        accessToken: login.access_token,
        userId: login.user_id,
        deviceId: login.device_id,
        logger: quiet,
      });
      const plain = await client.createRoom({ name: "SDK room" });
      const png = await sharp({
        create: { width: 64, height: 48, channels: 3, background: { r: 9, g: 99, b: 199 } },
      })
        .png()
        .toBuffer();
      const { content_uri: uploaded } = await client.uploadContent(png, {
        name: "cat.png",
        type: "image/png",
      });
      await client.sendEvent(
        plain.room_id,
        "m.room.message" as any,
        {
          msgtype: "m.image",
          body: "cat.png",
          url: uploaded,
          info: { mimetype: "image/png" },
        } as any,
      );
      assert.deepEqual((await media(admin, plain.room_id)).body, { local: [uploaded], remote: [] });

      const encrypted = await client.createRoom({
        initial_state: [
          {
            type: "m.room.encryption",
            state_key: "",
            content: { algorithm: "m.megolm.v1.aes-sha2" },
          },
        ],
      });
      await client.sendEvent(
        encrypted.room_id,
        "m.room.encrypted" as any,
        {
          algorithm: "m.megolm.v1.aes-sha2",
          ciphertext: "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg",
          device_id: login.device_id,
          sender_key: "SenderKeyBase64",
          session_id: "SessionIdBase64",
        } as any,
      );
      assert.deepEqual((await media(admin, encrypted.room_id)).body, { local: [], remote: [] });
      client.stopClient();
    });
  });
});
