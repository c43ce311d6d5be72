import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isValidRoomId, newEventId, newRoomId } from "../src/identifiers/room-id.js";
import { forEachEngine } from "./support/databases.js";
import {
  CLIENT,
  createRoom,
  join,
  redact,
  roomPath,
  send,
  setState,
  txn,
} from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const UNKNOWN_ROOM = "!doesnotexist:test.local";

describe("room and event identifiers", () => {
  it("makes fresh ids of the right shape", () => {
    assert.match(newRoomId("example.org:8448"), /^![A-Za-z]{18}:example\.org:8448$/);
    assert.match(newEventId(), /^\$[A-Za-z0-9_-]{32}$/);
    assert.notEqual(newEventId(), newEventId());
    assert.ok(isValidRoomId(newRoomId("test.local")));
    // Room version 12: the create event's reference hash, no server name.
    assert.ok(isValidRoomId("!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"));
  });

  it("refuses malformed room ids", () => {
    for (const id of [
      "",
      "!",
      "!:x",
      "!abc",
      "abc:test.local",
      "#a:test.local",
      "!a:",
      "!a:bad host",
      `!${"a".repeat(255)}:x`,
      // Version 12 shapes with the wrong length or alphabet.
      "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogL",
      "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLMx",
      "!31hneApxJ+1o/63DmFrpeqnkFfWppnzWso1JvH3ogLM",
    ]) {
      assert.equal(isValidRoomId(id), false, id);
    }
  });
});

