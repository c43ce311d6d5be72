/**
 * The serving fast path (docs/deployment.md, "Serving fast path"): the byte
 * cache of small blobs and thumbnails, and one log line per request.
 *
 * The cache is observed through `/metrics` (hits, misses, bytes held) and by
 * removing a file underneath the server: only a blob the cache legitimately
 * holds can still be served then. Deletion and quarantine through mxcd must
 * win over cached bytes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { type App, createApp } from "../src/app.js";
import { validateConfig } from "../src/config/load-config.js";
import type { Engine } from "../src/db/database.js";
import { formatSigningKeyFile, generateSigningKey } from "../src/federation/signing-key.js";
import { createLogger } from "../src/logging/logger.js";
import { CachingBlobStore } from "../src/storage/caching-blob-store.js";
import { createBlobStore } from "../src/storage/create-blob-store.js";
import { MediaByteCache } from "../src/storage/media-byte-cache.js";
import { localMediaKey } from "../src/storage/media-paths.js";
import { MemoryBlobStore } from "../src/storage/memory/memory-blob-store.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { HttpClient } from "./support/http-client.js";
import { download, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const V1 = "/_matrix/client/v1/media";
const ADMIN = "/_synapse/admin/v1";
const BYTES = "mxcd_media_byte_cache_bytes";
const REQUESTS = "mxcd_media_byte_cache_requests_total";

const hits = (server: TestServer) => metric(server.baseUrl, REQUESTS, 'result="hit"');
const misses = (server: TestServer) => metric(server.baseUrl, REQUESTS, 'result="miss"');
const held = (server: TestServer) => metric(server.baseUrl, BYTES);

function pattern(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed * 7) & 0xff;
  return bytes;
}

/**
 * Removes a local media item's bytes from the store underneath mxcd — with a
 * store of its own, so the app's byte cache does not hear of it (the test
 * server's store: the filesystem, or S3 in the S3 pass).
 */
async function removeUnderneath(server: TestServer, mediaId: string): Promise<void> {
  await createBlobStore(server.app.config.media_store).delete(localMediaKey(mediaId, null));
}

const get = (server: TestServer, user: TestUser, id: string, headers?: Record<string, string>) =>
  download(server.baseUrl, `${V1}/download/test.local/${id}`, {
    token: user.token,
    ...(headers && { headers }),
  });

