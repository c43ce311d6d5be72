/**
 * The serving fast path (docs/deployment.md, "Fast path for cached media"):
 * cache hits of downloads and thumbnails answered ahead of Fastify must be
 * the routes' answers byte for byte, counted and logged the same way, and
 * everything that is not a clean hit must reach the routes unchanged.
 *
 * Which path answered is observable: `mxcd_fast_path_requests_total
 * {route,result}` counts `answered` and `passed`. The routes' answer to the
 * very same request is had from a second server on the same database with
 * `media_cache.fast_path: false` (the routes only), or from the same server
 * with a header the fast path leaves alone (`If-None-Match` that matches
 * nothing, which the route ignores).
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import sharp from "sharp";
import { type App, createApp } from "../src/app.js";
import type { ConfigInput } from "../src/config/config-schema.js";
import { validateConfig } from "../src/config/load-config.js";
import type { Engine } from "../src/db/database.js";
import { formatSigningKeyFile, generateSigningKey } from "../src/federation/signing-key.js";
import { parseFastPathRequest, rememberingRequestParser } from "../src/http/fast-path-request.js";
import { createLogger } from "../src/logging/logger.js";
import { maskUrlSecrets } from "../src/logging/mask-url-secrets.js";
import { requestLogWriter } from "../src/logging/request-log-line.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { HttpClient } from "./support/http-client.js";
import { uploadBytes } from "./support/media.js";
import { rawGet } from "./support/raw-get.js";
import { waitFor } from "./support/wait-for.js";

const V1 = "/_matrix/client/v1/media";
const ADMIN = "/_synapse/admin/v1";
const FAST = "mxcd_fast_path_requests_total";

/** Every sample of /metrics, by its full name with labels. */
async function samples(baseUrl: string): Promise<Map<string, number>> {
  const text = await (await fetch(new URL("/metrics", baseUrl))).text();
  const map = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    map.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return map;
}

/** The samples whose value changed from `before` to `after` (histogram sums and timing buckets left out). */
function changed(before: Map<string, number>, after: Map<string, number>, names: RegExp) {
  const out: Record<string, number> = {};
  for (const [key, value] of after) {
    if (!names.test(key) || key.includes("_sum") || key.includes("_bucket")) continue;
    const delta = value - (before.get(key) ?? 0);
    if (delta !== 0) out[key] = delta;
  }
  return out;
}

const fastCount = async (baseUrl: string, route: string, result: string) =>
  (await samples(baseUrl)).get(`${FAST}{route="${route}",result="${result}"}`) ?? 0;

interface Pair {
  /** The server with the fast path (shipped default), logging at info into `lines`. */
  fast: App;
  fastUrl: string;
  /** The same database and store, `media_cache.fast_path: false`. */
  routes: App;
  routesUrl: string;
  lines: string[];
}

async function startPair(engine: Engine, overrides: Partial<ConfigInput> = {}): Promise<Pair> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-fast-path-"));
  writeFileSync(join(dir, "signing.key"), formatSigningKeyFile([generateSigningKey()]));
  const database = await freshDatabaseConfig(engine);
  const base = {
    server_name: "test.local",
    listen: { host: "127.0.0.1", port: 0 },
    database,
    media_store: { engine: "filesystem", path: join(dir, "media") },
    signing_key_path: join(dir, "signing.key"),
    shutdown_grace_period: "2s",
    ...overrides,
  } as const;
  const lines: string[] = [];
  const fastConfig = validateConfig(base);
  assert.equal(fastConfig.log_level, "info", "the shipped level");
  assert.equal(fastConfig.media_cache.fast_path, true, "the shipped default");
  const fast = createApp(fastConfig, createLogger("info", { write: (l: string) => lines.push(l) }));
  const routes = createApp(
    validateConfig({
      ...base,
      log_level: "silent",
      // Caches off too: on SQLite the two apps do not hear of each other's changes.
      media_cache: { fast_path: false, metadata_max_entries: 0, token_max_entries: 0 },
    }),
    createLogger("silent"),
  );
  const fastUrl = await fast.start();
  const routesUrl = await routes.start();
  return { fast, fastUrl, routes, routesUrl, lines };
}

