/**
 * The scripted homeserver's room model behaves as the tests that use it
 * assume (Synapse's admin room APIs, the client API an SDK needs, AS pushes).
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { AppServicePusher } from "../support/app-service-pusher.js";
import { ScriptedHomeserver } from "../support/scripted-homeserver.js";

describe("scripted homeserver: rooms", () => {
  let hs: ScriptedHomeserver;
  const get = async (path: string, token: string) => {
    const response = await fetch(`${hs.baseUrl}${path}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return { status: response.status, body: (await response.json()) as Record<string, any> };
  };
  const call = async (method: string, path: string, token: string | undefined, body: unknown) => {
    const response = await fetch(`${hs.baseUrl}${path}`, {
      method,
      headers: {
        "content-type": "application/json",
        ...(token !== undefined && { authorization: `Bearer ${token}` }),
      },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, any> };
  };
  before(async () => {
    hs = await ScriptedHomeserver.start({ serverName: "hs.test" });
    hs.addUser("alice", "pw");
    hs.addToken("admin-token", { userId: "@admin:hs.test", admin: true });
  });
  after(() => hs.stop());

  it("logs in, creates a room, sends idempotently and logs out", async () => {
    const login = await call("POST", "/_matrix/client/v3/login", undefined, {
      type: "m.login.password",
      identifier: { type: "m.id.user", user: "alice" },
      password: "pw",
    });
    assert.equal(login.status, 200);
    assert.equal(login.body.user_id, "@alice:hs.test");
    const token = login.body.access_token as string;
    const wrong = await call("POST", "/_matrix/client/v3/login", undefined, {
      type: "m.login.password",
      user: "alice",
      password: "nope",
    });
    assert.equal(wrong.status, 403);
    const room = await call("POST", "/_matrix/client/v3/createRoom", token, {});
    const roomId = room.body.room_id as string;
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`;
    const first = await call("PUT", path, token, { msgtype: "m.text", body: "hi" });
    const again = await call("PUT", path, token, { msgtype: "m.text", body: "hi" });
    assert.equal(first.body.event_id, again.body.event_id);
    assert.equal(hs.events(roomId).filter((e) => e.type === "m.room.message").length, 1);
    assert.equal((await call("POST", "/_matrix/client/v3/logout", token, {})).status, 200);
    assert.equal((await get("/_matrix/client/v3/account/whoami", token)).status, 401);
  });

  it("pages rooms and messages, and a saved end token later returns only newer events", async () => {
    const rooms = [1, 2, 3].map(() => hs.createRoom("@admin:hs.test"));
    const page = await get("/_synapse/admin/v1/rooms?limit=2", "admin-token");
    assert.equal(page.body.rooms.length, 2);
    assert.equal(page.body.next_batch, 2);
    const rest = await get(`/_synapse/admin/v1/rooms?from=${page.body.next_batch}`, "admin-token");
    assert.equal(rest.body.next_batch, undefined);
    assert.equal(rest.body.total_rooms, page.body.total_rooms);

    const roomId = rooms[0]!;
    const base = `/_synapse/admin/v1/rooms/${encodeURIComponent(roomId)}/messages?dir=f`;
    const all = await get(`${base}&limit=100`, "admin-token");
    assert.equal(all.body.chunk.length, hs.events(roomId).length);
    const end = all.body.end as string;
    const empty = await get(`${base}&from=${end}`, "admin-token");
    assert.deepEqual(empty.body.chunk, []);
    assert.equal(empty.body.end, undefined);
    hs.sendEvent(roomId, "@admin:hs.test", "m.room.message", { msgtype: "m.text", body: "new" });
    const newer = await get(`${base}&from=${end}`, "admin-token");
    assert.deepEqual(
      newer.body.chunk.map((e: { content: { body: string } }) => e.content.body),
      ["new"],
    );
    assert.equal((await get(`${base}&from=bogus`, "admin-token")).status, 400);
    assert.equal((await get(`${base}`, "nobody")).status, 401);
  });

  it("lists room media local/remote, newest first, admins only, 404 for unknown rooms", async () => {
    hs.addToken("user-token", { userId: "@bob:hs.test" });
    const roomId = hs.createRoom("@admin:hs.test");
    hs.sendEvent(roomId, "@admin:hs.test", "m.room.message", {
      msgtype: "m.image",
      url: "mxc://hs.test/aaa",
      info: { thumbnail_url: "mxc://other.test/bbb" },
    });
    const second = hs.sendEvent(roomId, "@admin:hs.test", "m.room.message", {
      msgtype: "m.file",
      url: "mxc://hs.test/ccc",
    });
    hs.redact(roomId, "@admin:hs.test", second.event_id);
    const path = `/_synapse/admin/v1/room/${encodeURIComponent(roomId)}/media`;
    const media = await get(path, "admin-token");
    assert.deepEqual(media.body, {
      local: ["mxc://hs.test/ccc", "mxc://hs.test/aaa"],
      remote: ["mxc://other.test/bbb"],
    });
    assert.equal((await get(path, "user-token")).status, 403);
    const unknown = await get("/_synapse/admin/v1/room/!nope:hs.test/media", "admin-token");
    assert.equal(unknown.status, 404);
    const messages = await get(
      `/_synapse/admin/v1/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=2`,
      "admin-token",
    );
    assert.equal(messages.body.chunk[0].type, "m.room.redaction");
    assert.deepEqual(messages.body.chunk[1].content, {});
  });

  it("pushes events persisted after an AS is attached, in order", async () => {
    const received: { txnId: string; events: { event_id: string }[] }[] = [];
    const as = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (c: Buffer) => chunks.push(c));
      request.on("end", () => {
        const txnId = decodeURIComponent(request.url!.split("/").pop()!.split("?")[0]!);
        received.push({ txnId, events: JSON.parse(Buffer.concat(chunks).toString()).events });
        response.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    as.listen(0, "127.0.0.1");
    await new Promise((resolve) => as.once("listening", resolve));
    try {
      const roomId = hs.createRoom("@admin:hs.test");
      const url = `http://127.0.0.1:${(as.address() as AddressInfo).port}`;
      hs.attachAppService(new AppServicePusher({ url, hsToken: "hs" }));
      const sent = [1, 2, 3].map(
        (n) =>
          hs.sendEvent(roomId, "@admin:hs.test", "m.room.message", {
            msgtype: "m.text",
            body: `${n}`,
          }).event_id,
      );
      await hs.pushed();
      assert.deepEqual(
        received.flatMap((txn) => txn.events.map((e) => e.event_id)),
        sent,
      );
    } finally {
      as.close();
    }
  });
});
