import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { extractMediaReferences } from "../src/domain/media-reference-extractor.js";
import { formatMxcUri, parseMxcUri } from "../src/identifiers/mxc-uri.js";
import { createLogger } from "../src/logging/logger.js";
import { parseCreateRoomRequest } from "../src/rooms/create-room-request.js";
import type { LocalMediaModeration } from "../src/rooms/local-media-moderation.js";
import type { RedactionPolicySetting } from "../src/rooms/media-redaction-policy.js";
import { redactContent } from "../src/rooms/redaction-algorithm.js";
import { createRoomServices, type RoomServices } from "../src/rooms/room-services.js";
import { forEachEngine } from "./support/databases.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

const HOST = "test.local";
const mxc = (id: string, host = HOST) => formatMxcUri(host, id);

describe("parseMxcUri", () => {
  it("accepts mxc://<server>/<id> with valid server names and ids", () => {
    assert.deepEqual(parseMxcUri("mxc://test.local/abc_DEF-123"), {
      origin: "test.local",
      mediaId: "abc_DEF-123",
    });
    assert.deepEqual(parseMxcUri("mxc://[::1]:8448/x"), { origin: "[::1]:8448", mediaId: "x" });
    assert.deepEqual(parseMxcUri("mxc://1.2.3.4/x")?.origin, "1.2.3.4");
  });

  it("refuses everything else", () => {
    for (const value of [
      undefined,
      null,
      42,
      { url: "mxc://a/b" },
      "",
      "mxc://",
      "mxc:///id",
      "mxc://server/",
      "mxc://server",
      "mxc://server/a/b",
      "mxc://server/id?x=1",
      "mxc://server/id#frag",
      "mxc://server/id ",
      " mxc://server/id",
      "MXC://server/id",
      "https://server/id",
      "mxc://ser ver/id",
      "mxc://../id",
      "mxc://./id",
      "mxc://server:99999999/id",
      "mxc://server/../../etc",
      "mxc://server/%2e%2e",
      `mxc://server/${"a".repeat(256)}`,
    ]) {
      assert.equal(parseMxcUri(value), undefined, JSON.stringify(value));
    }
  });
});

describe("extractMediaReferences", () => {
  const refs = (type: string, stateKey: string | undefined, content: unknown) =>
    extractMediaReferences(type, stateKey, content).map(
      (r) => `${r.kind} ${r.origin}/${r.mediaId}`,
    );

  it("finds url, thumbnail_url, file and thumbnail_file urls, main url first", () => {
    const content = {
      url: mxc("Main"),
      file: { url: mxc("File") },
      info: { thumbnail_url: mxc("Thumb"), thumbnail_file: { url: mxc("ThumbFile") } },
    };
    assert.deepEqual(refs("m.room.message", undefined, content), [
      "url test.local/Main",
      "url test.local/File",
      "thumbnail test.local/Thumb",
      "thumbnail test.local/ThumbFile",
    ]);
  });

  it("finds a thumbnail without a url, stickers, room and member avatars", () => {
    assert.deepEqual(refs("m.room.message", undefined, { info: { thumbnail_url: mxc("T") } }), [
      "thumbnail test.local/T",
    ]);
    assert.deepEqual(
      refs("m.sticker", undefined, { url: mxc("S"), info: { thumbnail_url: mxc("ST") } }),
      ["url test.local/S", "thumbnail test.local/ST"],
    );
    assert.deepEqual(refs("m.room.avatar", "", { url: mxc("A") }), ["room_avatar test.local/A"]);
    assert.deepEqual(
      refs("m.room.member", "@u:test.local", { avatar_url: mxc("M"), url: mxc("X") }),
      ["member_avatar test.local/M"],
    );
  });

  it("finds nothing in encrypted events, non-objects or malformed URIs", () => {
    assert.deepEqual(refs("m.room.encrypted", undefined, { url: mxc("E") }), []);
    assert.deepEqual(refs("m.room.message", undefined, "mxc://test.local/x"), []);
    assert.deepEqual(refs("m.room.message", undefined, [mxc("x")]), []);
    assert.deepEqual(refs("m.room.message", undefined, { url: "https://x/y", info: "no" }), []);
  });

  it("lists a repeated reference once", () => {
    assert.deepEqual(
      refs("m.room.message", undefined, { url: mxc("D"), file: { url: mxc("D") } }),
      ["url test.local/D"],
    );
  });
});

describe("redactContent (room versions 9/10)", () => {
  it("keeps only the allowed keys per event type", () => {
    assert.deepEqual(redactContent("m.room.message", { body: "x", url: mxc("a") }), {});
    assert.deepEqual(
      redactContent("m.room.member", {
        membership: "join",
        avatar_url: mxc("a"),
        displayname: "d",
        join_authorised_via_users_server: "@a:b",
      }),
      { membership: "join", join_authorised_via_users_server: "@a:b" },
    );
    assert.deepEqual(redactContent("m.room.create", { creator: "@a:b", "m.federate": false }), {
      creator: "@a:b",
    });
    assert.deepEqual(redactContent("m.room.join_rules", { join_rule: "public", x: 1 }), {
      join_rule: "public",
    });
    assert.deepEqual(redactContent("m.room.avatar", { url: mxc("a") }), {});
    assert.deepEqual(
      redactContent("m.room.power_levels", { users: {}, ban: 50, invite: 0, notifications: {} }),
      { users: {}, ban: 50 },
    );
  });
});

