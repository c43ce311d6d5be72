/**
 * The application-service intake end to end (attached-mode.md §3.2, §8.3
 * item 4): a pusher that behaves like Synapse pushes events into a real mxcd
 * on SQLite and PostgreSQL; the admin room media list shows what the index
 * recorded. Replays, redactions, encrypted events, media_redaction_policy,
 * hs_token checks and hostile transactions.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  generateRegistration,
  registrationYaml,
} from "../../src/homeserver/app-service-registration.js";
import { AppServicePusher, type PushedTransaction } from "../support/app-service-pusher.js";
import { forEachEngine } from "../support/databases.js";
import { quarantinedBy, uploadBytes } from "../support/media.js";
import {
  startTestServer,
  TEST_SERVER_NAME,
  type TestServer,
  type TestUser,
} from "../support/test-server.js";

const REMOTE = "remote.example";
const TXN = "/_matrix/app/v1/transactions";

let eventCounter = 0;
const newEventId = () => `$ev${++eventCounter}_${randomBytes(4).toString("hex")}`;
const newRoomId = () => `!room${randomBytes(6).toString("hex")}:hs.example`;

/** A client-format m.image event, as the homeserver pushes it. */
function imageEvent(roomId: string, url: string, sender = "@someone:hs.example") {
  return {
    event_id: newEventId(),
    room_id: roomId,
    sender,
    type: "m.room.message",
    origin_server_ts: Date.now(),
    content: { msgtype: "m.image", body: "cat.png", url },
  };
}

/** An m.room.redaction with the target where room v11+ puts it, or at the top level. */
function redactionEvent(
  roomId: string,
  target: string,
  sender: string,
  where: "content" | "top",
): object {
  return {
    event_id: newEventId(),
    room_id: roomId,
    sender,
    type: "m.room.redaction",
    origin_server_ts: Date.now(),
    ...(where === "top" ? { redacts: target, content: {} } : { content: { redacts: target } }),
  };
}

/** Writes a fresh registration file; returns its path and hs_token. */
function registrationFile(): { path: string; hsToken: string } {
  const registration = generateRegistration({ url: "http://127.0.0.1:1" });
  const path = join(mkdtempSync(join(tmpdir(), "mxcd-as-")), "registration.yaml");
  writeFileSync(path, registrationYaml(registration));
  return { path, hsToken: registration.hs_token };
}

