/**
 * mxcd's server-wide media listing (docs/admin-api.md "Server-wide media
 * listing"): `GET /_mxcd/admin/v1/media` and
 * `/_mxcd/admin/v1/media/{server}/{id}/references`. Rows are seeded straight
 * into the tables (test/support/media-listing-seed.ts) and every answer is
 * compared with an independent JavaScript model of the order and filters:
 * local and remote merged newest first, ties across the two tables, each
 * filter and combinations, paging that visits every row exactly once with
 * inserts between pages, admins only, and 400 M_INVALID_PARAM for every
 * malformed parameter.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import type { HttpClient } from "./support/http-client.js";
import {
  keyOf,
  listingOrder,
  mixedMedia,
  ROOM,
  type SeededMedia,
  seedMedia,
  seedReference,
} from "./support/media-listing-seed.js";
import {
  startTestServer,
  TEST_SERVER_NAME,
  type TestServer,
  type TestUser,
} from "./support/test-server.js";

const V1 = "/_mxcd/admin/v1";
const HERE = TEST_SERVER_NAME;

interface Row {
  origin: string;
  media_origin: string | null;
  media_id: string;
  created_ts: number;
}

/** Every page of a listing, with `limit`; asserts the paging contract on the way. */
async function walk(http: HttpClient, query: string, limit: number): Promise<string[]> {
  const keys: string[] = [];
  let from: string | undefined;
  for (let pages = 0; pages < 10_000; pages++) {
    const q = `${query}${query ? "&" : ""}limit=${limit}${from ? `&from=${from}` : ""}`;
    const res = await http.get(`${V1}/media?${q}`);
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body.media.length <= limit);
    keys.push(...res.body.media.map((m: Row) => `${m.origin}/${m.media_id}`));
    from = res.body.next_batch;
    if (from === undefined) return keys;
    assert.equal(res.body.media.length, limit, "a page with a next_batch is full");
  }
  throw new Error("paging did not end");
}

/** The model's answer: `data` filtered by `keep`, in the listing's order. */
function expected(data: readonly SeededMedia[], keep: (m: SeededMedia) => boolean): string[] {
  return data
    .filter(keep)
    .sort(listingOrder)
    .map((m) => keyOf(m, HERE));
}

