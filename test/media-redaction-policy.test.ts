/**
 * `media_redaction_policy` with hostile users, end to end: real uploads,
 * rooms, redactions and the media services, on SQLite and PostgreSQL. The
 * rule (docs/rooms.md "Redaction policy"): a redaction acts only on local
 * media the redacting user uploaded and sent themselves (or any local media
 * when a server admin redacts), and never while anything else references it.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { createLogger } from "../src/logging/logger.js";
import type { LocalMediaModeration } from "../src/rooms/local-media-moderation.js";
import { MediaRedactionPolicy } from "../src/rooms/media-redaction-policy.js";
import { forEachEngine } from "./support/databases.js";
import { allKeys, uploadBytes } from "./support/media.js";
import { createRoom, join, redact, send } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const mxc = (mediaId: string, host = "test.local") => `mxc://${host}/${mediaId}`;
const image = (mediaId: string, host?: string) => ({
  msgtype: "m.image",
  body: "x.png",
  url: mxc(mediaId, host),
});

type Fate = "intact" | "quarantined" | "deleted";

for (const policy of ["none", "quarantine", "delete"] as const) {
  forEachEngine(`media_redaction_policy: ${policy}, hostile users`, (engine) => {
    let server: TestServer;
    let alice: TestUser;
    let bob: TestUser;
    let admin: TestUser;
    /** What a qualifying redaction does under this policy. */
    const acted: Fate =
      policy === "none" ? "intact" : policy === "quarantine" ? "quarantined" : "deleted";

    before(async () => {
      server = await startTestServer(engine, { media_redaction_policy: policy });
      alice = await server.user("alice");
      bob = await server.user("bob");
      admin = await server.user("admin", { admin: true });
    });
    after(() => server.stop());

    const upload = (user: TestUser) => uploadBytes(user.http, randomBytes(64));

    /** The media's state, from its row (and, once deleted, its bytes). */
    async function fate(mediaId: string): Promise<Fate> {
      const row = await server.app.database.db
        .selectFrom("local_media_repository")
        .select("quarantined_by")
        .where("media_id", "=", mediaId)
        .executeTakeFirst();
      if (!row) {
        const keys = await allKeys(server.app.store);
        assert.ok(!keys.some((k) => k.includes(mediaId.slice(4))), "deleted media keeps no bytes");
        return "deleted";
      }
      return row.quarantined_by === null ? "intact" : "quarantined";
    }

    /** A public room owned (and moderated) by `owner`, joined by `members`. */
    async function publicRoom(owner: TestUser, ...members: TestUser[]) {
      const roomId = await createRoom(owner, { preset: "public_chat" });
      for (const member of members) await join(member, roomId);
      return roomId;
    }

    it("acts when the uploader redacts their own sole reference", async () => {
      const id = await upload(alice);
      const roomId = await createRoom(alice);
      await redact(alice, roomId, await send(alice, roomId, image(id)));
      assert.equal(await fate(id), acted);
    });

    it("does nothing when Bob posts Alice's media in his own room and redacts it", async () => {
      const id = await upload(alice);
      const roomId = await createRoom(bob);
      await redact(bob, roomId, await send(bob, roomId, image(id)));
      assert.equal(await fate(id), "intact");
    });

    it("does nothing when a room moderator redacts the uploader's event", async () => {
      const id = await upload(alice);
      const roomId = await publicRoom(bob, alice);
      const event = await send(alice, roomId, image(id));
      await redact(bob, roomId, event);
      assert.equal(await fate(id), "intact");
    });

    it("does nothing when the uploader, as moderator, redacts someone else's event", async () => {
      const id = await upload(alice);
      const roomId = await publicRoom(alice, bob);
      await redact(alice, roomId, await send(bob, roomId, image(id)));
      assert.equal(await fate(id), "intact");
    });

    it("leaves media alone while another live event references it", async () => {
      const id = await upload(alice);
      const first = await createRoom(alice);
      const second = await createRoom(alice);
      const a = await send(alice, first, image(id));
      const b = await send(alice, second, image(id));
      await redact(alice, first, a);
      assert.equal(await fate(id), "intact", "the other room still shows it");
      await redact(alice, second, b);
      assert.equal(await fate(id), acted);
    });

    it("leaves media alone while another user's event references it, and Bob cannot finish it off", async () => {
      const id = await upload(alice);
      const aliceRoom = await createRoom(alice);
      const bobRoom = await createRoom(bob);
      const mine = await send(alice, aliceRoom, image(id));
      const his = await send(bob, bobRoom, image(id));
      await redact(alice, aliceRoom, mine);
      assert.equal(await fate(id), "intact", "Bob's event still references it");
      await redact(bob, bobRoom, his);
      assert.equal(await fate(id), "intact", "Bob's redaction never acts on Alice's media");
    });

    it("leaves media alone while it is the uploader's profile avatar", async () => {
      const id = await upload(alice);
      await server.app.accounts.setAvatarUrl(alice.userId, mxc(id));
      try {
        const roomId = await createRoom(alice);
        await redact(alice, roomId, await send(alice, roomId, image(id)));
        assert.equal(await fate(id), "intact");
      } finally {
        await server.app.accounts.setAvatarUrl(alice.userId, null);
      }
    });

    it("acts when a server admin redacts the last reference, whoever uploaded it", async () => {
      const id = await upload(alice);
      const roomId = await publicRoom(admin, bob);
      await redact(admin, roomId, await send(bob, roomId, image(id)));
      assert.equal(await fate(id), acted);
    });

    it("does nothing when a server admin redacts a reference while another is live", async () => {
      const id = await upload(alice);
      const aliceRoom = await createRoom(alice);
      await send(alice, aliceRoom, image(id));
      const roomId = await publicRoom(admin, bob);
      await redact(admin, roomId, await send(bob, roomId, image(id)));
      assert.equal(await fate(id), "intact");
    });

    it("never touches remote media, whoever redacts", async () => {
      const remoteId = `remote${randomBytes(6).toString("hex")}`;
      const roomId = await publicRoom(admin, alice);
      await redact(alice, roomId, await send(alice, roomId, image(remoteId, "remote.example")));
      await redact(admin, roomId, await send(alice, roomId, image(remoteId, "remote.example")));
      const db = server.app.database.db;
      const cached = await db
        .selectFrom("remote_media_cache")
        .select("media_id")
        .where("media_id", "=", remoteId)
        .execute();
      const feed = await db
        .selectFrom("quarantined_media_changes")
        .select("media_id")
        .where("media_id", "=", remoteId)
        .execute();
      assert.deepEqual([cached, feed], [[], []]);
    });
  });
}

