/**
 * Upload quotas (docs/media.md "Upload limits"): `media_upload_limits`
 * windows over a fake clock, `media_upload_limit_overrides` (first match,
 * `0` and null), refusals before the body (declared length) and while it
 * streams (chunked) leaving no file and no row, the async PUT, what counts
 * (quarantined yes, URL previews no, deleted media frees), a crashed
 * process's reservation expiring, `m.upload.size`, the usage admin API and
 * the exact errors.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { after, before, describe, it } from "node:test";
import { ConfigError, parseConfigText } from "../src/config/load-config.js";
import { compileUserGlob, userGlobProblem } from "../src/identifiers/user-glob.js";
import { LEASE_MS } from "../src/media/upload-quota-service.js";
import { forEachEngine } from "./support/databases.js";
import { allKeys, mediaIdOf } from "./support/media.js";
import { storeTempFiles } from "./support/store-files.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { mediaRowsOf, reservationsOf } from "./support/upload-quota.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const INFO_URI = "https://example.org/quota.html";

/** POST /upload with a Content-Length; status and body. */
async function upload(user: TestUser, size: number) {
  return user.http.request("POST", "/_matrix/media/v3/upload", { rawBody: randomBytes(size) });
}

/** POSTs `size` bytes as a chunked body (no Content-Length) in 100-byte pieces. */
function chunkedUpload(
  server: TestServer,
  user: TestUser,
  size: number,
  path = "/_matrix/media/v3/upload",
  method = "POST",
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${server.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${user.token}`, "transfer-encoding": "chunked" },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      let text = "";
      res.on("data", (d: Buffer) => {
        text += d;
      });
      res.on("end", () => resolve({ status: res.statusCode!, body: JSON.parse(text || "null") }));
    });
    const bytes = randomBytes(size);
    // Written as the socket takes them; a refusal mid-way ends the exchange early.
    let at = 0;
    const pump = () => {
      while (at < bytes.length) {
        const piece = bytes.subarray(at, at + 100);
        at += 100;
        if (!req.write(piece)) return void req.once("drain", pump);
      }
      req.end();
    };
    req.on("response", () => {
      at = bytes.length;
    });
    pump();
  });
}

/**
 * Sends only the headers of an upload declaring `length` bytes and resolves
 * with the answer: a refusal here was decided before any byte was read.
 */
function headersOnlyUpload(
  server: TestServer,
  user: TestUser,
  length: number,
): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${server.baseUrl}/_matrix/media/v3/upload`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "content-length": String(length) },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      let text = "";
      res.on("data", (d: Buffer) => {
        text += d;
      });
      res.on("end", () => {
        req.destroy();
        resolve({ status: res.statusCode!, body: JSON.parse(text || "null") });
      });
    });
    req.flushHeaders();
  });
}

function assertQuotaError(res: { status: number; body: any }, infoUri = INFO_URI): void {
  assert.equal(res.status, 403, JSON.stringify(res.body));
  assert.equal(res.body.errcode, "M_USER_LIMIT_EXCEEDED");
  assert.equal(res.body.info_uri, infoUri);
  assert.equal(typeof res.body.error, "string");
}

