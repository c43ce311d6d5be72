/**
 * Hostile pass over the reads the admin console drives (docs/console.md):
 * Synapse's room list (`GET /_synapse/admin/v1/rooms`) with hostile search
 * terms and from/limit extremes, the caption look-ups
 * (`GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`) with hostile
 * ids, and 100 of each at once. Every answer is a result or a Matrix error
 * with the right status; never a 500, never a LIKE wildcard taken as one.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { createRoom, roomPath, send } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const ROOMS = "/_synapse/admin/v1/rooms";

function assertMatrixError(
  res: { status: number; body: any; text: string },
  statuses: number[],
  what: string,
) {
  assert.ok(statuses.includes(res.status), `${what}: ${res.status} ${res.text.slice(0, 200)}`);
  assert.equal(typeof res.body?.errcode, "string", what);
  assert.equal(typeof res.body?.error, "string", what);
}

forEachEngine("hostile: console-facing reads", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let roomId: string;
  let eventId: string;

  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
    roomId = await createRoom(alice, { name: "Plain room" });
    await createRoom(alice, { name: "100% pure_fun \\ room" });
    eventId = await send(alice, roomId, { msgtype: "m.text", body: "caption" });
  });
  after(() => server?.stop());

  it("room list: hostile search terms are results or 400, and LIKE wildcards are literal", async () => {
    const terms = [
      "%",
      "_",
      "\\",
      "%%",
      "\\%",
      "a\u0000b",
      "\u0000",
      "💥",
      "ünïcödé",
      "'; DROP TABLE rooms; --",
      "x".repeat(10_000),
      " ",
      "!notaroom",
      "!a\u0000:test.local",
      "#alias:test.local",
    ];
    for (const term of terms) {
      const res = await admin.http.get(`${ROOMS}?search_term=${encodeURIComponent(term)}`);
      const what = `search_term=${JSON.stringify(term.slice(0, 30))}`;
      if (res.status === 200) {
        assert.ok(Array.isArray(res.body.rooms), what);
        assert.equal(typeof res.body.total_rooms, "number", what);
      } else {
        assertMatrixError(res, [400], what);
      }
    }
    // '%' and '_' are matched as themselves: only the room whose name holds them.
    for (const literal of ["%", "_", "\\"]) {
      const res = await admin.http.get(`${ROOMS}?search_term=${encodeURIComponent(literal)}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(
        res.body.rooms.map((r: { name: string }) => r.name),
        ["100% pure_fun \\ room"],
        `search_term=${literal} is literal`,
      );
    }
  });

  it("room list: from/limit extremes are answered 200 or 400 M_INVALID_PARAM", async () => {
    const queries = [
      "from=-1",
      "from=1e3",
      "from=9007199254740993",
      "from=99999999999999999999999",
      "from=NaN",
      "from=0x10",
      "from=%00",
      "from=",
      "limit=-1",
      "limit=0",
      "limit=1e9",
      "limit=9007199254740993",
      "limit=99999999999999999999999",
      "limit=Infinity",
      "limit=",
      "from=2147483648&limit=2147483648",
      "order_by=%00",
      "order_by=name;DROP",
      "dir=%00",
      "public_rooms=maybe",
      "empty_rooms=%00",
      "from=1&from=2",
    ];
    for (const query of queries) {
      const res = await admin.http.get(`${ROOMS}?${query}`);
      if (res.status === 200) {
        assert.ok(Array.isArray(res.body.rooms), query);
        assert.ok(res.body.rooms.length <= 2, query);
      } else {
        assertMatrixError(res, [400], query);
        assert.equal(res.body.errcode, "M_INVALID_PARAM", query);
      }
    }
  });

  it("caption look-ups: hostile room and event ids are 400/403/404 Matrix errors", async () => {
    const rooms = [
      roomId,
      "!a\u0000b:test.local",
      `!${"r".repeat(10_000)}:test.local`,
      "!💥:test.local",
      "notaroom",
      "#alias:test.local",
      "!x:[::1]",
      "%",
    ];
    const events = [
      eventId,
      "$a\u0000b",
      `$${"e".repeat(10_000)}`,
      "$💥",
      "notanevent",
      "$",
      "%",
      "$../../etc/passwd",
    ];
    for (const r of rooms) {
      for (const e of events) {
        if (r === roomId && e === eventId) continue;
        const res = await alice.http.get(`${roomPath(r)}/event/${encodeURIComponent(e)}`);
        assertMatrixError(
          res,
          [400, 403, 404, 414, 431],
          `${JSON.stringify(r.slice(0, 20))} ${JSON.stringify(e.slice(0, 20))}`,
        );
      }
    }
    const raw = await alice.http.get(`${roomPath(roomId)}/event/%E0%A4%A`);
    assertMatrixError(raw, [400, 404], "an undecodable escape");
    const ok = await alice.http.get(`${roomPath(roomId)}/event/${encodeURIComponent(eventId)}`);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.content.body, "caption");
  });

  it("100 concurrent room lists and caption look-ups are all answered, none 5xx", async () => {
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        i % 2 === 0
          ? admin.http.get(
              `${ROOMS}?search_term=${encodeURIComponent(["room", "%", "x".repeat(5000)][i % 3]!)}&limit=1000`,
            )
          : alice.http.get(
              `${roomPath(roomId)}/event/${encodeURIComponent(i % 4 === 1 ? eventId : `$missing${i}`)}`,
            ),
      ),
    );
    const statuses = answers.map((a) => a.status);
    assert.equal(statuses.length, 100);
    assert.deepEqual(
      statuses.filter((s) => s >= 500),
      [],
      "no 5xx",
    );
    assert.ok(
      statuses.every((s) => s === 200 || s === 404),
      `statuses ${[...new Set(statuses)]}`,
    );
  });
});
