/**
 * Hostile pass over the server-wide media listing and its summary
 * (`GET /_mxcd/admin/v1/media[/summary]`, docs/admin-api.md): forged
 * cursors that decode to well-shaped but extreme positions, filter values
 * that no column can hold (NUL bytes, unicode, numbers past 2^53),
 * contradictory filters, tokens that are not an admin's, and 100
 * concurrent filtered requests over 11,000 rows, whose memory must stay
 * bounded (each page is one index walk of at most `limit` rows).
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { DefaultQueryExecutor } from "kysely";
import { forEachEngine } from "./support/databases.js";
import { mixedMedia, seedMedia } from "./support/media-listing-seed.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const V1 = "/_mxcd/admin/v1";
const token = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** Asserts a Matrix error body with one of `statuses`. */
function assertMatrixError(
  res: { status: number; body: any; text: string },
  statuses: number[],
  what: string,
): void {
  assert.ok(statuses.includes(res.status), `${what}: ${res.status} ${res.text.slice(0, 200)}`);
  assert.equal(typeof res.body?.errcode, "string", what);
  assert.equal(typeof res.body?.error, "string", what);
}

forEachEngine("hostile: server-wide media listing", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  const rows = mixedMedia(6_000, 5_000);

  before(async () => {
    server = await startTestServer(engine);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
    await seedMedia(server.app.database, rows);
  });
  after(() => server?.stop());

  it("forged cursors: well-shaped extremes page (200) or are refused (400), never 500", async () => {
    const forged = [
      [Number.MAX_SAFE_INTEGER, null, "x"],
      [-Number.MAX_SAFE_INTEGER, null, "x"],
      [0, null, "x"],
      [1e300, null, "x"],
      [-0, "a.example", "R0001"],
      [1_004_000, null, "x".repeat(10_000)],
      [1_004_000, "ünïcödé.example", "R0001"],
      [1_004_000, "a.example", "💥"],
      [1_004_000, null, "a\u0000b"],
      [1_004_000, "a\u0000.example", "x"],
      [1_004_000, `${"a".repeat(300)}.example`, "x"],
      [1_004_000, null, "x", "extra"],
      [[1_004_000], null, "x"],
      [1_004_000, {}, "x"],
      [1_004_000, null, ["x"]],
      [1_004_000, true, "x"],
      null,
      "string",
      [],
    ];
    for (const position of forged) {
      const what = `from=${JSON.stringify(position)?.slice(0, 60)}`;
      for (const path of [`${V1}/media?limit=5&from=${token(position)}`]) {
        const res = await admin.http.get(path);
        if (res.status === 200) {
          assert.ok(Array.isArray(res.body.media) && res.body.media.length <= 5, what);
        } else {
          assertMatrixError(res, [400], what);
          assert.equal(res.body.errcode, "M_INVALID_PARAM", what);
        }
      }
    }
    // Not base64, base64 of garbage bytes, and a cursor larger than any page.
    for (const raw of [
      "%00",
      "%F0%9F%92%A5",
      Buffer.from([0xff, 0xfe, 0]).toString("base64url"),
      "A".repeat(100_000),
    ]) {
      const res = await admin.http.get(`${V1}/media?from=${raw}`);
      assertMatrixError(res, [400, 414, 431], `from=${raw.slice(0, 20)}`);
    }
  });

  it("hostile filter values are 400 M_INVALID_PARAM or an empty answer, never 500", async () => {
    const hostile = [
      "user_id=%40a%00b%3Atest.local",
      "user_id=%40%C3%BCnic%C3%B6de%3Atest.local",
      "user_id=%40alice%3Atest.local%00",
      "room_id=!a%00b%3Atest.local",
      "room_id=!%F0%9F%92%A5%3Atest.local",
      "origin=a%00.example",
      "origin=%C3%BC.example",
      `origin=${"a".repeat(5_000)}.example`,
      "media_type=image%00png",
      "media_type=image%2F%00",
      "media_type=%F0%9F%92%A5%2F",
      "media_type=%25%2F", // a LIKE wildcard as the prefix
      "media_type=_%2F",
      "min_size=1e30",
      "min_size=99999999999999999999999",
      "max_size=9007199254740993",
      "min_size=0x10",
      "min_size=1.5",
      "min_size=%201",
      "min_size=NaN",
      "max_size=Infinity",
      "min_size=9007199254740991&max_size=0",
      "quarantined=true&quarantined=false",
      "limit=1&limit=2",
      "user_id=%40alice%3Atest.local&user_id=%40bob%3Atest.local",
      "origin=local&origin=a.example",
      "quarantined=TRUE",
      "limit=1e3",
    ];
    for (const query of hostile) {
      for (const path of [`${V1}/media?${query}`, `${V1}/media/summary?${query}`]) {
        const res = await admin.http.get(path);
        if (res.status === 200) {
          if (path.includes("summary")) assert.equal(typeof res.body.count, "number", path);
          else assert.ok(Array.isArray(res.body.media), path);
        } else {
          assertMatrixError(res, [400], path);
          assert.equal(res.body.errcode, "M_INVALID_PARAM", path);
        }
      }
    }
    // A LIKE wildcard in a media_type prefix matches nothing literally, not every type.
    const wildcard = await admin.http.get(`${V1}/media/summary?media_type=%25%2F`);
    if (wildcard.status === 200) assert.equal(wildcard.body.count, 0, "'%/' is not a wildcard");
  });

  it("non-admin and broken tokens get 401/403, never a listing", async () => {
    const cases: [Record<string, string>, number][] = [
      [{}, 401],
      [{ authorization: "Bearer " }, 401],
      [{ authorization: "Bearer x".padEnd(5_000, "x") }, 401],
      [{ authorization: "Basic YWRtaW46YWRtaW4=" }, 401],
      [{ authorization: `Bearer ${alice.token}` }, 403],
    ];
    for (const [headers, status] of cases) {
      for (const path of [`${V1}/media`, `${V1}/media/summary`]) {
        const res = await server.http.request("GET", path, { headers });
        assertMatrixError(res, [status], `${path} ${JSON.stringify(headers).slice(0, 40)}`);
      }
    }
    const query = await server.http.get(`${V1}/media?access_token=${alice.token}`);
    assertMatrixError(query, [403], "a user's token in the query");
  });

  it("100 concurrent filtered requests over 11,000 rows: all 200, pages bounded, memory bounded", async () => {
    const filters = [
      "limit=1000",
      "limit=1000&media_type=video%2F",
      "limit=1000&min_size=1000&max_size=1000000",
      "limit=1000&origin=a.example&quarantined=true",
      "limit=1000&user_id=%40alice%3Atest.local&protected=false",
      // Matches nothing: the worst case for a filtered walk.
      "limit=1000&media_type=application%2F&min_size=999999",
    ];
    // The most rows any one statement returned: a page must be an index walk of
    // at most limit + 1 rows per table, never a read of every matching row.
    let mostRows = 0;
    const executor = DefaultQueryExecutor.prototype;
    const execute = executor.executeQuery;
    executor.executeQuery = async function (this: DefaultQueryExecutor, ...args) {
      const result = await execute.apply(this, args);
      mostRows = Math.max(mostRows, result.rows.length);
      return result;
    } as typeof execute;
    const before = process.memoryUsage();
    let peakRss = before.rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 5);
    try {
      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, i) => {
          const filter = filters[i % filters.length];
          const path = i % 2 === 0 ? `${V1}/media?${filter}` : `${V1}/media/summary?${filter}`;
          return admin.http.get(path).then((res) => ({ path, res }));
        }),
      );
      for (const { path, res } of answers) {
        assert.equal(res.status, 200, `${path}: ${res.text.slice(0, 200)}`);
        if (!path.includes("summary")) assert.ok(res.body.media.length <= 1000, path);
      }
    } finally {
      clearInterval(sampler);
      executor.executeQuery = execute;
    }
    assert.ok(mostRows > 0, "the counter saw the listing's statements");
    assert.ok(mostRows <= 1001, `one statement returned ${mostRows} rows`);
    // A loose bound besides: 100 pages of at most 1000 rows are ~50 MB of
    // JSON (on SQLite the statements run one at a time, so the row count above
    // is what catches a page that reads every row).
    const grownMb = (peakRss - before.rss) / 2 ** 20;
    assert.ok(grownMb < 400, `RSS grew ${grownMb.toFixed(0)} MB under 100 concurrent listings`);
  });
});