forEachEngine("application-service transactions", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let hsToken: string;
  let pusher: AppServicePusher;
  let registrationPath: string;

  before(async () => {
    const registration = registrationFile();
    hsToken = registration.hsToken;
    registrationPath = registration.path;
    server = await startTestServer(engine, {
      app_service: { registration: registration.path },
      media_redaction_policy: "quarantine",
    });
    admin = await server.user("admin", { admin: true });
    pusher = new AppServicePusher({ url: server.baseUrl, hsToken, firstTxnId: 1000 });
  });
  after(() => server.stop());

  /** The admin room media list (`GET /_synapse/admin/v1/room/<id>/media`), all URIs. */
  async function roomMedia(roomId: string): Promise<string[]> {
    const res = await admin.http.get(`/_synapse/admin/v1/room/${encodeURIComponent(roomId)}/media`);
    assert.equal(res.status, 200, res.text);
    return [...res.body.local, ...res.body.remote];
  }

  /** Rows in the whole reference index and in the transaction table. */
  async function counts() {
    const db = server.app.database.db;
    const refs = await db
      .selectFrom("media_references")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    const txns = await db
      .selectFrom("app_service_transactions")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return { refs: Number(refs.n), txns: Number(txns.n) };
  }

  /** A PUT with explicit headers and raw body. */
  function put(txnId: string, body: string, headers: Record<string, string>, query = "") {
    return server.http.request("PUT", `${TXN}/${txnId}${query}`, { rawBody: body, headers });
  }
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const freshTxnId = () => `t${randomBytes(6).toString("hex")}`;

  it("indexes pushed m.image events, ≤ 100 per transaction, newest first", async () => {
    const roomA = newRoomId();
    const roomB = newRoomId();
    const urls = Array.from(
      { length: 250 },
      (_, i) => `mxc://${REMOTE}/media${i}_${roomA.slice(5, 9)}`,
    );
    for (const [i, url] of urls.entries()) pusher.enqueue(imageEvent(i % 2 ? roomB : roomA, url));
    const sentBefore = pusher.sent.length;
    await pusher.flush();
    const txns = pusher.sent.slice(sentBefore);
    assert.deepEqual(
      txns.map((t) => t.events.length),
      [100, 100, 50],
    );
    const a = await roomMedia(roomA);
    assert.equal(a.length, 125);
    // Newest reference first: the last event pushed to room A leads.
    assert.equal(a[0], urls[248]);
    assert.equal(a.at(-1), urls[0]);
    assert.equal((await roomMedia(roomB)).length, 125);
  });

  it("a replayed transaction id adds nothing and answers {}", async () => {
    const roomId = newRoomId();
    pusher.enqueue(imageEvent(roomId, `mxc://${REMOTE}/replayed`));
    await pusher.flush();
    const last = pusher.sent.at(-1) as PushedTransaction;
    const before = await counts();
    const response = await pusher.put(last);
    assert.equal(response.status, 200);
    // Even with different events under the same id: the id is what is remembered.
    const forged = { txnId: last.txnId, events: [imageEvent(roomId, `mxc://${REMOTE}/sneaky`)] };
    assert.equal((await pusher.put(forged)).status, 200);
    assert.deepEqual(await counts(), before);
    assert.deepEqual(await roomMedia(roomId), [`mxc://${REMOTE}/replayed`]);
  });

  it("the same event in two transactions is recorded once", async () => {
    const roomId = newRoomId();
    const event = imageEvent(roomId, `mxc://${REMOTE}/twice`);
    pusher.enqueue(event);
    await pusher.flush();
    const before = await counts();
    pusher.enqueue(event, event);
    await pusher.flush();
    const afterPush = await counts();
    assert.equal(afterPush.refs, before.refs);
    assert.equal(afterPush.txns, before.txns + 1);
  });

  it("concurrent deliveries of one transaction record it once", async () => {
    const roomId = newRoomId();
    const txn = {
      txnId: freshTxnId(),
      events: Array.from({ length: 20 }, (_, i) => imageEvent(roomId, `mxc://${REMOTE}/c${i}`)),
    };
    const before = await counts();
    const statuses = await Promise.all(
      Array.from({ length: 6 }, async () => (await pusher.put(txn)).status),
    );
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200]);
    const afterPush = await counts();
    assert.equal(afterPush.refs - before.refs, 20);
    assert.equal(afterPush.txns - before.txns, 1);
  });

  it("two mxcd processes on one database record a transaction, and an event, once", async () => {
    const second = await startTestServer(engine, {
      database: server.app.config.database,
      app_service: { registration: registrationPath },
    });
    try {
      const roomId = newRoomId();
      const other = new AppServicePusher({ url: second.baseUrl, hsToken });
      const txn = {
        txnId: freshTxnId(),
        events: Array.from({ length: 30 }, (_, i) => imageEvent(roomId, `mxc://${REMOTE}/p${i}`)),
      };
      const before = await counts();
      const statuses = await Promise.all(
        Array.from({ length: 8 }, async (_, i) => (await (i % 2 ? other : pusher).put(txn)).status),
      );
      assert.deepEqual(new Set(statuses), new Set([200]));
      // The same events under other transaction ids, to both processes at once.
      const again = (txnId: string) => ({ txnId, events: txn.events });
      const [a, b] = await Promise.all([
        pusher.put(again(freshTxnId())),
        other.put(again(freshTxnId())),
      ]);
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      const afterPush = await counts();
      assert.equal(afterPush.refs - before.refs, 30);
      assert.equal(afterPush.txns - before.txns, 3);
      assert.equal((await roomMedia(roomId)).length, 30);
    } finally {
      await second.stop();
    }
  });

  for (const where of ["content", "top"] as const) {
    it(`a redaction (redacts in ${where}) removes the event's references`, async () => {
      const roomId = newRoomId();
      const kept = imageEvent(roomId, `mxc://${REMOTE}/kept_${where}`);
      const gone = imageEvent(roomId, `mxc://${REMOTE}/gone_${where}`);
      pusher.enqueue(kept, gone);
      await pusher.flush();
      assert.equal((await roomMedia(roomId)).length, 2);
      pusher.enqueue(redactionEvent(roomId, gone.event_id, gone.sender, where));
      await pusher.flush();
      assert.deepEqual(await roomMedia(roomId), [kept.content.url]);
    });
  }

  it("a redaction in another room does not touch the event", async () => {
    const roomId = newRoomId();
    const event = imageEvent(roomId, `mxc://${REMOTE}/other_room`);
    pusher.enqueue(event, redactionEvent(newRoomId(), event.event_id, event.sender, "content"));
    await pusher.flush();
    assert.deepEqual(await roomMedia(roomId), [event.content.url]);
    // Nor use it up: the redaction in its own room still acts.
    pusher.enqueue(redactionEvent(roomId, event.event_id, event.sender, "content"));
    await pusher.flush();
    assert.deepEqual(await roomMedia(roomId), []);
  });

  it("encrypted events add nothing", async () => {
    const roomId = newRoomId();
    const before = await counts();
    pusher.enqueue({
      event_id: newEventId(),
      room_id: roomId,
      sender: "@someone:hs.example",
      type: "m.room.encrypted",
      content: {
        algorithm: "m.megolm.v1.aes-sha2",
        ciphertext: "AwgAEnAC",
        file: { url: `mxc://${REMOTE}/encrypted` },
        url: `mxc://${REMOTE}/encrypted2`,
      },
    });
    await pusher.flush();
    assert.equal((await counts()).refs, before.refs);
    assert.deepEqual(await roomMedia(roomId), []);
  });

  describe("media_redaction_policy through pushed redactions", () => {
    let alice: TestUser;
    let bob: TestUser;
    before(async () => {
      alice = await server.user("alice");
      bob = await server.user("bob");
    });

    it("the uploader redacting their own sole reference quarantines the media", async () => {
      const mediaId = await uploadBytes(alice.http, randomBytes(64));
      const roomId = newRoomId();
      const event = imageEvent(roomId, `mxc://${TEST_SERVER_NAME}/${mediaId}`, alice.userId);
      pusher.enqueue(event);
      await pusher.flush();
      assert.equal((await quarantinedBy(server, mediaId)) !== null, false);
      pusher.enqueue(redactionEvent(roomId, event.event_id, alice.userId, "content"));
      await pusher.flush();
      assert.equal((await quarantinedBy(server, mediaId)) !== null, true);
    });

    it("someone else's redaction leaves the media alone", async () => {
      const mediaId = await uploadBytes(alice.http, randomBytes(64));
      const roomId = newRoomId();
      const event = imageEvent(roomId, `mxc://${TEST_SERVER_NAME}/${mediaId}`, alice.userId);
      pusher.enqueue(event, redactionEvent(roomId, event.event_id, bob.userId, "top"));
      await pusher.flush();
      assert.deepEqual(await roomMedia(roomId), []);
      assert.equal((await quarantinedBy(server, mediaId)) !== null, false);
    });
  });

  describe("hs_token", () => {
    const body = (roomId: string) =>
      JSON.stringify({ events: [imageEvent(roomId, `mxc://${REMOTE}/auth`)] });

    it("missing: 401 M_MISSING_TOKEN, nothing recorded", async () => {
      const roomId = newRoomId();
      const res = await put(freshTxnId(), body(roomId), {});
      assert.equal(res.status, 401);
      assert.equal(res.body.errcode, "M_MISSING_TOKEN");
      assert.deepEqual(await roomMedia(roomId), []);
    });

    it("forged, empty, or not Bearer: 403 M_FORBIDDEN, nothing recorded", async () => {
      const roomId = newRoomId();
      const before = await counts();
      for (const authorization of [
        `Bearer ${hsToken.slice(0, -1)}x`,
        `Bearer ${hsToken}x`,
        "Bearer ",
        `Basic ${hsToken}`,
        `bearer  ${hsToken}`,
        // Node refuses headers over 16 KiB itself (431); this one reaches the check.
        `Bearer ${"a".repeat(8000)}`,
      ]) {
        const res = await put(freshTxnId(), body(roomId), { authorization });
        assert.equal(res.status, 403, authorization.slice(0, 20));
        assert.equal(res.body.errcode, "M_FORBIDDEN");
      }
      assert.deepEqual(await counts(), before);
    });

    it("a query access_token must match the header too", async () => {
      const roomId = newRoomId();
      const wrong = await put(freshTxnId(), body(roomId), bearer(hsToken), "?access_token=nope");
      assert.equal(wrong.status, 403);
      assert.equal(wrong.body.errcode, "M_FORBIDDEN");
      const twice = `?access_token=${hsToken}&access_token=${hsToken}`;
      assert.equal((await put(freshTxnId(), body(roomId), bearer(hsToken), twice)).status, 403);
      const forgedHeader = await put(
        freshTxnId(),
        body(roomId),
        bearer("nope"),
        `?access_token=${hsToken}`,
      );
      assert.equal(forgedHeader.status, 403);
      assert.deepEqual(await roomMedia(roomId), []);
      // Legacy homeservers: the query token alone, or both matching.
      const legacy = await put(freshTxnId(), body(roomId), {}, `?access_token=${hsToken}`);
      assert.equal(legacy.status, 200, legacy.text);
      assert.equal((await roomMedia(roomId)).length, 1);
    });

    it("a legacy pusher sending both header and query is accepted", async () => {
      const legacy = new AppServicePusher({
        url: server.baseUrl,
        hsToken,
        legacyQueryToken: true,
        maxAttempts: 1,
        firstTxnId: 900_000,
      });
      const roomId = newRoomId();
      legacy.enqueue(imageEvent(roomId, `mxc://${REMOTE}/legacy`));
      await legacy.flush();
      assert.deepEqual(await roomMedia(roomId), [`mxc://${REMOTE}/legacy`]);
    });
  });

  describe("hostile transactions", () => {
    it("malformed bodies: 400 M_NOT_JSON / M_BAD_JSON, nothing recorded", async () => {
      const before = await counts();
      const cases: [string, number, string][] = [
        ["{not json", 400, "M_NOT_JSON"],
        ["[]", 400, "M_NOT_JSON"],
        ['"events"', 400, "M_NOT_JSON"],
        ["", 400, "M_NOT_JSON"],
        ["{}", 400, "M_BAD_JSON"],
        ['{"events": {"0": {}}}', 400, "M_BAD_JSON"],
        ['{"events": null}', 400, "M_BAD_JSON"],
        [`{"events": ${"[".repeat(5000)}${"]".repeat(5000)}}`, 400, "M_BAD_JSON"],
      ];
      for (const [text, status, errcode] of cases) {
        const res = await put(freshTxnId(), text, bearer(hsToken));
        assert.equal(res.status, status, text.slice(0, 30));
        assert.equal(res.body.errcode, errcode, text.slice(0, 30));
      }
      assert.deepEqual(await counts(), before);
    });

    it("a 10,000-event transaction is refused with 413 and records nothing", async () => {
      const roomId = newRoomId();
      const txnId = freshTxnId();
      const events = Array.from({ length: 10_000 }, (_, i) =>
        imageEvent(roomId, `mxc://${REMOTE}/flood${i}`),
      );
      const before = await counts();
      const res = await put(txnId, JSON.stringify({ events }), bearer(hsToken));
      assert.equal(res.status, 413);
      assert.equal(res.body.errcode, "M_TOO_LARGE");
      assert.deepEqual(await counts(), before);
      // The id was not consumed: a proper transaction under it is recorded.
      const ok = await put(txnId, JSON.stringify({ events: events.slice(0, 3) }), bearer(hsToken));
      assert.equal(ok.status, 200);
      assert.equal((await roomMedia(roomId)).length, 3);
    });

    it("events with hostile fields are skipped; the rest of the transaction counts", async () => {
      const roomId = newRoomId();
      const good = imageEvent(roomId, `mxc://${REMOTE}/survivor`);
      // NUL in content the index does not keep is no reason to skip (or to
      // refuse the transaction, as client bodies are: null-bytes.ts).
      good.content.body = "cat\u0000.png";
      const url = `mxc://${REMOTE}/hostile`;
      const hostile = [
        null,
        42,
        "event",
        [],
        { ...imageEvent(roomId, url), room_id: 12345 },
        { ...imageEvent(roomId, url), room_id: { $ne: null } },
        { ...imageEvent(roomId, url), room_id: `!${"x".repeat(300)}:hs.example` },
        { ...imageEvent(roomId, url), event_id: ["$a"] },
        { ...imageEvent(roomId, url), sender: null },
        { ...imageEvent(roomId, url), type: { t: 1 } },
        { ...imageEvent(roomId, url), type: "m.room.message".repeat(20) },
        // A NUL in a text column fails the whole transaction on PostgreSQL.
        { ...imageEvent(roomId, url), event_id: "$nul\u0000" },
        { ...imageEvent(roomId, url), room_id: `${roomId}\u0000` },
        { ...imageEvent(roomId, url), sender: "@a\u0000:hs.example" },
        { ...imageEvent(roomId, url), type: "m.room.message\u0000" },
        {
          ...imageEvent(roomId, url),
          type: "m.room.member",
          state_key: "@a\u0000:hs.example",
          content: { membership: "join", avatar_url: url },
        },
        { ...imageEvent(roomId, url), state_key: 7 },
        { ...imageEvent(roomId, url), content: "mxc://remote.example/hostile" },
        { ...imageEvent(roomId, url), content: { url: { toString: "mxc://x/y" } } },
        { ...imageEvent(roomId, url), content: { url: "mxc://../../etc/passwd" } },
        redactionEvent(roomId, good.event_id, "@x:hs.example", "content"),
      ];
      // The redaction comes before `good` is pushed: it finds nothing.
      const txn = { txnId: freshTxnId(), events: [...hostile, good] };
      const before = await counts();
      const res = await pusher.put(txn);
      assert.equal(res.status, 200);
      assert.deepEqual(await roomMedia(roomId), [good.content.url]);
      // Nothing was recorded anywhere else either (a room id of another type, say).
      assert.equal((await counts()).refs, before.refs + 1);
    });

    it("an event with giant content is indexed and only its media fields are kept", async () => {
      const roomId = newRoomId();
      const event = imageEvent(roomId, `mxc://${REMOTE}/giant`);
      const giant = { ...event, content: { ...event.content, body: "x".repeat(4 * 1024 * 1024) } };
      const res = await pusher.put({ txnId: freshTxnId(), events: [giant] });
      assert.equal(res.status, 200);
      assert.deepEqual(await roomMedia(roomId), [event.content.url]);
      const row = await server.app.database.db
        .selectFrom("app_service_events")
        .select("media_content")
        .where("event_id", "=", event.event_id)
        .executeTakeFirstOrThrow();
      assert.deepEqual(JSON.parse(row.media_content), { url: event.content.url });
    });

    it("a body over the limit gets 413 M_TOO_LARGE", async () => {
      const body = JSON.stringify({ events: [{ content: { body: "x".repeat(9 * 1024 * 1024) } }] });
      const res = await put(freshTxnId(), body, bearer(hsToken));
      assert.equal(res.status, 413);
      assert.equal(res.body.errcode, "M_TOO_LARGE");
    });

    it("an unauthenticated giant body is refused before it is parsed", async () => {
      const res = await put(freshTxnId(), "{not json".repeat(1000), bearer("forged"));
      assert.equal(res.status, 403);
    });
  });

  describe("other application-service routes", () => {
    it("ping answers {} with the hs_token only", async () => {
      const ok = await server.http.post(
        "/_matrix/app/v1/ping",
        { transaction_id: "meow" },
        {
          headers: bearer(hsToken),
        },
      );
      assert.equal(ok.status, 200);
      assert.deepEqual(ok.body, {});
      const forged = await server.http.post("/_matrix/app/v1/ping", {}, { headers: bearer("x") });
      assert.equal(forged.status, 403);
      assert.equal(forged.body.errcode, "M_FORBIDDEN");
      const missing = await server.http.post("/_matrix/app/v1/ping", {});
      assert.equal(missing.status, 401);
    });

    it("unknown paths 404 M_UNRECOGNIZED, wrong methods 405 M_UNRECOGNIZED", async () => {
      for (const path of [
        "/_matrix/app/v1/users/@a:hs.example",
        "/_matrix/app/v1/rooms/%23a:hs.example",
        "/_matrix/app/v1/thirdparty/protocol/irc",
        "/_matrix/app/unstable/thirdparty/user",
        "/_matrix/app/v1/transactions",
      ]) {
        const res = await server.http.get(path, { headers: bearer(hsToken) });
        assert.equal(res.status, 404, path);
        assert.equal(res.body.errcode, "M_UNRECOGNIZED", path);
      }
      const wrong = await server.http.get("/_matrix/app/v1/ping", { headers: bearer(hsToken) });
      assert.equal(wrong.status, 405);
      assert.equal(wrong.body.errcode, "M_UNRECOGNIZED");
      const get = await server.http.get(`${TXN}/1`, { headers: bearer(hsToken) });
      assert.equal(get.status, 405);
    });
  });
});

forEachEngine("application-service routes without app_service", (engine) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(engine);
  });
  after(() => server.stop());

  it("are not served", async () => {
    const res = await server.http.put(`${TXN}/1`, { events: [] });
    assert.equal(res.status, 404);
    assert.equal(res.body.errcode, "M_UNRECOGNIZED");
  });
});