describe("upload limit config", () => {
  const problemsOf = (text: string): readonly string[] => {
    try {
      parseConfigText(`server_name: "a.org"\n${text}`);
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return error.problems;
    }
    assert.fail("the config was accepted");
  };

  it("reads Synapse's windows and the overrides", () => {
    const config = parseConfigText(
      `server_name: "a.org"\nmedia_upload_limits:\n  - { time_period: 1d, max_size: 100M }\nmedia_upload_limit_overrides:\n  - { user_glob: "@bot*:a.org", media_upload_limits: null, max_upload_size: 1G }\n`,
    );
    assert.deepEqual(config.media_upload_limits, [
      { time_period: DAY, max_size: 100 * 1024 * 1024 },
    ]);
    assert.deepEqual(config.media_upload_limit_overrides, [
      { user_glob: "@bot*:a.org", media_upload_limits: null, max_upload_size: 1024 ** 3 },
    ]);
    assert.equal(config.media_upload_limit_info_uri, null);
  });

  it("refuses bad windows, sizes, globs and URIs at load time, naming the key", () => {
    const cases: [string, RegExp][] = [
      [
        "media_upload_limits: [{ time_period: 86400, max_size: 1M }]",
        /^media_upload_limits\.0\.time_period: must be a duration/,
      ],
      [
        "media_upload_limits: [{ time_period: 0s, max_size: 1M }]",
        /^media_upload_limits\.0\.time_period: must be at least 1s/,
      ],
      [
        "media_upload_limits: [{ time_period: 1d, max_size: lots }]",
        /^media_upload_limits\.0\.max_size: must be a size/,
      ],
      ["media_upload_limits: [{ time_period: 1d }]", /^media_upload_limits\.0\.max_size: /],
      [
        'media_upload_limit_overrides: [{ user_glob: "@[ab]*:a.org" }]',
        /^media_upload_limit_overrides\.0\.user_glob: may use only \* and \?/,
      ],
      [
        'media_upload_limit_overrides: [{ user_glob: "" }]',
        /^media_upload_limit_overrides\.0\.user_glob: must not be empty/,
      ],
      [
        'media_upload_limit_overrides: [{ user_glob: "alice" }]',
        /^media_upload_limit_overrides\.0\.user_glob: must match user ids/,
      ],
      [
        'media_upload_limit_overrides: [{ user_glob: "@a:b", max_upload_size: "-1" }]',
        /^media_upload_limit_overrides\.0\.max_upload_size: must be a size/,
      ],
      [
        'media_upload_limit_overrides: [{ user_glob: "@a:b", media_upload_limit: [] }]',
        /^media_upload_limit_overrides\.0\.media_upload_limit: unknown option/,
      ],
      ["media_upload_limit_info_uri: not-a-uri", /^media_upload_limit_info_uri: /],
    ];
    for (const [line, expected] of cases) {
      const problems = problemsOf(`${line}\n`);
      assert.ok(
        problems.some((p) => expected.test(p)),
        `${line}: ${problems.join("; ")}`,
      );
    }
  });

  it("matches user globs whole, with * and ? only", () => {
    assert.equal(userGlobProblem("@*:a.org"), undefined);
    const bots = compileUserGlob("@bot?:a.org");
    assert.equal(bots("@bot1:a.org"), true);
    assert.equal(bots("@bot12:a.org"), false);
    assert.equal(bots("@bot1:a.org.evil"), false);
    const dots = compileUserGlob("@a.b:a.org");
    assert.equal(dots("@a.b:a.org"), true);
    assert.equal(dots("@aXb:a.org"), false, "a dot is literal");
    assert.equal(compileUserGlob("*")("@anyone:x"), true);
  });
});

