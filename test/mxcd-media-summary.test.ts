/**
 * `GET /_mxcd/admin/v1/media/summary` (docs/admin-api.md "Server-wide media
 * listing"): how many media a listing filter selects and their bytes — the
 * console's preview before "quarantine / delete all". Compared with an
 * independent model of the seeded rows for each filter and combinations;
 * uploads in progress and pending ones count with 0 bytes. A real upload
 * and a real quarantine through the API show in both the listing and the
 * summary.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { uploadBytes } from "./support/media.js";
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

forEachEngine("mxcd media summary", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  const data = mixedMedia(45, 35);

  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    await seedMedia(server.app.database, data);
    await seedReference(server.app.database, {
      roomId: ROOM,
      eventId: "$a",
      origin: HERE,
      mediaId: "L0003",
      stream: 1,
    });
    await seedReference(server.app.database, {
      roomId: ROOM,
      eventId: "$b",
      origin: "a.example",
      mediaId: "R0002",
      stream: 2,
    });
  });
  after(async () => {
    await server?.stop();
  });

  const model = (keep: (m: SeededMedia) => boolean) => {
    const selected = data.filter(keep);
    return {
      count: selected.length,
      total_bytes: selected.reduce((sum, m) => sum + (m.length ?? 0), 0),
    };
  };

  const cases: [string, (m: SeededMedia) => boolean][] = [
    ["", () => true],
    ["user_id=%40alice%3Atest.local", (m) => m.userId === "@alice:test.local"],
    ["origin=local", (m) => m.origin === null],
    ["origin=z.example", (m) => m.origin === "z.example"],
    ["media_type=image%2F", (m) => m.type.startsWith("image/")],
    ["media_type=video%2Fmp4", (m) => m.type === "video/mp4"],
    ["min_size=130&max_size=1020", (m) => m.length !== null && m.length >= 130 && m.length <= 1020],
    ["quarantined=true", (m) => m.quarantined],
    ["protected=true", (m) => m.protected],
    ["protected=false&quarantined=false", (m) => !m.protected && !m.quarantined],
    [
      `room_id=${encodeURIComponent(ROOM)}`,
      (m) => ["L0003", "R0002"].includes(m.mediaId) && (m.origin ?? "a.example") === "a.example",
    ],
    ["origin=nowhere.example", () => false],
  ];
  for (const [query, keep] of cases) {
    it(`summary ${decodeURIComponent(query) || "(no filter)"}`, async () => {
      const res = await admin.http.get(`${V1}/media/summary?${query}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, model(keep));
    });
  }

  it("the summary counts what the listing lists", async () => {
    const query = "media_type=image%2F&quarantined=false";
    const listed = await admin.http.get(`${V1}/media?${query}&limit=1000`);
    const summary = await admin.http.get(`${V1}/media/summary?${query}`);
    assert.equal(summary.body.count, listed.body.media.length);
    const bytes = listed.body.media.reduce(
      (sum: number, m: { media_length: number | null }) => sum + (m.media_length ?? 0),
      0,
    );
    assert.equal(summary.body.total_bytes, bytes);
  });

  it("a real upload and a real quarantine show in the listing and the summary", async () => {
    const carol = await server.user("carol");
    const mediaId = await uploadBytes(carol.http, "hello console", { contentType: "text/plain" });
    const filter = "user_id=%40carol%3Atest.local";
    const first = await admin.http.get(`${V1}/media?${filter}`);
    assert.deepEqual(
      first.body.media.map((m: { media_id: string; origin: string }) => [m.origin, m.media_id]),
      [[HERE, mediaId]],
    );
    assert.equal(first.body.media[0].media_length, 13);
    // Newest first: the upload (created now) leads the unfiltered listing.
    const newest = await admin.http.get(`${V1}/media?limit=1`);
    assert.equal(newest.body.media[0].media_id, mediaId);
    assert.deepEqual((await admin.http.get(`${V1}/media/summary?${filter}`)).body, {
      count: 1,
      total_bytes: 13,
    });
    const q = await admin.http.post(`/_synapse/admin/v1/media/quarantine/${HERE}/${mediaId}`, {});
    assert.equal(q.status, 200, q.text);
    const quarantined = await admin.http.get(`${V1}/media?${filter}&quarantined=true`);
    assert.equal(quarantined.body.media[0].quarantined_by, admin.userId);
    assert.deepEqual(
      (await admin.http.get(`${V1}/media/summary?${filter}&quarantined=false`)).body,
      {
        count: 0,
        total_bytes: 0,
      },
    );
    // The seeded rows keep their order behind it.
    const rest = await admin.http.get(`${V1}/media?limit=1000&origin=local`);
    const seeded = data.filter((m) => m.origin === null).sort(listingOrder);
    assert.deepEqual(
      rest.body.media.slice(1).map((m: { media_id: string }) => `${HERE}/${m.media_id}`),
      seeded.map((m) => keyOf(m, HERE)),
    );
  });
});