async function token(app: App, localpart: string, admin = false): Promise<string> {
  const userId = await app.accounts.register({ localpart, password: "pw", admin });
  return (await app.accounts.issueToken(userId, "DEV")).accessToken;
}

async function png(size: number): Promise<Buffer> {
  return sharp({
    create: { width: size, height: size, channels: 3, background: { r: 200, g: 40, b: 90 } },
  })
    .png()
    .toBuffer();
}

/** GETs `path` until the fast path answers it (the caches fill on the routes' first answers). */
async function untilFast(baseUrl: string, path: string, route: string, headers = {}) {
  await waitFor(async () => {
    const before = await fastCount(baseUrl, route, "answered");
    const res = await rawGet(baseUrl, path, headers);
    assert.equal(res.status, 200);
    return (await fastCount(baseUrl, route, "answered")) === before + 1;
  }, "the fast path answers");
}

forEachEngine("serving fast path", (engine) => {
  let pair: Pair;
  let alice: string;
  let admin: string;
  let fileId: string;
  let imageId: string;
  const auth = () => ({ authorization: `Bearer ${alice}` });
  before(async () => {
    pair = await startPair(engine);
    alice = await token(pair.fast, "alice");
    admin = await token(pair.fast, "admin", true);
    const http = new HttpClient(pair.fastUrl, alice);
    fileId = await uploadBytes(http, Buffer.from("<html>not html to a browser</html>"), {
      contentType: "text/html",
      filename: "page.html",
    });
    imageId = await uploadBytes(http, await png(200), { contentType: "image/png" });
  });
  after(async () => {
    await pair.fast.stop();
    await pair.routes.stop();
  });

  const downloads = () =>
    [
      [`${V1}/download/test.local/${fileId}`, auth()],
      [`${V1}/download/test.local/${fileId}/other-name.txt`, auth()],
      [`${V1}/download/test.local/${fileId}?access_token=${alice}`, {}],
      [`/_matrix/media/v3/download/test.local/${fileId}?allow_remote=false`, {}],
    ] as const;

  it("answers a cached download exactly as the routes do", async () => {
    // The legacy path refuses media uploaded as authenticated; make it visible there too.
    for (const [path, headers] of downloads()) {
      const routes = await rawGet(pair.routesUrl, path, headers);
      if (routes.status !== 200) {
        // Legacy + authenticated media: a 404 the fast path must leave to the routes.
        const before = await fastCount(pair.fastUrl, "download", "answered");
        assert.deepEqual(await rawGet(pair.fastUrl, path, headers), routes);
        assert.equal(await fastCount(pair.fastUrl, "download", "answered"), before, path);
        continue;
      }
      await untilFast(pair.fastUrl, path, "download", headers);
      const before = await fastCount(pair.fastUrl, "download", "answered");
      const fast = await rawGet(pair.fastUrl, path, headers);
      assert.equal(await fastCount(pair.fastUrl, "download", "answered"), before + 1, path);
      assert.deepEqual(fast, routes, path);
      // And the same server's routes, reached with a header the fast path leaves alone.
      const viaRoutes = await rawGet(pair.fastUrl, path, { ...headers, "if-none-match": '"x"' });
      assert.equal(await fastCount(pair.fastUrl, "download", "answered"), before + 1);
      assert.deepEqual(fast, viaRoutes, path);
    }
  });

  it("answers a stored thumbnail exactly as the routes do", async () => {
    const path = `${V1}/thumbnail/test.local/${imageId}?width=32&height=32&method=crop`;
    // Pre-generation runs after the upload: wait for the stored 32×32 row.
    await untilFast(pair.fastUrl, path, "thumbnail", auth());
    const before = await fastCount(pair.fastUrl, "thumbnail", "answered");
    const fast = await rawGet(pair.fastUrl, path, auth());
    assert.equal(await fastCount(pair.fastUrl, "thumbnail", "answered"), before + 1);
    assert.equal(fast.status, 200);
    assert.equal((await sharp(fast.body).metadata()).width, 32);
    assert.deepEqual(fast, await rawGet(pair.routesUrl, path, auth()));
    assert.deepEqual(fast, await rawGet(pair.fastUrl, path, { ...auth(), "if-none-match": "x" }));
  });

  it("counts an answer in the HTTP and cache metrics as the routes do", async () => {
    const path = `${V1}/download/test.local/${fileId}`;
    await untilFast(pair.fastUrl, path, "download", auth());
    const names =
      /^mxcd_(http_requests_total|http_request_duration_seconds_count|cache_requests_total|media_byte_cache_requests_total)/;
    const s0 = await samples(pair.fastUrl);
    await rawGet(pair.fastUrl, path, { ...auth(), "if-none-match": "x" }); // the routes
    const s1 = await samples(pair.fastUrl);
    await rawGet(pair.fastUrl, path, auth()); // the fast path
    const s2 = await samples(pair.fastUrl);
    const viaRoutes = changed(s0, s1, names);
    const viaFast = changed(s1, s2, names);
    // The /metrics reads themselves are counted once per read in both.
    assert.deepEqual(viaFast, viaRoutes);
    assert.equal(
      viaFast[
        'mxcd_http_requests_total{method="GET",route="/_matrix/client/v1/media/download/:serverName/:mediaId",status="200"}'
      ],
      1,
    );
    assert.equal(
      changed(s1, s2, /^mxcd_fast_path/)[`${FAST}{route="download",result="answered"}`],
      1,
    );
  });

  it("logs one line like the routes' line, with the query token masked", async () => {
    const path = `${V1}/download/test.local/${fileId}?access_token=${alice}`;
    await untilFast(pair.fastUrl, path, "download");
    const from = pair.lines.length;
    await rawGet(pair.fastUrl, path); // the fast path
    await rawGet(pair.fastUrl, path, { "if-none-match": "x" }); // the routes
    const logged = pair.lines.slice(from).map((line) => JSON.parse(line));
    assert.equal(logged.length, 2, JSON.stringify(logged));
    const [fast, routes] = logged;
    for (const line of [fast, routes]) {
      assert.ok(!JSON.stringify(line).includes(alice), "the token is not logged");
      assert.match(line.req.url, /access_token=<redacted>$/);
    }
    // Same keys in the same order, same values but for the id, time and duration.
    const shape = (line: Record<string, unknown>) =>
      JSON.stringify({
        ...line,
        time: 0,
        reqId: "",
        req: { ...(line.req as object), id: "" },
        responseTime: 0,
      });
    assert.deepEqual(Object.keys(fast), Object.keys(routes));
    assert.equal(shape(fast), shape(routes));
    assert.notEqual(fast.reqId, routes.reqId, "request ids stay unique");
  });

  it("leaves Range and If-None-Match to the routes, which answer as before", async () => {
    const path = `${V1}/download/test.local/${fileId}`;
    await untilFast(pair.fastUrl, path, "download", auth());
    const before = await fastCount(pair.fastUrl, "download", "answered");
    const extras: Record<string, string>[] = [
      { range: "bytes=2-5" },
      { "if-none-match": '"1"' },
      { range: "bytes=999-" },
    ];
    for (const extra of extras) {
      const headers = { ...auth(), ...extra };
      const fast = await rawGet(pair.fastUrl, path, headers);
      assert.deepEqual(fast, await rawGet(pair.routesUrl, path, headers));
      assert.ok([206, 304, 416].includes(fast.status), String(fast.status));
    }
    assert.equal(await fastCount(pair.fastUrl, "download", "answered"), before);
  });

  it("sees quarantine, unquarantine, logout and deletion at once", async () => {
    const http = new HttpClient(pair.fastUrl, alice);
    const id = await uploadBytes(http, Buffer.from("soon quarantined"), {
      contentType: "text/plain",
    });
    const path = `${V1}/download/test.local/${id}`;
    const thumbId = await uploadBytes(http, await png(100), { contentType: "image/png" });
    const thumbPath = `${V1}/thumbnail/test.local/${thumbId}?width=32&height=32&method=crop`;
    await untilFast(pair.fastUrl, path, "download", auth());
    await untilFast(pair.fastUrl, thumbPath, "thumbnail", auth());
    const adminHttp = new HttpClient(pair.fastUrl, admin);
    const answered = async () =>
      (await fastCount(pair.fastUrl, "download", "answered")) +
      (await fastCount(pair.fastUrl, "thumbnail", "answered"));
    const n = await answered();
    const same = async (p: string, headers: Record<string, string>, status: number) => {
      const fast = await rawGet(pair.fastUrl, p, headers);
      assert.equal(fast.status, status, p);
      assert.deepEqual(fast, await rawGet(pair.routesUrl, p, headers));
    };
    assert.equal((await adminHttp.post(`${ADMIN}/media/quarantine/test.local/${id}`)).status, 200);
    assert.equal(
      (await adminHttp.post(`${ADMIN}/media/quarantine/test.local/${thumbId}`)).status,
      200,
    );
    for (let i = 0; i < 2; i++) {
      // The first 404 caches the quarantined row; the second finds it cached.
      await same(path, auth(), 404);
      await same(thumbPath, auth(), 404);
    }
    assert.equal(await answered(), n, "quarantined media never answered by the fast path");
    // Unquarantined: served again (by the routes first, refilling the caches).
    assert.equal(
      (await adminHttp.post(`${ADMIN}/media/unquarantine/test.local/${id}`)).status,
      200,
    );
    await untilFast(pair.fastUrl, path, "download", auth());
    // Deleted.
    assert.equal((await adminHttp.delete(`${ADMIN}/media/test.local/${id}`)).status, 200);
    const m = await answered();
    await same(path, auth(), 404);
    assert.equal(await answered(), m, "deleted media never answered by the fast path");
    // Logged out: the token is refused with the routes' 401.
    const bob = await token(pair.fast, "bob");
    const bobAuth = { authorization: `Bearer ${bob}` };
    await untilFast(pair.fastUrl, `${V1}/download/test.local/${fileId}`, "download", bobAuth);
    const res = await fetch(new URL("/_matrix/client/v3/logout", pair.fastUrl), {
      method: "POST",
      headers: { ...bobAuth, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 200);
    const k = await answered();
    await same(`${V1}/download/test.local/${fileId}`, bobAuth, 401);
    await same(`${V1}/download/test.local/${fileId}?access_token=${bob}`, {}, 401);
    assert.equal(await answered(), k, "a logged-out token never answered by the fast path");
  });

  it("gives hostile paths the routes' answer, never its own", async () => {
    const path = `${V1}/download/test.local/${fileId}`;
    await untilFast(pair.fastUrl, path, "download", auth());
    const before = await fastCount(pair.fastUrl, "download", "answered");
    const hostile = [
      `${V1}/download/test.local/${fileId}%2F..%2F..%2Fetc`,
      `${V1}/download/test.local%2F${fileId}`,
      `${V1}/download/test.local/${"a".repeat(300)}`,
      `${V1}/download/test.local/${fileId}/..`,
      `${V1}/download/test.local/../${fileId}`,
      `${V1}/download/test.local/${fileId}/%2e%2e`,
      `${V1}/download/test.local//${fileId}`,
      `${V1}/download/test.local/${fileId};x`,
      `${V1}/download/test.local/${fileId}?admin_unsafely_bypass_quarantine=true`,
      `${V1}/download/test.local/${fileId}?access%5Ftoken=${alice}`,
      `${V1}/download/test.local/${fileId}?timeout_ms=-1`,
      `${V1}/thumbnail/test.local/${imageId}?width=0&height=32`,
      `${V1}/thumbnail/test.local/${imageId}?width=32&height=32&method=crop&method=scale`,
    ];
    for (const p of hostile) {
      const fast = await rawGet(pair.fastUrl, p, auth());
      assert.deepEqual(fast, await rawGet(pair.routesUrl, p, auth()), p);
    }
    assert.equal(await fastCount(pair.fastUrl, "download", "answered"), before);
  });
});

forEachEngine("serving fast path with expired cache entries", (engine) => {
  // Every cached entry expires after 1 ms: each request finds its token
  // owner, row and thumbnail list expired (or missing), never fresh.
  let pair: Pair;
  let alice: string;
  let admin: string;
  const auth = () => ({ authorization: `Bearer ${alice}` });
  before(async () => {
    pair = await startPair(engine, { media_cache: { metadata_ttl: "1ms" } });
    alice = await token(pair.fast, "alice");
    admin = await token(pair.fast, "admin", true);
  });
  after(async () => {
    await pair.fast.stop();
    await pair.routes.stop();
  });

  it("re-reads an expired entry itself and answers as the routes do", async () => {
    const http = new HttpClient(pair.fastUrl, alice);
    const id = await uploadBytes(http, Buffer.from("read again"), { contentType: "text/plain" });
    const imageId = await uploadBytes(http, await png(100), { contentType: "image/png" });
    const cases = [
      [`${V1}/download/test.local/${id}`, "download"],
      [`${V1}/thumbnail/test.local/${imageId}?width=32&height=32&method=crop`, "thumbnail"],
    ] as const;
    for (const [path, route] of cases) {
      // The first answers cache the entries (the routes'); later ones find them expired.
      await untilFast(pair.fastUrl, path, route, auth());
      const before = await fastCount(pair.fastUrl, route, "answered");
      const fast = await rawGet(pair.fastUrl, path, auth());
      assert.equal(await fastCount(pair.fastUrl, route, "answered"), before + 1, path);
      assert.deepEqual(fast, await rawGet(pair.routesUrl, path, auth()), path);
    }
  });

  it("sees a quarantine, a deletion and a logout it was not told of", async () => {
    // The routes server changes the database: on SQLite its changes reach the
    // fast server through nothing but the caches' lifetime (a lost notification).
    const http = new HttpClient(pair.fastUrl, alice);
    const id = await uploadBytes(http, Buffer.from("quarantined elsewhere"), {
      contentType: "text/plain",
    });
    const gone = await uploadBytes(http, Buffer.from("deleted elsewhere"), {
      contentType: "text/plain",
    });
    const kept = await uploadBytes(http, Buffer.from("kept"), { contentType: "text/plain" });
    const path = `${V1}/download/test.local/${id}`;
    const gonePath = `${V1}/download/test.local/${gone}`;
    const keptPath = `${V1}/download/test.local/${kept}`;
    const bob = await token(pair.fast, "bob");
    const bobAuth = { authorization: `Bearer ${bob}` };
    await untilFast(pair.fastUrl, path, "download", auth());
    await untilFast(pair.fastUrl, gonePath, "download", auth());
    await untilFast(pair.fastUrl, keptPath, "download", bobAuth);
    const elsewhere = new HttpClient(pair.routesUrl, admin);
    const quarantine = `${ADMIN}/media/quarantine/test.local/${id}`;
    assert.equal((await elsewhere.post(quarantine)).status, 200);
    assert.equal((await elsewhere.delete(`${ADMIN}/media/test.local/${gone}`)).status, 200);
    const logout = await fetch(new URL("/_matrix/client/v3/logout", pair.routesUrl), {
      method: "POST",
      headers: { ...bobAuth, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(logout.status, 200);
    const n = await fastCount(pair.fastUrl, "download", "answered");
    for (const [p, headers, status] of [
      [path, auth(), 404],
      [gonePath, auth(), 404],
      [keptPath, bobAuth, 401],
    ] as const) {
      for (let i = 0; i < 2; i++) {
        const fast = await rawGet(pair.fastUrl, p, headers);
        assert.equal(fast.status, status, p);
        assert.deepEqual(fast, await rawGet(pair.routesUrl, p, headers), p);
      }
    }
    assert.equal(await fastCount(pair.fastUrl, "download", "answered"), n, "none answered");
  });
});

describe("serving fast path behind nginx's accel_redirect", () => {
  let pair: Pair;
  let alice: string;
  before(async () => {
    pair = await startPair("sqlite", {
      media_store: {
        engine: "filesystem",
        path: mkdtempSync(join(tmpdir(), "mxcd-fast-accel-")),
        accel_redirect: { location: "/_mxcd_internal/" },
      },
    });
    alice = await token(pair.fast, "alice");
  });
  after(async () => {
    await pair.fast.stop();
    await pair.routes.stop();
  });

  it("answers X-Accel-Redirect exactly as the routes do", async () => {
    const auth = { authorization: `Bearer ${alice}` };
    const id = await uploadBytes(new HttpClient(pair.fastUrl, alice), Buffer.alloc(5000, 1), {
      contentType: "application/octet-stream",
    });
    const path = `${V1}/download/test.local/${id}`;
    await untilFast(pair.fastUrl, path, "download", auth);
    const before = await fastCount(pair.fastUrl, "download", "answered");
    const fast = await rawGet(pair.fastUrl, path, auth);
    assert.equal(await fastCount(pair.fastUrl, "download", "answered"), before + 1);
    assert.ok(fast.headers.some(([name]) => name === "x-accel-redirect"));
    assert.deepEqual(fast, await rawGet(pair.routesUrl, path, auth));
  });

  it("never redirects to quarantined media, whose row stays cached", async () => {
    // No byte cache here: only the row's quarantine mark stands between a
    // cached row and an X-Accel-Redirect to the file.
    const auth = { authorization: `Bearer ${alice}` };
    const id = await uploadBytes(new HttpClient(pair.fastUrl, alice), Buffer.alloc(100, 2), {
      contentType: "application/octet-stream",
    });
    const path = `${V1}/download/test.local/${id}`;
    await untilFast(pair.fastUrl, path, "download", auth);
    const admin = await token(pair.fast, "admin", true);
    const quarantine = `${ADMIN}/media/quarantine/test.local/${id}`;
    assert.equal((await new HttpClient(pair.fastUrl, admin).post(quarantine)).status, 200);
    const before = await fastCount(pair.fastUrl, "download", "answered");
    // The first 404 reads the quarantined row into the cache; the rest find it there.
    for (let i = 0; i < 3; i++) {
      const fast = await rawGet(pair.fastUrl, path, auth);
      assert.equal(fast.status, 404);
      assert.deepEqual(fast, await rawGet(pair.routesUrl, path, auth));
    }
    assert.equal(await fastCount(pair.fastUrl, "download", "answered"), before);
  });
});

describe("serving fast path with listen.x_forwarded", () => {
  let pair: Pair;
  let alice: string;
  before(async () => {
    pair = await startPair("sqlite", {
      listen: { host: "127.0.0.1", port: 0, x_forwarded: true },
    });
    alice = await token(pair.fast, "alice");
  });
  after(async () => {
    await pair.fast.stop();
    await pair.routes.stop();
  });

  it("leaves requests with X-Forwarded-For to the routes, which log the forwarded address", async () => {
    const auth = { authorization: `Bearer ${alice}` };
    const id = await uploadBytes(new HttpClient(pair.fastUrl, alice), Buffer.alloc(64, 3));
    const path = `${V1}/download/test.local/${id}`;
    await untilFast(pair.fastUrl, path, "download", auth);
    const before = await fastCount(pair.fastUrl, "download", "answered");
    const from = pair.lines.length;
    const res = await rawGet(pair.fastUrl, path, { ...auth, "x-forwarded-for": "203.0.113.7" });
    assert.equal(res.status, 200);
    assert.equal(await fastCount(pair.fastUrl, "download", "answered"), before);
    const line = pair.lines
      .slice(from)
      .map((l) => JSON.parse(l))
      .find((l) => l.req?.url === path);
    assert.equal(line?.req.remoteAddress, "203.0.113.7");
  });
});

describe("which URLs the fast path reads", () => {
  it("reads the routes' plain URLs as the router and query parser do", () => {
    const v1 = parseFastPathRequest("/_matrix/client/v1/media/download/example.org:8448/abc_D-1");
    assert.equal(v1?.serverName, "example.org:8448");
    assert.equal(v1?.route, "/_matrix/client/v1/media/download/:serverName/:mediaId");
    const named = parseFastPathRequest(
      "/_matrix/media/r0/download/s.org/abc/a.b?allow_remote=true",
    );
    assert.equal(named?.route, "/_matrix/media/r0/download/:serverName/:mediaId/:fileName");
    assert.equal(named?.fileName, "a.b");
    const thumb = parseFastPathRequest(
      "/_matrix/client/v1/media/thumbnail/s.org/abc?width=20000&height=7&method=crop&access_token=t",
    );
    assert.deepEqual(thumb?.thumbnail, {
      width: 10_000,
      height: 7,
      method: "crop",
      animated: false,
    });
    assert.equal(thumb?.queryToken, "t");
  });

  it("refuses everything else", () => {
    for (const url of [
      "/_matrix/client/v1/media/download/s.org/a:b",
      "/_matrix/client/v1/media/download/s.org/abc/x:y",
      "/_matrix/client/v1/media/download/s.org/abc/",
      "/_matrix/client/v1/media/download/s.org/abc/x/y",
      "/_matrix/client/v1/media/thumbnail/s.org/abc/x?width=1&height=1",
      "/_matrix/client/v1/media/thumbnail/s.org/abc?width=1",
      "/_matrix/client/v1/media/download/s.org/abc?access_token=a+b",
      "/_matrix/client/v1/media/download/s.org/abc?access_token=a&access_token=b",
      "/_matrix/client/v1/media/download/s.org/abc?allow_remote=yes",
      "/_matrix/client/v1/media/download/s.org/abc?x",
      "/_matrix/client/v1/media/upload/s.org/abc",
      "/_matrix/media/v4/download/s.org/abc",
      `/_matrix/client/v1/media/download/s.org/${"a".repeat(256)}`,
    ]) {
      assert.equal(parseFastPathRequest(url), undefined, url);
    }
  });

  it("remembers what it accepted, without tokens, and answers as the parser does", () => {
    const parse = rememberingRequestParser(3);
    const thumb = "/_matrix/client/v1/media/thumbnail/s.org/abc";
    const urls = [
      `${thumb}?width=32&height=32&method=crop`,
      `${thumb}?width=96&height=96&method=crop`,
      `${thumb}?width=96&height=96&method=scale&animated=true`,
      "/_matrix/client/v1/media/download/s.org/abc",
      "/_matrix/media/v3/download/s.org/abc/a.txt?allow_remote=false",
      "/_matrix/client/v1/media/download/s.org/abc?access_token=secret",
      "/_matrix/client/v1/media/download/s.org/abc?x",
    ];
    // Three rounds over more URLs than it keeps: remembered, forgotten, read again.
    for (let round = 0; round < 3; round++) {
      for (const url of urls) assert.deepEqual(parse(url), parseFastPathRequest(url), url);
    }
    const plain = urls[0]!;
    assert.equal(parse(plain), parse(plain), "a remembered answer is the same object");
    assert.ok(Object.isFrozen(parse(plain)) && Object.isFrozen(parse(plain)?.thumbnail));
    const token = urls[5]!;
    assert.notEqual(parse(token), parse(token), "a URL with a token is read every time");
  });
});

describe("the fast path's request line", () => {
  const fields = {
    id: "req-7",
    method: "GET",
    url: "/_matrix/client/v1/media/download/s.org/abc?access_token=secret&timeout_ms=5",
    remoteAddress: "127.0.0.1",
    statusCode: 200,
    responseTime: 0.25,
  };
  /** The line pino itself writes for the routes: Fastify's child logger, the same object. */
  const viaPino = (logger: ReturnType<typeof createLogger>) =>
    logger.child({ reqId: fields.id }).info(
      {
        req: { id: fields.id, method: fields.method, url: fields.url, ip: fields.remoteAddress },
        res: { statusCode: fields.statusCode },
        responseTime: fields.responseTime,
      },
      "request completed",
    );
  const withoutTime = (line: string) => line.replace(/"time":\d+,/, "");

  it("is the line pino writes, with redact, byte for byte but for the time", () => {
    const lines: string[] = [];
    const logger = createLogger("info", { write: (l: string) => lines.push(l) });
    requestLogWriter(logger)(fields);
    viaPino(logger);
    assert.equal(lines.length, 2);
    assert.equal(withoutTime(lines[0]!), withoutTime(lines[1]!));
    assert.ok(!lines[0]!.includes("secret"), lines[0]);
    // Nothing at warn.
    logger.level = "warn";
    requestLogWriter(logger)(fields);
    assert.equal(lines.length, 2);
  });

  it("falls back to pino itself for a logger it cannot reproduce", () => {
    const lines: string[] = [];
    const logger = pino(
      {
        mixin: () => ({ extra: 1 }),
        serializers: { req: (r: { url: string }) => ({ url: maskUrlSecrets(r.url) }) },
      },
      { write: (l: string) => lines.push(l) },
    );
    requestLogWriter(logger)(fields);
    const line = JSON.parse(lines[0]!);
    assert.equal(line.extra, 1);
    assert.equal(line.reqId, "req-7");
    assert.match(line.req.url, /access_token=<redacted>&timeout_ms=5$/);
  });
});
