/**
 * Hostile nesting: request bodies and event contents nested 10,000 and
 * 100,000 deep are refused with 400 M_BAD_JSON on every route that takes
 * event-like JSON, never a 500 (stack overflow), and the server keeps serving.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { exceedsJsonDepth, MAX_JSON_DEPTH } from "../src/domain/json-depth.js";
import { MatrixError } from "../src/domain/matrix-error.js";
import { checkEventContent } from "../src/domain/room-event.js";
import { forEachEngine } from "./support/databases.js";
import { CLIENT, createRoom, roomPath, send, txn } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

/** `n` nested objects around `1`, as JSON text (never built as a value: that could overflow). */
function deepObject(n: number): string {
  return `${'{"a":'.repeat(n)}1${"}".repeat(n)}`;
}

/** `n` nested arrays, as JSON text. */
function deepArray(n: number): string {
  return `${"[".repeat(n)}${"]".repeat(n)}`;
}

/** A value nested `n` deep (objects), built without recursion. */
function nested(n: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < n; i++) value = { a: value };
  return value;
}

describe("exceedsJsonDepth", () => {
  it("counts the top-level container as depth 1", () => {
    assert.equal(exceedsJsonDepth(1, 0), false);
    assert.equal(exceedsJsonDepth({}, 1), false);
    assert.equal(exceedsJsonDepth({}, 0), true);
    assert.equal(exceedsJsonDepth({ a: [1, { b: "x" }] }, 3), false);
    assert.equal(exceedsJsonDepth({ a: [1, { b: {} }] }, 3), true);
  });

  it("accepts exactly the limit and refuses one more", () => {
    assert.equal(exceedsJsonDepth(nested(MAX_JSON_DEPTH)), false);
    assert.equal(exceedsJsonDepth(nested(MAX_JSON_DEPTH + 1)), true);
  });

  it("walks a 200,000-deep value without overflowing the stack", () => {
    assert.equal(exceedsJsonDepth(JSON.parse(deepObject(200_000))), true);
    assert.equal(exceedsJsonDepth(JSON.parse(deepArray(200_000))), true);
  });

  it("finds the deep branch behind many shallow ones", () => {
    const wide: Record<string, unknown> = {};
    for (let i = 0; i < 10_000; i++) wide[`k${i}`] = { x: [i] };
    wide.deep = nested(MAX_JSON_DEPTH);
    assert.equal(exceedsJsonDepth(wide), true);
  });

  it("stops on a cyclic value", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.equal(exceedsJsonDepth(cyclic), true);
  });
});

describe("checkEventContent", () => {
  it("refuses deep content with M_BAD_JSON before measuring its size", () => {
    const content = { deep: nested(100_000) } as Record<string, unknown>;
    assert.throws(
      () => checkEventContent(content),
      (e: unknown) => e instanceof MatrixError && e.errcode === "M_BAD_JSON" && e.status === 400,
    );
  });

  it("still refuses shallow content over 64 KiB with M_TOO_LARGE", () => {
    assert.throws(
      () => checkEventContent({ body: "x".repeat(70_000) }),
      (e: unknown) => e instanceof MatrixError && e.errcode === "M_TOO_LARGE",
    );
  });
});

