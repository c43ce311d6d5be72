/** `media_redaction_policy` end to end: real uploads, rooms, redactions and the media services. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { allKeys, download, uploadBytes } from "./support/media.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const V1 = "/_matrix/client/v1/media/download/test.local";

async function post(user: TestUser, roomId: string, mediaId: string, txn: string): Promise<string> {
  const res = await user.http.put(
    `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`,
    { msgtype: "m.image", body: "x", url: `mxc://test.local/${mediaId}` },
  );
  assert.equal(res.status, 200);
  return res.body.event_id;
}

async function redact(user: TestUser, roomId: string, eventId: string, txn: string) {
  const res = await user.http.put(
    `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/redact/${encodeURIComponent(eventId)}/${txn}`,
    { reason: "test" },
  );
  assert.equal(res.status, 200);
}

/** Lets the policy, which runs after the redaction commits, finish. */
const settle = () => new Promise((r) => setTimeout(r, 300));

for (const policy of ["none", "quarantine", "delete"] as const) {
  forEachEngine(`media_redaction_policy: ${policy}`, (engine) => {
    let server: TestServer;
    let alice: TestUser;
    let rooms: string[];
    before(async () => {
      server = await startTestServer(engine, { media_redaction_policy: policy });
      alice = await server.user("alice");
      rooms = [];
      for (const name of ["a", "b"]) {
        rooms.push((await alice.http.post("/_matrix/client/v3/createRoom", { name })).body.room_id);
      }
    });
    after(() => server.stop());

    it("acts only when a redaction removes the last reference", async () => {
      const id = await uploadBytes(alice.http, randomBytes(100));
      const first = await post(alice, rooms[0]!, id, "p1");
      const second = await post(alice, rooms[1]!, id, "p2");
      await redact(alice, rooms[0]!, first, "r1");
      await settle();
      assert.equal(
        (await download(server.baseUrl, `${V1}/${id}`, { token: alice.token })).status,
        200,
      );

      await redact(alice, rooms[1]!, second, "r2");
      await settle();
      const row = await server.app.database.db
        .selectFrom("local_media_repository")
        .select("quarantined_by")
        .where("media_id", "=", id)
        .executeTakeFirst();
      const got = await download(server.baseUrl, `${V1}/${id}`, { token: alice.token });
      const stored = (await allKeys(server.app.store)).some((k) => k.includes(id.slice(4)));
      if (policy === "none") {
        assert.equal(got.status, 200);
        assert.equal(row?.quarantined_by, null);
      } else if (policy === "quarantine") {
        assert.equal(got.status, 404);
        assert.equal(row?.quarantined_by, "system");
        assert.ok(stored, "quarantine keeps the bytes");
        const feed = await server.app.database.db
          .selectFrom("quarantined_media_changes")
          .selectAll()
          .where("media_id", "=", id)
          .execute();
        assert.equal(feed.length, 1);
      } else {
        assert.equal(got.status, 404);
        assert.equal(row, undefined);
        assert.equal(stored, false, "bytes removed");
      }
    });
  });
}