/** The policy service alone, as an application-service intake would call it. */
describe("MediaRedactionPolicy service", () => {
  const uploads = new Map([
    ["mine", "@alice:test.local"],
    ["hers", "@alice:test.local"],
  ]);
  const calls: string[] = [];
  const moderation: LocalMediaModeration = {
    uploaderOf: async (id) => uploads.get(id),
    quarantineLocalMedia: async (id) => {
      calls.push(id);
    },
    deleteLocalMedia: async () => assert.fail("quarantine policy never deletes"),
  };
  const referenced = new Set(["shared"]);
  const policy = new MediaRedactionPolicy(
    "quarantine",
    "test.local",
    { isReferenced: async (_origin, id) => referenced.has(id) },
    moderation,
    createLogger("silent"),
  );
  const event = (sender: string, ...urls: string[]) => ({
    type: "m.room.message",
    stateKey: null,
    sender,
    content: { url: urls[0], info: { thumbnail_url: urls[1] } },
  });

  before(() => {
    calls.length = 0;
  });

  it("decides per media: remote, referenced, not the uploader, acted", async () => {
    const decisions = await policy.apply({
      redactedEvent: event("@alice:test.local", mxc("mine"), mxc("x", "remote.example")),
      redactingSender: "@alice:test.local",
      redactingSenderIsAdmin: false,
    });
    assert.deepEqual(Object.fromEntries(decisions), {
      "test.local/mine": "acted",
      "remote.example/x": "remote",
    });
    const bobs = await policy.apply({
      redactedEvent: event("@bob:test.local", mxc("hers"), mxc("shared")),
      redactingSender: "@bob:test.local",
      redactingSenderIsAdmin: false,
    });
    assert.deepEqual(Object.fromEntries(bobs), {
      "test.local/hers": "not_uploader",
      "test.local/shared": "referenced",
    });
    const admins = await policy.apply({
      redactedEvent: event("@bob:test.local", mxc("hers"), mxc("shared")),
      redactingSender: "@root:test.local",
      redactingSenderIsAdmin: true,
    });
    assert.deepEqual(Object.fromEntries(admins), {
      "test.local/hers": "acted",
      "test.local/shared": "referenced",
    });
    assert.deepEqual(calls, ["mine", "hers"]);
  });
});