forEachEngine("rooms client API", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let carol: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    alice = await server.user("alice");
    bob = await server.user("bob");
    carol = await server.user("carol");
  });
  after(() => server.stop());

  const state = (user: TestUser, roomId: string, type: string, key = "") =>
    user.http.get(`${roomPath(roomId)}/state/${type}/${encodeURIComponent(key)}`);

  describe("POST /createRoom", () => {
    it("creates a private room with the creator joined and the usual state", async () => {
      const res = await alice.http.post(`${CLIENT}/createRoom`, { name: "Lab", topic: "t" });
      assert.equal(res.status, 200);
      const roomId = res.body.room_id;
      assert.match(roomId, /^![A-Za-z]{18}:test\.local$/);
      const create = await state(alice, roomId, "m.room.create");
      assert.deepEqual(create.body, { creator: alice.userId, room_version: "10" });
      const member = await state(alice, roomId, "m.room.member", alice.userId);
      assert.deepEqual(member.body, { membership: "join", displayname: "alice" });
      const levels = await state(alice, roomId, "m.room.power_levels");
      assert.equal(levels.body.users[alice.userId], 100);
      assert.equal((await state(alice, roomId, "m.room.join_rules")).body.join_rule, "invite");
      const history = await state(alice, roomId, "m.room.history_visibility");
      assert.equal(history.body.history_visibility, "shared");
      assert.deepEqual((await state(alice, roomId, "m.room.name")).body, { name: "Lab" });
      assert.deepEqual((await state(alice, roomId, "m.room.topic")).body, { topic: "t" });
      const joined = await alice.http.get(`${CLIENT}/joined_rooms`);
      assert.ok(joined.body.joined_rooms.includes(roomId));
    });

    it("makes public_chat (or visibility public) rooms joinable by anyone, on r0 too", async () => {
      for (const body of [{ preset: "public_chat" }, { visibility: "public" }]) {
        const res = await alice.http.post("/_matrix/client/r0/createRoom", body);
        assert.equal(res.status, 200);
        const rules = await state(alice, res.body.room_id, "m.room.join_rules");
        assert.equal(rules.body.join_rule, "public");
      }
    });

    it("applies initial_state, including m.room.encryption and m.room.avatar", async () => {
      const roomId = await createRoom(alice, {
        initial_state: [
          { type: "m.room.encryption", content: { algorithm: "m.megolm.v1.aes-sha2" } },
          { type: "m.room.avatar", state_key: "", content: { url: "mxc://test.local/Avatar1" } },
          { type: "m.room.join_rules", content: { join_rule: "public" } },
        ],
      });
      const encryption = await state(alice, roomId, "m.room.encryption");
      assert.equal(encryption.body.algorithm, "m.megolm.v1.aes-sha2");
      const avatar = await state(alice, roomId, "m.room.avatar");
      assert.equal(avatar.body.url, "mxc://test.local/Avatar1");
      assert.equal((await state(alice, roomId, "m.room.join_rules")).body.join_rule, "public");
    });

    it("invites the listed users", async () => {
      const roomId = await createRoom(alice, { invite: [bob.userId] });
      const member = await state(alice, roomId, "m.room.member", bob.userId);
      assert.equal(member.body.membership, "invite");
      await join(bob, roomId);
    });

    it("refuses bad requests with the spec's errors", async () => {
      const cases: Array<[unknown, number, string]> = [
        [{ preset: "party" }, 400, "M_BAD_JSON"],
        [{ visibility: "everyone" }, 400, "M_BAD_JSON"],
        [{ name: 5 }, 400, "M_BAD_JSON"],
        [{ initial_state: [{ type: "m.room.name" }] }, 400, "M_BAD_JSON"],
        [{ invite: ["not-a-user"] }, 400, "M_INVALID_PARAM"],
        [{ invite: ["@nobody:test.local"] }, 404, "M_NOT_FOUND"],
        [{ room_version: "1" }, 400, "M_INVALID_PARAM"],
        [[], 400, "M_NOT_JSON"],
      ];
      for (const [body, status, errcode] of cases) {
        const res = await alice.http.post(`${CLIENT}/createRoom`, body);
        assert.equal(res.status, status, JSON.stringify(body));
        assert.equal(res.body.errcode, errcode, JSON.stringify(body));
      }
      const anonymous = await server.http.post(`${CLIENT}/createRoom`, {});
      assert.equal(anonymous.status, 401);
      assert.equal(anonymous.body.errcode, "M_MISSING_TOKEN");
    });
  });

  describe("membership", () => {
    it("lets anyone join a public room, and only invitees join a private one", async () => {
      const open = await createRoom(alice, { preset: "public_chat" });
      await join(bob, open);
      const closed = await createRoom(alice);
      const refused = await carol.http.post(`${roomPath(closed)}/join`, {});
      assert.equal(refused.status, 403);
      assert.equal(refused.body.errcode, "M_FORBIDDEN");
      const invite = await alice.http.post(`${roomPath(closed)}/invite`, { user_id: carol.userId });
      assert.equal(invite.status, 200);
      const byAlias = await carol.http.post(`${CLIENT}/join/${encodeURIComponent(closed)}`, {});
      assert.equal(byAlias.status, 200);
      assert.equal(byAlias.body.room_id, closed);
    });

    it("answers unknown rooms 404, malformed ids 400 and aliases 404", async () => {
      const unknown = await bob.http.post(`${roomPath(UNKNOWN_ROOM)}/join`, {});
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, "M_NOT_FOUND");
      const malformed = await bob.http.post(`${roomPath("no-sigil")}/join`, {});
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.errcode, "M_INVALID_PARAM");
      const alias = await bob.http.post(
        `${CLIENT}/join/${encodeURIComponent("#a:test.local")}`,
        {},
      );
      assert.equal(alias.status, 404);
      assert.equal(alias.body.errcode, "M_NOT_FOUND");
      const leave = await bob.http.post(`${roomPath(UNKNOWN_ROOM)}/leave`, {});
      assert.equal(leave.status, 404);
    });

    it("refuses invites from non-members, of members, and without user_id", async () => {
      const roomId = await createRoom(alice);
      const outsider = await bob.http.post(`${roomPath(roomId)}/invite`, { user_id: carol.userId });
      assert.equal(outsider.status, 403);
      assert.equal(outsider.body.errcode, "M_FORBIDDEN");
      const self = await alice.http.post(`${roomPath(roomId)}/invite`, { user_id: alice.userId });
      assert.equal(self.status, 403);
      const missing = await alice.http.post(`${roomPath(roomId)}/invite`, {});
      assert.equal(missing.status, 400);
      assert.equal(missing.body.errcode, "M_BAD_JSON");
      const unknown = await alice.http.post(`${roomPath(UNKNOWN_ROOM)}/invite`, {
        user_id: bob.userId,
      });
      assert.equal(unknown.status, 404);
    });

    it("stops a member who left from sending, and refuses leaving a room never joined", async () => {
      const roomId = await createRoom(alice, { preset: "public_chat" });
      await join(bob, roomId);
      await send(bob, roomId, { msgtype: "m.text", body: "hi" });
      assert.equal((await bob.http.post(`${roomPath(roomId)}/leave`, {})).status, 200);
      const after = await bob.http.put(`${roomPath(roomId)}/send/m.room.message/${txn()}`, {
        body: "x",
      });
      assert.equal(after.status, 403);
      assert.equal(after.body.errcode, "M_FORBIDDEN");
      const joined = await bob.http.get(`${CLIENT}/joined_rooms`);
      assert.ok(!joined.body.joined_rooms.includes(roomId));
      const never = await carol.http.post(`${roomPath(roomId)}/leave`, {});
      assert.equal(never.status, 403);
    });
  });

  describe("sending", () => {
    let roomId: string;
    before(async () => {
      roomId = await createRoom(alice, { preset: "public_chat" });
      await join(bob, roomId);
    });

    it("refuses non-members (403), unknown rooms (404) and oversized events (413)", async () => {
      const path = (room: string) => `${roomPath(room)}/send/m.room.message/${txn()}`;
      const outsider = await carol.http.put(path(roomId), { body: "x" });
      assert.equal(outsider.status, 403);
      assert.equal(outsider.body.errcode, "M_FORBIDDEN");
      const unknown = await alice.http.put(path(UNKNOWN_ROOM), { body: "x" });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, "M_NOT_FOUND");
      const big = await alice.http.put(path(roomId), { body: "x".repeat(70_000) });
      assert.equal(big.status, 413);
      assert.equal(big.body.errcode, "M_TOO_LARGE");
    });

    it("is idempotent per access token and transaction id", async () => {
      const id = txn();
      const path = `${roomPath(roomId)}/send/m.room.message/${id}`;
      const first = await alice.http.put(path, { body: "once" });
      const again = await alice.http.put(path, { body: "once" });
      assert.equal(first.status, 200);
      assert.equal(again.body.event_id, first.body.event_id);
      const otherToken = await server.app.accounts.issueToken(alice.userId, "OTHER");
      const other = await alice.http.withToken(otherToken.accessToken).put(path, { body: "once" });
      assert.equal(other.status, 200);
      assert.notEqual(other.body.event_id, first.body.event_id);
      const page = await alice.http.get(`${roomPath(roomId)}/messages?dir=b&limit=3`);
      const bodies = page.body.chunk.filter((e: any) => e.content.body === "once");
      assert.equal(bodies.length, 2);
    });

    it("stores one event for concurrent retries of the same transaction", async () => {
      const path = `${roomPath(roomId)}/send/m.room.message/${txn()}`;
      const answers = await Promise.all(
        Array.from({ length: 4 }, () => alice.http.put(path, { body: "racing" })),
      );
      assert.deepEqual(
        answers.map((a) => a.status),
        [200, 200, 200, 200],
      );
      assert.equal(new Set(answers.map((a) => a.body.event_id)).size, 1);
      const page = await alice.http.get(`${roomPath(roomId)}/messages?dir=b&limit=5`);
      assert.equal(page.body.chunk.filter((e: any) => e.content.body === "racing").length, 1);
    });

    it("checks power levels for state events", async () => {
      const denied = await bob.http.put(`${roomPath(roomId)}/state/m.room.name`, { name: "x" });
      assert.equal(denied.status, 403);
      assert.equal(denied.body.errcode, "M_FORBIDDEN");
      const others = await bob.http.put(
        `${roomPath(roomId)}/state/m.room.member/${encodeURIComponent(alice.userId)}`,
        { membership: "join" },
      );
      assert.equal(others.status, 403);
      const own = await setState(
        bob,
        roomId,
        "m.room.member",
        { membership: "join", displayname: "B" },
        bob.userId,
      );
      assert.match(own, /^\$/);
    });

    it("stores state with and without the trailing state key segment", async () => {
      const id = await setState(alice, roomId, "m.room.name", { name: "New" });
      const get = await alice.http.get(`${roomPath(roomId)}/state/m.room.name`);
      assert.deepEqual(get.body, { name: "New" });
      const put = await alice.http.put(`${roomPath(roomId)}/state/org.example.thing`, { a: 1 });
      assert.equal(put.status, 200);
      assert.notEqual(put.body.event_id, id);
      assert.deepEqual(
        (await alice.http.get(`${roomPath(roomId)}/state/org.example.thing/`)).body,
        {
          a: 1,
        },
      );
      const missing = await alice.http.get(`${roomPath(roomId)}/state/org.example.none`);
      assert.equal(missing.status, 404);
      assert.equal(missing.body.errcode, "M_NOT_FOUND");
      const outsider = await carol.http.get(`${roomPath(roomId)}/state/m.room.name`);
      assert.equal(outsider.status, 403);
      assert.equal(outsider.body.errcode, "M_FORBIDDEN");
    });
  });

  describe("reading", () => {
    let roomId: string;
    const ids: string[] = [];
    before(async () => {
      roomId = await createRoom(alice);
      for (let i = 0; i < 5; i++)
        ids.push(await send(alice, roomId, { msgtype: "m.text", body: `m${i}` }));
    });

    it("returns one event in client format, 404 for unknown events and non-members", async () => {
      const res = await alice.http.get(`${roomPath(roomId)}/event/${encodeURIComponent(ids[0]!)}`);
      assert.equal(res.status, 200);
      assert.equal(res.body.event_id, ids[0]);
      assert.equal(res.body.room_id, roomId);
      assert.equal(res.body.sender, alice.userId);
      assert.equal(res.body.type, "m.room.message");
      assert.deepEqual(res.body.content, { msgtype: "m.text", body: "m0" });
      assert.ok(Number.isInteger(res.body.origin_server_ts));
      const unknown = await alice.http.get(`${roomPath(roomId)}/event/%24nope`);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, "M_NOT_FOUND");
      const outsider = await bob.http.get(
        `${roomPath(roomId)}/event/${encodeURIComponent(ids[0]!)}`,
      );
      assert.equal(outsider.status, 404);
    });

    it("pages backwards and forwards with from/dir/limit and omits end at the end", async () => {
      const back = await alice.http.get(`${roomPath(roomId)}/messages?dir=b&limit=2`);
      assert.equal(back.status, 200);
      assert.deepEqual(
        back.body.chunk.map((e: any) => e.event_id),
        [ids[4], ids[3]],
      );
      assert.ok(back.body.start && back.body.end);
      const next = await alice.http.get(
        `${roomPath(roomId)}/messages?dir=b&limit=2&from=${back.body.end}`,
      );
      assert.deepEqual(
        next.body.chunk.map((e: any) => e.event_id),
        [ids[2], ids[1]],
      );
      const all = await alice.http.get(`${roomPath(roomId)}/messages?dir=b&limit=100`);
      assert.equal(all.body.end, undefined);
      assert.equal(all.body.chunk.at(-1).type, "m.room.create");
      const forward = await alice.http.get(
        `${roomPath(roomId)}/messages?dir=f&limit=2&from=${next.body.end}`,
      );
      assert.deepEqual(
        forward.body.chunk.map((e: any) => e.event_id),
        [ids[1], ids[2]],
      );
    });

    it("refuses bad parameters (400) and non-members (403)", async () => {
      for (const query of ["dir=up", "from=garbage", "limit=-1", "limit=x"]) {
        const res = await alice.http.get(`${roomPath(roomId)}/messages?${query}`);
        assert.equal(res.status, 400, query);
        assert.equal(res.body.errcode, "M_INVALID_PARAM", query);
      }
      const outsider = await bob.http.get(`${roomPath(roomId)}/messages?dir=b`);
      assert.equal(outsider.status, 403);
      assert.equal(outsider.body.errcode, "M_FORBIDDEN");
    });
  });

  describe("redaction", () => {
    let roomId: string;
    before(async () => {
      roomId = await createRoom(alice, { preset: "public_chat" });
      await join(bob, roomId);
    });

    it("censors the content and links the redaction", async () => {
      const target = await send(bob, roomId, { msgtype: "m.text", body: "oops" });
      const redaction = await redact(bob, roomId, target);
      const res = await alice.http.get(`${roomPath(roomId)}/event/${encodeURIComponent(target)}`);
      assert.deepEqual(res.body.content, {});
      assert.equal(res.body.unsigned.redacted_because.event_id, redaction);
      assert.equal(res.body.unsigned.redacted_because.redacts, target);
      assert.equal(res.body.unsigned.redacted_because.content.reason, "test");
    });

    it("keeps the keys the redaction algorithm keeps (membership)", async () => {
      const member = await setState(
        bob,
        roomId,
        "m.room.member",
        { membership: "join", displayname: "Bobby", avatar_url: "mxc://test.local/BobAvatar" },
        bob.userId,
      );
      await redact(alice, roomId, member);
      const after = await alice.http.get(
        `${roomPath(roomId)}/state/m.room.member/${encodeURIComponent(bob.userId)}`,
      );
      assert.deepEqual(after.body, { membership: "join" });
    });

    it("is idempotent per transaction id", async () => {
      const target = await send(alice, roomId, { body: "x" });
      const path = `${roomPath(roomId)}/redact/${encodeURIComponent(target)}/${txn()}`;
      const first = await alice.http.put(path, {});
      const again = await alice.http.put(path, {});
      assert.equal(first.status, 200);
      assert.equal(again.body.event_id, first.body.event_id);
    });

    it("needs the redact power level for others' events; 404 for unknown targets", async () => {
      const target = await send(alice, roomId, { body: "mine" });
      const denied = await bob.http.put(
        `${roomPath(roomId)}/redact/${encodeURIComponent(target)}/${txn()}`,
        {},
      );
      assert.equal(denied.status, 403);
      assert.equal(denied.body.errcode, "M_FORBIDDEN");
      const bobs = await send(bob, roomId, { body: "theirs" });
      await redact(alice, roomId, bobs);
      const unknown = await alice.http.put(`${roomPath(roomId)}/redact/%24nope/${txn()}`, {});
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.errcode, "M_NOT_FOUND");
    });
  });
});