forEachEngine("upload quotas", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  let clock = Date.UTC(2026, 0, 1);

  before(async () => {
    server = await startTestServer(
      engine,
      {
        max_upload_size: 4096,
        media_upload_limits: [
          { time_period: "1h", max_size: 1000 },
          { time_period: "1d", max_size: 2500 },
        ],
        media_upload_limit_overrides: [
          { user_glob: "@big*:test.local", media_upload_limits: [], max_upload_size: 8192 },
          { user_glob: "@bigger:test.local", max_upload_size: 100 },
          {
            user_glob: "@zero*:test.local",
            media_upload_limits: [{ time_period: "1d", max_size: 0 }],
          },
          { user_glob: "@nofile*:test.local", max_upload_size: 0 },
          { user_glob: "@nulled*:test.local", media_upload_limits: null },
          {
            user_glob: "@small*:test.local",
            media_upload_limits: [{ time_period: "1h", max_size: 300 }],
          },
        ],
        media_upload_limit_info_uri: INFO_URI,
      },
      { appOptions: { uploadNow: () => clock } },
    );
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  it("holds each window over a moving clock; deleting media frees its bytes", async () => {
    assert.equal((await upload(alice, 600)).status, 200);
    const second = await upload(alice, 400);
    assert.equal(second.status, 200, "exactly the hour's 1000 bytes");
    assertQuotaError(await upload(alice, 1));
    clock += HOUR + 1;
    assert.equal((await upload(alice, 1000)).status, 200, "the hour window moved on");
    clock += HOUR + 1;
    // The day holds 2000: 600 more would be 2600 > 2500, although the hour is empty.
    assertQuotaError(await upload(alice, 600));
    assert.equal((await upload(alice, 500)).status, 200);
    assertQuotaError(await upload(alice, 1));
    // Deleting the 400 bytes of the first hour frees them in the day window.
    const deleted = await admin.http.request(
      "DELETE",
      `/_synapse/admin/v1/media/test.local/${mediaIdOf(second.body.content_uri)}`,
    );
    assert.equal(deleted.status, 200);
    assert.equal((await upload(alice, 400)).status, 200);
    assertQuotaError(await upload(alice, 1));
    clock += DAY;
    assert.equal((await upload(alice, 1000)).status, 200, "a day later everything is free");
  });

  it("refuses a declared length over the quota before reading a byte: no file, no row", async () => {
    const user = await server.user("declared");
    assert.equal((await upload(user, 900)).status, 200);
    const keys = await allKeys(server.app.store);
    const refused = await headersOnlyUpload(server, user, 200);
    assertQuotaError(refused);
    assertQuotaError(await upload(user, 101));
    assert.deepEqual(await allKeys(server.app.store), keys);
    assert.equal(await mediaRowsOf(server, user.userId), 1);
    assert.equal(await reservationsOf(server, user.userId), 0);
    assert.equal((await upload(user, 100)).status, 200, "what remains is still usable");
  });

  it("refuses a chunked body once it outgrows the quota: no file, no temp file, no row", async () => {
    const user = await server.user("chunked");
    assert.equal((await chunkedUpload(server, user, 700)).status, 200);
    const keys = await allKeys(server.app.store);
    assertQuotaError(await chunkedUpload(server, user, 301 + 2000));
    assert.deepEqual(await allKeys(server.app.store), keys);
    if (server.app.config.media_store.engine === "filesystem") {
      assert.deepEqual(storeTempFiles(server.app.config.media_store.path), []);
    }
    assert.equal(await mediaRowsOf(server, user.userId), 1);
    assert.equal(await reservationsOf(server, user.userId), 0, "the reservation went with it");
    assert.equal((await chunkedUpload(server, user, 300)).status, 200, "exactly the rest fits");
    assertQuotaError(await chunkedUpload(server, user, 1));
  });

  it("holds async uploads (PUT) to the quota, leaving the id pending and usable", async () => {
    const user = await server.user("async");
    const create = async () => {
      const res = await user.http.request("POST", "/_matrix/media/v1/create");
      assert.equal(res.status, 200);
      return mediaIdOf(res.body.content_uri);
    };
    const id = await create();
    const keys = await allKeys(server.app.store);
    const put = (mediaId: string, size: number) =>
      user.http.request("PUT", `/_matrix/media/v3/upload/test.local/${mediaId}`, {
        rawBody: randomBytes(size),
      });
    assertQuotaError(await put(id, 1001));
    assertQuotaError(
      await chunkedUpload(server, user, 1001, `/_matrix/media/v3/upload/test.local/${id}`, "PUT"),
    );
    assert.deepEqual(await allKeys(server.app.store), keys);
    const row = await server.app.database.db
      .selectFrom("local_media_repository")
      .select(["media_length", "sha256"])
      .where("media_id", "=", id)
      .executeTakeFirstOrThrow();
    assert.deepEqual(row, { media_length: null, sha256: null }, "still pending, not claimed");
    assert.equal((await put(id, 1000)).status, 200);
    assertQuotaError(await put(await create(), 1));
    assert.equal(await reservationsOf(server, user.userId), 0);
  });

  it("counts quarantined media but not URL-preview images", async () => {
    const user = await server.user("counts");
    const insert = (mediaId: string, length: number, extra: Record<string, unknown>) =>
      server.app.database.db
        .insertInto("local_media_repository")
        .values({
          media_id: mediaId,
          media_type: "image/png",
          media_length: length,
          created_ts: clock,
          user_id: user.userId,
          sha256: "0".repeat(64),
          ...extra,
        })
        .execute();
    await insert("previewImageOfCounts", 5000, { url_cache: "https://example.org/" });
    assert.equal((await upload(user, 1000)).status, 200, "a preview image takes no budget");
    clock += HOUR + 1;
    await insert("quarantinedOfCounts", 600, { quarantined_by: "system" });
    assertQuotaError(await upload(user, 401));
    assert.equal((await upload(user, 400)).status, 200, "quarantined bytes count");
  });

  it("stops counting a crashed process's reservation when its lease ends", async () => {
    const user = await server.user("crashed");
    await server.app.database.db
      .insertInto("media_upload_reservations")
      .values({
        reservation_id: "from-a-dead-process",
        user_id: user.userId,
        bytes: 1000,
        owner: "dead",
        expires_ts: clock + LEASE_MS,
      })
      .execute();
    assertQuotaError(await upload(user, 1));
    const usage = await admin.http.request(
      "GET",
      `/_mxcd/admin/v1/users/${encodeURIComponent(user.userId)}/media_usage`,
    );
    assert.deepEqual(usage.body.pending, { uploads: 1, bytes: 1000 });
    clock += LEASE_MS;
    const lapsed = await admin.http.request(
      "GET",
      `/_mxcd/admin/v1/users/${encodeURIComponent(user.userId)}/media_usage`,
    );
    assert.deepEqual(lapsed.body.pending, { uploads: 0, bytes: 0 }, "a lapsed lease holds nothing");
    assert.equal((await upload(user, 1000)).status, 200);
    // The lapsed row itself goes on the service's timer (upload-quota-service.test.ts).
    assert.equal(await reservationsOf(server, user.userId), 1, "only the lapsed row is left");
  });

  it("applies the first matching override; null or [] windows mean no quota", async () => {
    const big = await server.user("bigger");
    // "@big*" comes first: no windows, 8192 bytes a file (not "@bigger"'s 100).
    for (let i = 0; i < 3; i++) assert.equal((await upload(big, 8000)).status, 200);
    const tooLarge = await upload(big, 8193);
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.body.errcode, "M_TOO_LARGE");
    const nulled = await server.user("nulled");
    for (let i = 0; i < 3; i++) assert.equal((await upload(nulled, 4000)).status, 200);
    assert.equal((await upload(nulled, 4097)).status, 413, "the global max_upload_size stays");
    const small = await server.user("smallish");
    assertQuotaError(await upload(small, 301));
    assert.equal((await upload(small, 300)).status, 200);
  });

  it("treats 0 as 'nothing may be uploaded', never as unlimited", async () => {
    const zero = await server.user("zero");
    assertQuotaError(await upload(zero, 1));
    assertQuotaError(await upload(zero, 0));
    assertQuotaError(await chunkedUpload(server, zero, 0));
    const nofile = await server.user("nofile");
    for (const size of [0, 1]) {
      const res = await upload(nofile, size);
      assert.equal(res.status, 413);
      assert.equal(res.body.errcode, "M_TOO_LARGE");
    }
    assert.equal(await mediaRowsOf(server, zero.userId), 0);
    assert.equal(await mediaRowsOf(server, nofile.userId), 0);
  });

  it("reports the effective m.upload.size per user on every config path", async () => {
    const expectations: [string, number][] = [
      ["cfg", 1000], // max_upload_size 4096, lowered to the hour window's 1000
      ["bigcfg", 8192],
      ["smallcfg", 300],
      ["zerocfg", 0],
      ["nofilecfg", 0],
      ["nulledcfg", 4096],
    ];
    for (const [localpart, size] of expectations) {
      const user = await server.user(localpart);
      for (const path of [
        "/_matrix/client/v1/media/config",
        "/_matrix/media/v3/config",
        "/_matrix/media/r0/config",
        "/_matrix/media/v1/config",
      ]) {
        const res = await user.http.request("GET", path);
        assert.equal(res.status, 200);
        assert.deepEqual(res.body, { "m.upload.size": size }, `${localpart} ${path}`);
      }
    }
  });

  it("answers the usage admin API: auth, validation and the numbers", async () => {
    const path = (userId: string) =>
      `/_mxcd/admin/v1/users/${encodeURIComponent(userId)}/media_usage`;
    const user = await server.user("usage");
    assert.equal((await upload(user, 300)).status, 200);
    assert.equal((await server.http.request("GET", path(user.userId))).status, 401);
    const notAdmin = await user.http.request("GET", path(user.userId));
    assert.equal(notAdmin.status, 403);
    assert.equal(notAdmin.body.errcode, "M_FORBIDDEN");
    const bad = await admin.http.request("GET", path("usage"));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errcode, "M_INVALID_PARAM");
    const remote = await admin.http.request("GET", path("@usage:elsewhere.example"));
    assert.equal(remote.status, 400, "a user of another server");
    assert.equal(remote.body.errcode, "M_INVALID_PARAM");
    const unknown = await admin.http.request("GET", path("@nobody-here:test.local"));
    assert.equal(unknown.status, 404, "a local user without an account");
    assert.equal(unknown.body.errcode, "M_NOT_FOUND");
    const res = await admin.http.request("GET", path(user.userId));
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      user_id: user.userId,
      max_upload_size: 4096,
      override: null,
      windows: [
        { time_period_ms: HOUR, max_size: 1000, used: 300, remaining: 700 },
        { time_period_ms: DAY, max_size: 2500, used: 300, remaining: 2200 },
      ],
      pending: { uploads: 0, bytes: 0 },
    });
    const small = await server.user("smallusage");
    const overridden = await admin.http.request("GET", path(small.userId));
    assert.equal(overridden.body.override, "@small*:test.local");
    assert.deepEqual(overridden.body.windows, [
      { time_period_ms: HOUR, max_size: 300, used: 0, remaining: 300 },
    ]);
  });

  it("serves the default info_uri page", async () => {
    const page = await server.http.request("GET", "/_mxcd/media_upload_limit");
    assert.equal(page.status, 200);
    assert.match(String(page.headers.get("content-type")), /^text\/html/);
  });
});

forEachEngine("upload quota info_uri default", (engine) => {
  it("points at mxcd's page on the server name", async () => {
    const server = await startTestServer(engine, {
      media_upload_limits: [{ time_period: "1d", max_size: 10 }],
    });
    try {
      const user = await server.user("someone");
      assertQuotaError(await upload(user, 11), "https://test.local/_mxcd/media_upload_limit");
    } finally {
      await server.stop();
    }
  });
});