/** Records every call the redaction policy makes. */
class RecordingModeration implements LocalMediaModeration {
  readonly calls: string[] = [];
  failing = false;
  /** Every media here was uploaded by alice, the sender of the tests' events. */
  async uploaderOf(_mediaId: string) {
    return "@alice:test.local";
  }
  async quarantineLocalMedia(mediaId: string, by: "system") {
    this.calls.push(`quarantine ${mediaId} ${by}`);
    if (this.failing) throw new Error("media service down");
  }
  async deleteLocalMedia(mediaId: string) {
    this.calls.push(`delete ${mediaId}`);
    if (this.failing) throw new Error("media service down");
  }
}

forEachEngine("media-reference index", (engine) => {
  let server: TestServer;
  let services: RoomServices;
  const alice = { userId: "@alice:test.local", tokenHash: "alice-token", admin: false };
  let n = 0;
  const txn = () => `t${++n}`;
  const newRoom = (body: object = {}) =>
    services.rooms.createRoom(
      alice.userId,
      parseCreateRoomRequest(body as Record<string, unknown>),
    );
  const kinds = async (id: string, host = HOST) =>
    (await services.references.usages(host, id)).map((u) => u.kind).sort();

  before(async () => {
    server = await startTestServer(engine);
    await server.user("alice");
    services = createRoomServices({
      config: { server_name: HOST, media_redaction_policy: "none" },
      database: server.app.database,
      accounts: server.app.accounts,
      logger: createLogger("silent"),
    });
  });
  after(() => server.stop());

  it("records each reference kind with its room, event and stream ordering", async () => {
    const roomId = await newRoom();
    const send = (content: Record<string, unknown>, type = "m.room.message") =>
      services.rooms.send(alice, roomId, type, txn(), content);
    const msg = await send({
      msgtype: "m.image",
      url: mxc("K-url"),
      info: { thumbnail_url: mxc("K-thumb") },
    });
    await send({ msgtype: "m.image", info: { thumbnail_url: mxc("K-thumbonly") } });
    await send(
      { url: mxc("K-sticker"), info: { thumbnail_url: mxc("K-stickerthumb") } },
      "m.sticker",
    );
    await services.rooms.setState(alice, roomId, "m.room.avatar", "", { url: mxc("K-roomavatar") });
    await send({ url: mxc("K-remote", "remote.example") });
    assert.deepEqual(await kinds("K-url"), ["url"]);
    assert.deepEqual(await kinds("K-thumb"), ["thumbnail"]);
    assert.deepEqual(await kinds("K-thumbonly"), ["thumbnail"]);
    assert.deepEqual(await kinds("K-sticker"), ["url"]);
    assert.deepEqual(await kinds("K-stickerthumb"), ["thumbnail"]);
    assert.deepEqual(await kinds("K-roomavatar"), ["room_avatar"]);
    assert.deepEqual(await kinds("K-remote", "remote.example"), ["url"]);
    const [usage] = await services.references.usages(HOST, "K-url");
    assert.equal(usage?.roomId, roomId);
    assert.equal(usage?.eventId, msg);
    assert.ok(Number.isInteger(usage?.streamOrdering));
  });

  it("records profile avatars from both paths and member avatars copied from them", async () => {
    const bob = await server.user("bob");
    await services.profiles.set(bob.userId, bob.userId, "avatar_url", mxc("K-bobface"));
    assert.deepEqual(await kinds("K-bobface"), ["profile_avatar"]);
    const roomId = await services.rooms.createRoom(bob.userId, parseCreateRoomRequest({}));
    assert.deepEqual(await kinds("K-bobface"), ["member_avatar", "profile_avatar"]);
    const [member] = (await services.references.usages(HOST, "K-bobface")).filter(
      (u) => u.kind === "member_avatar",
    );
    assert.equal(member?.roomId, roomId);
    const admin = await server.user("admin", { admin: true });
    const put = await admin.http.put(`/_synapse/admin/v2/users/${bob.userId}`, {
      avatar_url: mxc("K-adminset"),
    });
    assert.equal(put.status, 200);
    assert.deepEqual(await kinds("K-adminset"), ["profile_avatar"]);
    assert.deepEqual(await kinds("K-bobface"), ["member_avatar"], "old profile avatar replaced");
    await server.app.accounts.setAvatarUrl(bob.userId, null);
    assert.deepEqual(await kinds("K-adminset"), []);
  });

  it("records nothing for encrypted events", async () => {
    const roomId = await newRoom();
    await services.rooms.send(alice, roomId, "m.room.encrypted", txn(), {
      algorithm: "m.megolm.v1.aes-sha2",
      ciphertext: "AwgAEn...",
      url: mxc("K-encrypted"),
    });
    assert.deepEqual(await kinds("K-encrypted"), []);
    assert.deepEqual(await services.admin.roomMedia(roomId), { local: [], remote: [] });
  });

  it("drops a redacted event's references", async () => {
    const roomId = await newRoom();
    const event = await services.rooms.send(alice, roomId, "m.room.message", txn(), {
      url: mxc("K-gone"),
      info: { thumbnail_url: mxc("K-gonethumb") },
    });
    await services.rooms.redact(alice, roomId, event, txn());
    assert.deepEqual(await kinds("K-gone"), []);
    assert.deepEqual(await kinds("K-gonethumb"), []);
    assert.equal(await services.references.isReferenced(HOST, "K-gone"), false);
  });

  it("tells which media are profile, member or current room avatars (keep_profiles)", async () => {
    const carol = await server.user("carol");
    await server.app.accounts.setAvatarUrl(carol.userId, mxc("P-profile"));
    const roomId = await newRoom();
    await services.rooms.setState(alice, roomId, "m.room.member", alice.userId, {
      membership: "join",
      avatar_url: mxc("P-member"),
    });
    await services.rooms.setState(alice, roomId, "m.room.avatar", "", { url: mxc("P-oldroom") });
    await services.rooms.setState(alice, roomId, "m.room.avatar", "", { url: mxc("P-room") });
    await services.rooms.send(alice, roomId, "m.room.message", txn(), { url: mxc("P-message") });
    const ids = ["P-profile", "P-member", "P-oldroom", "P-room", "P-message", "P-unknown"];
    const kept = await services.references.avatarReferenced(HOST, ids);
    assert.deepEqual([...kept].sort(), ["P-member", "P-profile", "P-room"]);
    assert.deepEqual(await services.references.avatarReferenced("other.example", ids), new Set());
  });

  describe("media_redaction_policy", () => {
    for (const setting of ["none", "quarantine", "delete"] as const) {
      describe(setting, () => {
        const moderation = new RecordingModeration();
        let policyServices: RoomServices;
        const expected = (ids: string[]) =>
          setting === "none"
            ? []
            : ids.map((id) =>
                setting === "quarantine" ? `quarantine ${id} system` : `delete ${id}`,
              );
        const id = (name: string) => `${setting}-${name}`;
        const sendIn = (roomId: string, content: Record<string, unknown>) =>
          policyServices.rooms.send(alice, roomId, "m.room.message", txn(), content);
        const redact = (roomId: string, eventId: string) =>
          policyServices.rooms.redact(alice, roomId, eventId, txn());

        before(() => {
          policyServices = createRoomServices({
            config: {
              server_name: HOST,
              media_redaction_policy: setting as RedactionPolicySetting,
            },
            database: server.app.database,
            accounts: server.app.accounts,
            logger: createLogger("silent"),
            moderation,
          });
        });

        it("acts on local media once its last reference is redacted", async () => {
          moderation.calls.length = 0;
          const roomId = await newRoom();
          const event = await sendIn(roomId, {
            url: mxc(id("only")),
            info: { thumbnail_url: mxc(id("thumb")) },
          });
          await redact(roomId, event);
          assert.deepEqual(moderation.calls, expected([id("only"), id("thumb")]));
        });

        it("leaves media alone while another room, event or profile references it", async () => {
          moderation.calls.length = 0;
          const first = await newRoom();
          const second = await newRoom();
          const a = await sendIn(first, { url: mxc(id("shared")) });
          const b = await sendIn(second, { url: mxc(id("shared")) });
          await redact(first, a);
          assert.deepEqual(moderation.calls, []);
          await server.app.accounts.setAvatarUrl(alice.userId, mxc(id("face")));
          const c = await sendIn(first, { url: mxc(id("face")) });
          await redact(first, c);
          assert.deepEqual(moderation.calls, []);
          await redact(second, b);
          assert.deepEqual(moderation.calls, expected([id("shared")]));
          await server.app.accounts.setAvatarUrl(alice.userId, null);
        });

        it("never acts on remote media", async () => {
          moderation.calls.length = 0;
          const roomId = await newRoom();
          const event = await sendIn(roomId, { url: mxc(id("remote"), "remote.example") });
          await redact(roomId, event);
          assert.deepEqual(moderation.calls, []);
        });

        it("never fails the redaction when the media service throws", async () => {
          moderation.calls.length = 0;
          moderation.failing = true;
          try {
            const roomId = await newRoom();
            const event = await sendIn(roomId, { url: mxc(id("fails")) });
            const redaction = await redact(roomId, event);
            assert.match(redaction, /^\$/);
            assert.deepEqual(moderation.calls, expected([id("fails")]));
          } finally {
            moderation.failing = false;
          }
        });
      });
    }
  });
});