forEachEngine("media byte cache", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let admin: TestUser;
  before(async () => {
    // Thumbnails only on request, so no background write races the counters.
    server = await startTestServer(engine, {
      media_cache: { max_bytes: 64 * 1024, max_item_bytes: 16 * 1024 },
      thumbnail_sizes: [],
      dynamic_thumbnails: true,
    });
    alice = await server.user("alice");
    admin = await server.user("admin", { admin: true });
  });
  after(() => server.stop());

  it("serves a cached blob without opening its file", async () => {
    const bytes = pattern(4096, 1);
    const id = await uploadBytes(alice.http, bytes, { contentType: "image/png" });
    const [hits0, misses0] = [await hits(server), await misses(server)];
    const first = await get(server, alice, id);
    assert.equal(first.status, 200);
    assert.deepEqual(first.bytes, bytes);
    assert.equal(await misses(server), misses0 + 1);
    // The file goes away underneath mxcd: only the cache can still answer.
    await removeUnderneath(server, id);
    const second = await get(server, alice, id);
    assert.equal(second.status, 200);
    assert.deepEqual(second.bytes, bytes);
    assert.equal(second.headers.get("content-length"), "4096");
    assert.equal(second.headers.get("x-content-type-options"), "nosniff");
    assert.equal(second.headers.get("content-disposition"), "inline");
    assert.equal(await hits(server), hits0 + 1);
  });

  it("cuts ranges from a cached blob", async () => {
    const bytes = pattern(5000, 2);
    const id = await uploadBytes(alice.http, bytes);
    assert.equal((await get(server, alice, id)).status, 200);
    await removeUnderneath(server, id);
    const hits0 = await hits(server);
    const middle = await get(server, alice, id, { range: "bytes=100-1099" });
    assert.equal(middle.status, 206);
    assert.equal(middle.headers.get("content-range"), "bytes 100-1099/5000");
    assert.deepEqual(middle.bytes, bytes.subarray(100, 1100));
    const suffix = await get(server, alice, id, { range: "bytes=-10" });
    assert.equal(suffix.status, 206);
    assert.deepEqual(suffix.bytes, bytes.subarray(4990));
    const beyond = await get(server, alice, id, { range: "bytes=5000-" });
    assert.equal(beyond.status, 416);
    assert.equal(await hits(server), hits0 + 2);
  });

  it("never serves cached bytes of deleted media, and lets them go", async () => {
    const bytes = pattern(8000, 3);
    const id = await uploadBytes(alice.http, bytes);
    assert.equal((await get(server, alice, id)).status, 200);
    const before = await held(server);
    assert.ok(before >= 8000, `the blob is held (${before})`);
    const res = await admin.http.delete(`${ADMIN}/media/test.local/${id}`);
    assert.equal(res.status, 200, res.text);
    assert.equal((await get(server, alice, id)).status, 404);
    assert.equal(await held(server), before - 8000);
  });

  it("never serves cached bytes of quarantined media; the admin bypass still streams", async () => {
    const bytes = pattern(6000, 4);
    const id = await uploadBytes(alice.http, bytes);
    assert.equal((await get(server, alice, id)).status, 200);
    assert.equal((await get(server, alice, id)).status, 200);
    const before = await held(server);
    assert.ok(before >= 6000, `the blob is held (${before})`);
    const res = await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`);
    assert.equal(res.status, 200, res.text);
    // The quarantine's announcement (MediaChanges) drops the bytes from
    // memory before the admin call answers.
    assert.equal(await held(server), before - 6000);
    const refused = await get(server, alice, id);
    assert.equal(refused.status, 404);
    assert.equal(JSON.parse(refused.bytes.toString()).errcode, "M_NOT_FOUND");
    const legacy = await download(server.baseUrl, `/_matrix/media/v3/download/test.local/${id}`);
    assert.equal(legacy.status, 404);
    const bypass = await download(
      server.baseUrl,
      `${V1}/download/test.local/${id}?admin_unsafely_bypass_quarantine=true`,
      { token: admin.token },
    );
    assert.equal(bypass.status, 200);
    assert.deepEqual(bypass.bytes, bytes);
  });

  it("caches thumbnails, and drops them with their media", async () => {
    const png = await sharp({
      create: { width: 200, height: 200, channels: 3, background: { r: 10, g: 200, b: 90 } },
    })
      .png()
      .toBuffer();
    const id = await uploadBytes(alice.http, png, { contentType: "image/png" });
    const path = `${V1}/thumbnail/test.local/${id}?width=32&height=32&method=crop`;
    const first = await download(server.baseUrl, path, { token: alice.token });
    assert.equal(first.status, 200);
    assert.equal(first.headers.get("content-type"), "image/png");
    const hits0 = await hits(server);
    const second = await download(server.baseUrl, path, { token: alice.token });
    assert.deepEqual(second.bytes, first.bytes);
    assert.equal(await hits(server), hits0 + 1);
    const heldBefore = await held(server);
    await admin.http.delete(`${ADMIN}/media/test.local/${id}`);
    assert.equal((await download(server.baseUrl, path, { token: alice.token })).status, 404);
    assert.equal(await held(server), heldBefore - first.bytes.length);
  });

  it("stays within max_bytes under a stream of distinct items", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) ids.push(await uploadBytes(alice.http, pattern(10_000, 10 + i)));
    // Eight at a time, twice over, sampling the gauge after every answer.
    let highest = 0;
    for (let round = 0; round < 2; round++) {
      for (let at = 0; at < ids.length; at += 8) {
        await Promise.all(
          ids.slice(at, at + 8).map(async (id, i) => {
            const res = await get(server, alice, id);
            assert.deepEqual(res.bytes, pattern(10_000, 10 + at + i));
            highest = Math.max(highest, await held(server));
          }),
        );
      }
    }
    assert.ok(highest > 0 && highest <= 64 * 1024, `held at most max_bytes (${highest})`);
  });

  it("sends nosniff on every media-path answer, whether a route answers or not", async () => {
    const id = await uploadBytes(alice.http, pattern(64, 8));
    const answers = [
      ["GET", `${V1}/download/test.local/${id}`, 200],
      ["HEAD", `${V1}/download/test.local/${id}`, 200],
      ["GET", `${V1}/download/test.local/NoSuchMedia`, 404],
      ["GET", `${V1}/download/test.local/${id}?admin_unsafely_bypass_quarantine=true`, 400],
      ["GET", "/_matrix/media/v3/no_such_endpoint", 404],
      ["POST", `${V1}/download/test.local/${id}`, 405],
      ["GET", `${V1}/thumbnail/test.local/${id}?width=x`, 400],
      ["GET", `/_matrix/media/v3/download/test.local/${"%"}zz`, 400],
    ] as const;
    for (const [method, path, status] of answers) {
      const res = await alice.http.request(method, path);
      assert.equal(res.status, status, `${method} ${path}`);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff", `${method} ${path}`);
    }
    const other = await alice.http.get("/_matrix/client/versions");
    assert.equal(other.headers.get("x-content-type-options"), null, "only media paths");
  });

  it("never keeps a blob above max_item_bytes", async () => {
    const id = await uploadBytes(alice.http, pattern(20_000, 5));
    const [held0, misses0] = [await held(server), await misses(server)];
    const res = await get(server, alice, id);
    assert.deepEqual(res.bytes, pattern(20_000, 5));
    assert.equal(await misses(server), misses0);
    assert.equal(await held(server), held0);
    await removeUnderneath(server, id);
    assert.equal((await get(server, alice, id)).status, 404);
  });
});

forEachEngine("media byte cache off", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer(engine, { media_cache: { max_bytes: 0 } });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  it("reads the store every time with max_bytes: 0", async () => {
    const id = await uploadBytes(alice.http, pattern(4096, 6));
    assert.equal((await get(server, alice, id)).status, 200);
    await removeUnderneath(server, id);
    assert.equal((await get(server, alice, id)).status, 404);
    assert.equal(await held(server), 0);
    assert.equal(await misses(server), 0);
  });
});

describe("MediaByteCache", () => {
  const owner = { kind: "local", mediaId: "m1" } as const;
  const open = (bytes: Buffer) => async () => Readable.from([bytes]);

  it("evicts by media, local and remote, and clears", async () => {
    const cache = new MediaByteCache({ maxBytes: 1000, maxItemBytes: 100 });
    await cache.get("a", owner, 3, open(Buffer.from("abc")));
    await cache.get("a/t", owner, 2, open(Buffer.from("de")));
    await cache.get("b", { kind: "local", mediaId: "m2" }, 1, open(Buffer.from("f")));
    await cache.get(
      "r",
      { kind: "remote", origin: "o.example", mediaId: "m1" },
      1,
      open(Buffer.from("g")),
    );
    assert.equal(cache.bytes, 7);
    cache.evict({ kind: "local", mediaId: "m1" });
    assert.equal(cache.bytes, 2);
    assert.equal(cache.peek("b")?.toString(), "f");
    cache.evict({ kind: "remote", origin: "o.example", mediaId: "m1" });
    assert.equal(cache.bytes, 1);
    cache.clear();
    assert.equal(cache.bytes, 0);
  });

  it("does not keep a fill that raced a delete of its key", async () => {
    const cache = new MediaByteCache({ maxBytes: 1000, maxItemBytes: 100 });
    const inner = new MemoryBlobStore();
    const store = new CachingBlobStore(inner, cache);
    await store.write("k", Readable.from([Buffer.from("old")]));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const fill = cache.get("k", owner, 3, async () => {
      const stream = await store.read("k");
      await gate;
      return stream;
    });
    await store.delete("k");
    release();
    assert.equal((await fill)?.toString(), "old");
    assert.equal(cache.peek("k"), undefined);
    assert.equal(cache.bytes, 0);
  });

  it("does not keep bytes whose length differs from the row's", async () => {
    const cache = new MediaByteCache({ maxBytes: 1000, maxItemBytes: 100 });
    assert.equal(await cache.get("k", owner, 4, open(Buffer.from("abc"))), undefined);
    assert.equal(await cache.get("k", owner, 2, open(Buffer.from("abc"))), undefined);
    assert.equal(cache.bytes, 0);
  });
});

/** A server logging at the default level into `lines`. */
async function loggingServer(engine: Engine, lines: string[]): Promise<App> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-log-lines-"));
  writeFileSync(join(dir, "signing.key"), formatSigningKeyFile([generateSigningKey()]));
  const config = validateConfig({
    server_name: "test.local",
    listen: { host: "127.0.0.1", port: 0 },
    database: await freshDatabaseConfig(engine),
    media_store: { engine: "filesystem", path: join(dir, "media") },
    signing_key_path: join(dir, "signing.key"),
    shutdown_grace_period: "2s",
  });
  assert.equal(config.log_level, "info", "the default level");
  return createApp(config, createLogger(config.log_level, { write: (l: string) => lines.push(l) }));
}

forEachEngine("request logging", (engine) => {
  const lines: string[] = [];
  let app: App;
  let http: HttpClient;
  let token: string;
  before(async () => {
    app = await loggingServer(engine, lines);
    http = new HttpClient(await app.start());
    const userId = await app.accounts.register({ localpart: "bob", password: "pw", admin: false });
    token = (await app.accounts.issueToken(userId, "DEV")).accessToken;
  });
  after(() => app.stop());

  it("writes one line per request, with its id, method, masked URL, status and time", async () => {
    const id = await uploadBytes(http.withToken(token), pattern(100, 7));
    const from = lines.length;
    const res = await download(
      http.baseUrl,
      `${V1}/download/test.local/${id}?access_token=${token}`,
    );
    assert.equal(res.status, 200);
    const logged = lines.slice(from).map((line) => JSON.parse(line));
    assert.equal(logged.length, 1, JSON.stringify(logged));
    const [line] = logged;
    assert.equal(line.msg, "request completed");
    assert.equal(line.req.method, "GET");
    assert.ok(line.reqId, "the request id");
    assert.equal(line.res.statusCode, 200);
    assert.equal(typeof line.responseTime, "number");
    assert.match(line.req.url, /access_token=<redacted>/);
    assert.ok(!JSON.stringify(line).includes(token), "the token is not logged");
  });
});