forEachEngine("deeply nested request bodies", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let roomId: string;
  before(async () => {
    server = await startTestServer(engine);
    alice = await server.user("alice");
    await server.user("bob");
    roomId = await createRoom(alice);
  });
  after(() => server.stop());

  /** Every route that takes event-like JSON, with the deep part spliced into its body. */
  const routes = (
    deep: string,
  ): Array<[name: string, method: "PUT" | "POST", path: string, body: string]> => {
    const room = () => roomPath(roomId);
    return [
      ["send (whole body)", "PUT", `${room()}/send/m.room.message/${txn()}`, deep],
      [
        "send (nested field)",
        "PUT",
        `${room()}/send/m.room.message/${txn()}`,
        `{"body":"x","d":${deep}}`,
      ],
      ["state", "PUT", `${room()}/state/m.room.topic/`, `{"topic":"t","d":${deep}}`],
      ["state without key", "PUT", `${room()}/state/m.room.topic`, `{"topic":"t","d":${deep}}`],
      [
        "redact",
        "PUT",
        `${room()}/redact/${encodeURIComponent("$x")}/${txn()}`,
        `{"reason":"r","d":${deep}}`,
      ],
      [
        "createRoom initial_state",
        "POST",
        `${CLIENT}/createRoom`,
        `{"initial_state":[{"type":"m.room.topic","content":{"topic":"t","d":${deep}}}]}`,
      ],
      [
        "createRoom creation_content",
        "POST",
        `${CLIENT}/createRoom`,
        `{"creation_content":{"d":${deep}}}`,
      ],
      [
        "createRoom power override",
        "POST",
        `${CLIENT}/createRoom`,
        `{"power_level_content_override":{"d":${deep}}}`,
      ],
      ["createRoom (whole body)", "POST", `${CLIENT}/createRoom`, deep],
      [
        "profile displayname",
        "PUT",
        `${CLIENT}/profile/${encodeURIComponent(alice.userId)}/displayname`,
        `{"displayname":"A","d":${deep}}`,
      ],
      [
        "profile avatar_url",
        "PUT",
        `${CLIENT}/profile/${encodeURIComponent(alice.userId)}/avatar_url`,
        `{"avatar_url":"","d":${deep}}`,
      ],
      ["invite", "POST", `${room()}/invite`, `{"user_id":"@bob:test.local","d":${deep}}`],
      ["join", "POST", `${room()}/join`, `{"d":${deep}}`],
      ["join by id", "POST", `${CLIENT}/join/${encodeURIComponent(roomId)}`, `{"d":${deep}}`],
      ["leave", "POST", `${room()}/leave`, `{"d":${deep}}`],
      [
        "r0 send",
        "PUT",
        `/_matrix/client/r0/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn()}`,
        `{"d":${deep}}`,
      ],
    ];
  };

  for (const depth of [10_000, 100_000]) {
    for (const [shape, make] of [
      ["objects", deepObject],
      ["arrays", deepArray],
    ] as const) {
      it(`answers ${depth}-deep ${shape} with 400 M_BAD_JSON on every route`, async () => {
        for (const [name, method, path, body] of routes(make(depth))) {
          const res = await alice.http.request(method, path, {
            rawBody: body,
            headers: { "content-type": "application/json" },
          });
          assert.equal(res.status, 400, `${name}: ${res.status} ${res.text.slice(0, 200)}`);
          assert.equal(res.body.errcode, "M_BAD_JSON", name);
        }
        // The server still serves, and nothing deep was stored.
        const id = await send(alice, roomId, { msgtype: "m.text", body: "still here" });
        const got = await alice.http.get(`${roomPath(roomId)}/event/${encodeURIComponent(id)}`);
        assert.equal(got.status, 200);
        const topic = await alice.http.get(`${roomPath(roomId)}/state/m.room.topic/`);
        assert.equal(topic.status, 404, "no topic was set by a deep body");
      });
    }
  }

  it("refuses a deep body in the parser, even on a route that ignores its body", async () => {
    const admin = await server.user("deepadmin", { admin: true });
    const path = "/_synapse/admin/v1/media/protect/abcdefghijklmnopqrstuvwx";
    for (const body of [deepObject(10_000), deepArray(129)]) {
      const res = await admin.http.request("POST", path, {
        rawBody: body,
        headers: { "content-type": "application/json" },
      });
      assert.equal(res.status, 400, res.text.slice(0, 200));
      assert.equal(res.body.errcode, "M_BAD_JSON");
    }
    const shallow = await admin.http.request("POST", path, {
      rawBody: deepArray(128),
      headers: { "content-type": "application/json" },
    });
    assert.equal(shallow.body.errcode, "M_NOT_FOUND", "128 levels reach the route");
  });

  it(`accepts content nested exactly ${MAX_JSON_DEPTH} deep (the body object is level 1)`, async () => {
    const inner = JSON.stringify(nested(MAX_JSON_DEPTH - 1));
    const res = await alice.http.request(
      "PUT",
      `${roomPath(roomId)}/send/m.room.message/${txn()}`,
      {
        rawBody: `{"body":"x","d":${inner}}`,
        headers: { "content-type": "application/json" },
      },
    );
    assert.equal(res.status, 200, res.text);
    const over = JSON.stringify(nested(MAX_JSON_DEPTH));
    const refused = await alice.http.request(
      "PUT",
      `${roomPath(roomId)}/send/m.room.message/${txn()}`,
      {
        rawBody: `{"body":"x","d":${over}}`,
        headers: { "content-type": "application/json" },
      },
    );
    assert.equal(refused.status, 400);
    assert.equal(refused.body.errcode, "M_BAD_JSON");
  });
});