forEachEngine("mxcd media listing", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  const data = mixedMedia(40, 30);
  const inRoom = new Set([`${HERE}/L0001`, `${HERE}/L0002`, "z.example/R0003"]);

  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
    const db = server.app.database;
    await seedMedia(db, data);
    let stream = 1;
    const ref = (roomId: string, origin: string, mediaId: string) =>
      seedReference(db, { roomId, eventId: `$e${stream}`, origin, mediaId, stream: stream++ });
    await ref(ROOM, HERE, "L0001");
    await ref(ROOM, HERE, "L0002");
    await ref(ROOM, HERE, "L0002");
    await ref(ROOM, "z.example", "R0003");
    await ref(ROOM, HERE, "unknownmedia");
    await ref("!other:test.local", HERE, "L0004");
    await ref("!other:test.local", "a.example", "R0000");
  });
  after(async () => {
    await server?.stop();
  });

  it("lists local and remote media merged newest first, ties included, as media_info + origin", async () => {
    const res = await admin.http.get(`${V1}/media`);
    assert.equal(res.status, 200, res.text);
    // 70 rows, default limit 50: a first page of 50 and a next_batch.
    assert.equal(res.body.media.length, 50);
    assert.equal(typeof res.body.next_batch, "string");
    const all = expected(data, () => true);
    assert.deepEqual(
      res.body.media.map((m: Row) => `${m.origin}/${m.media_id}`),
      all.slice(0, 50),
    );
    const local = res.body.media.find((m: Row) => m.media_origin === null);
    assert.equal(local.origin, HERE);
    assert.equal(typeof local.user_id, "string");
    assert.equal(typeof local.safe_from_quarantine, "boolean");
    const remote = res.body.media.find((m: Row) => m.media_origin !== null);
    assert.equal(remote.origin, remote.media_origin);
    assert.equal(remote.user_id, null);
  });

  it("pages through every row exactly once, in order, for several page sizes", async () => {
    const all = expected(data, () => true);
    for (const limit of [1, 7, 13, 69, 70, 71, 1000]) {
      assert.deepEqual(await walk(admin.http, "", limit), all, `limit=${limit}`);
    }
  });

  const filters: [string, (m: SeededMedia) => boolean][] = [
    ["user_id=%40alice%3Atest.local", (m) => m.userId === "@alice:test.local"],
    ["user_id=%40nobody%3Atest.local", () => false],
    ["origin=local", (m) => m.origin === null],
    [`origin=${HERE}`, (m) => m.origin === null],
    ["origin=a.example", (m) => m.origin === "a.example"],
    ["origin=nowhere.example", () => false],
    ["media_type=image%2Fpng", (m) => m.type === "image/png"],
    ["media_type=image%2F", (m) => m.type.startsWith("image/")],
    ["media_type=image", () => false],
    ["min_size=120", (m) => m.length !== null && m.length >= 120],
    ["max_size=110", (m) => m.length !== null && m.length <= 110],
    ["min_size=110&max_size=1010", (m) => m.length !== null && m.length >= 110 && m.length <= 1010],
    ["quarantined=true", (m) => m.quarantined],
    ["quarantined=false", (m) => !m.quarantined],
    ["protected=true", (m) => m.protected],
    ["protected=false", (m) => !m.protected],
    [`room_id=${encodeURIComponent(ROOM)}`, (m) => inRoom.has(keyOf(m, HERE))],
    ["room_id=%21empty%3Atest.local", () => false],
    // Combinations.
    [
      "user_id=%40bob%3Atest.local&media_type=image%2F&quarantined=false",
      (m) => m.userId === "@bob:test.local" && m.type.startsWith("image/") && !m.quarantined,
    ],
    [
      "origin=z.example&min_size=1005&quarantined=true",
      (m) => m.origin === "z.example" && (m.length ?? 0) >= 1005 && m.quarantined,
    ],
    [
      `room_id=${encodeURIComponent(ROOM)}&origin=local`,
      (m) => inRoom.has(keyOf(m, HERE)) && m.origin === null,
    ],
    ["user_id=%40alice%3Atest.local&origin=a.example", () => false],
    ["protected=true&origin=a.example", () => false],
    [
      "media_type=video%2F&protected=false&quarantined=false",
      (m) => m.type.startsWith("video/") && !m.protected && !m.quarantined,
    ],
  ];
  for (const [query, keep] of filters) {
    it(`filter ${decodeURIComponent(query)}`, async () => {
      const want = expected(data, keep);
      assert.deepEqual(await walk(admin.http, query, 1000), want);
      assert.deepEqual(await walk(admin.http, query, 3), want, "paged by 3");
    });
  }

  it("references: every event and profile that references the media, at most 1000", async () => {
    const res = await admin.http.get(`${V1}/media/${HERE}/L0002/references`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.truncated, false);
    assert.deepEqual(
      res.body.references.map((r: Record<string, unknown>) => [r.kind, r.room_id, r.event_id]),
      [
        ["url", ROOM, "$e3"],
        ["url", ROOM, "$e2"],
      ],
    );
    assert.ok("user_id" in res.body.references[0]);
    const remote = await admin.http.get(`${V1}/media/a.example/R0000/references`);
    assert.deepEqual(
      remote.body.references.map((r: { room_id: string }) => r.room_id),
      ["!other:test.local"],
    );
    const none = await admin.http.get(`${V1}/media/${HERE}/L0010/references`);
    assert.deepEqual(none.body, { references: [], truncated: false });
    // Referenced but not stored: unknown media.
    const unknown = await admin.http.get(`${V1}/media/${HERE}/unknownmedia/references`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.errcode, "M_NOT_FOUND");
    const bad = await admin.http.get(`${V1}/media/bad..name!/x/references`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errcode, "M_INVALID_PARAM");
  });

  it("references: more than 1000 are cut at 1000 and marked truncated", async () => {
    const values = Array.from({ length: 1001 }, (_, i) => ({
      kind: "url",
      media_origin: HERE,
      media_id: "L0020",
      room_id: "!many:test.local",
      event_id: `$many${i}`,
      stream_ordering: 10_000 + i,
      user_id: null,
    }));
    for (let i = 0; i < values.length; i += 100) {
      await server.app.database.db
        .insertInto("media_references")
        .values(values.slice(i, i + 100))
        .execute();
    }
    const res = await admin.http.get(`${V1}/media/${HERE}/L0020/references`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.references.length, 1000);
    assert.equal(res.body.truncated, true);
    assert.equal(res.body.references[0].event_id, "$many1000");
  });

  it("admins only: 401 without a token, 403 M_FORBIDDEN for a user", async () => {
    for (const path of [
      `${V1}/media`,
      `${V1}/media/summary`,
      `${V1}/media/${HERE}/L0001/references`,
    ]) {
      const anonymous = await server.http.get(path);
      assert.equal(anonymous.status, 401, path);
      const user = await alice.http.get(path);
      assert.equal(user.status, 403, path);
      assert.equal(user.body.errcode, "M_FORBIDDEN");
    }
  });

  it("every malformed parameter is 400 M_INVALID_PARAM, on the listing and the summary", async () => {
    const token = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const bad = [
      "limit=0",
      "limit=-1",
      "limit=ten",
      "limit=99999999999999999999",
      "from=%%%",
      "from=not*base64",
      `from=${Buffer.from("not json").toString("base64url")}`,
      `from=${token([1, null])}`,
      `from=${token(["1", null, "x"])}`,
      `from=${token([1.5, null, "x"])}`,
      `from=${token([1, "bad/origin", "x"])}`,
      `from=${token([1, null, ""])}`,
      `from=${token({ ts: 1 })}`,
      `from=${"A".repeat(3000)}`,
      "user_id=alice",
      `user_id=%40${"a".repeat(300)}%3Atest.local`,
      "room_id=notaroom",
      "origin=bad%2Fname",
      "origin=",
      "media_type=",
      `media_type=${"a".repeat(256)}`,
      "media_type=image%0Apng",
      "min_size=-1",
      "max_size=big",
      "min_size=10&max_size=9",
      "quarantined=yes",
      "protected=1",
    ];
    for (const query of bad) {
      const res = await admin.http.get(`${V1}/media?${query}`);
      assert.equal(res.status, 400, `${query}: ${res.text}`);
      assert.equal(res.body.errcode, "M_INVALID_PARAM", query);
      assert.ok(res.body.error.length > 0);
      if (query.startsWith("limit") || query.startsWith("from")) continue;
      const summary = await admin.http.get(`${V1}/media/summary?${query}`);
      assert.equal(summary.status, 400, `summary ${query}: ${summary.text}`);
      assert.equal(summary.body.errcode, "M_INVALID_PARAM");
    }
  });

  it("a from token of an item that is gone still pages on from its position", async () => {
    const gone = Buffer.from(JSON.stringify([1_004_000, null, "L9999"])).toString("base64url");
    const res = await admin.http.get(`${V1}/media?limit=1000&from=${gone}`);
    assert.equal(res.status, 200, res.text);
    const want = expected(
      data,
      (m) => listingOrder(m, { ...m, ts: 1_004_000, origin: null, mediaId: "L9999" }) > 0,
    );
    assert.deepEqual(
      res.body.media.map((m: Row) => `${m.origin}/${m.media_id}`),
      want,
    );
  });

  it("paging visits every row once, in order, while media arrives between pages", async () => {
    const db = server.app.database;
    const visited: string[] = [];
    const shouldSee = [...data];
    let from: string | undefined;
    let k = 0;
    for (;;) {
      const res = await admin.http.get(`${V1}/media?limit=6${from ? `&from=${from}` : ""}`);
      assert.equal(res.status, 200, res.text);
      visited.push(...res.body.media.map((m: Row) => `${m.origin}/${m.media_id}`));
      from = res.body.next_batch;
      if (from === undefined) break;
      const last = res.body.media.at(-1) as Row;
      const cursor = {
        ts: last.created_ts,
        origin: last.media_origin,
        mediaId: last.media_id,
      } as SeededMedia;
      // Newer than the cursor (an upload now; a tie placed before it): not
      // on a later page. Older (a remote fetch of old media; a tie placed
      // after it): on a later page, once.
      const fresh: SeededMedia[] = [
        { ...data[0]!, origin: null, mediaId: `N${k}new`, ts: 9_000_000 + k },
        { ...data[0]!, origin: "m.example", mediaId: `N${k}old`, ts: last.created_ts - 1 },
        { ...data[0]!, origin: "m.example", mediaId: `N${k}tie`, ts: last.created_ts },
        { ...data[0]!, origin: null, mediaId: `N${k}tie`, ts: last.created_ts },
      ];
      await seedMedia(db, fresh);
      for (const m of fresh) if (listingOrder(m, cursor) > 0) shouldSee.push(m);
      k++;
    }
    assert.ok(k > 10);
    assert.equal(new Set(visited).size, visited.length, "no row twice");
    assert.deepEqual(
      visited,
      expected(shouldSee, () => true),
    );
  });

  it("limit is capped at 1000", async () => {
    const old: SeededMedia[] = Array.from({ length: 1001 }, (_, i) => ({
      ...data[0]!,
      mediaId: `OLD${String(i).padStart(4, "0")}`,
      ts: 10 + (i % 3),
    }));
    await seedMedia(server.app.database, old);
    const res = await admin.http.get(`${V1}/media?origin=local&max_size=100&limit=5000`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.media.length, 1000);
    assert.equal(typeof res.body.next_batch, "string");
  });

  it("a pending upload (created, no content yet) has null type and length, as Synapse's admin APIs show it", async () => {
    const carol = await server.user("carol");
    const created = await carol.http.post("/_matrix/media/v1/create");
    assert.equal(created.status, 200, created.text);
    const mediaId = (created.body.content_uri as string).split("/").pop()!;
    const user = encodeURIComponent(carol.userId);
    const listing = await admin.http.get(`${V1}/media?user_id=${user}`);
    const userMedia = await admin.http.get(`/_synapse/admin/v1/users/${user}/media`);
    const info = await admin.http.get(`/_synapse/admin/v1/media/${HERE}/${mediaId}`);
    for (const [where, item] of [
      ["the listing", listing.body.media?.[0]],
      ["the user media list", userMedia.body.media?.[0]],
      ["media_info", info.body.media_info],
    ] as const) {
      assert.equal(item?.media_id, mediaId, where);
      assert.equal(item.media_length, null, where);
      assert.equal(item.media_type, null, where);
      assert.equal(item.upload_name, null, where);
    }
    const sized = await admin.http.get(`${V1}/media?user_id=${user}&min_size=0`);
    assert.deepEqual(sized.body.media, [], "a size filter leaves media with no length out");
  });
});
