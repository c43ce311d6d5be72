/**
 * `media_store.accel_redirect` with a real nginx, configured by the same
 * function `mxcd proxy-config nginx` prints from: after every check mxcd
 * answers with `X-Accel-Redirect` and nginx sends the file from its internal
 * location. Through nginx a client must see the same bytes and headers as
 * from mxcd without accel; quarantine still answers 404 JSON; the admin
 * bypass is streamed by mxcd; the internal location is closed to clients.
 *
 * Needs nginx (`apt-get install nginx-light`); without it the suite is
 * skipped loudly, and under CI=true that is a failure.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { nginxProxyConfig } from "../src/http/nginx-proxy-config.js";
import { localMediaKey } from "../src/storage/media-paths.js";
import { runCli } from "./support/cli.js";
import { forEachEngine } from "./support/databases.js";
import { download, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { findNginx, type RunningNginx, startNginx } from "./support/nginx.js";
import { REPO_URL } from "./support/repo-url.js";
import { markSuiteRan } from "./support/run-markers.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const V1 = "/_matrix/client/v1/media";
const ADMIN = "/_synapse/admin/v1";
const LOCATION = "/_mxcd_internal/";

/** Headers a client must see the same through nginx (with accel) as from mxcd (without). */
const COMPARED = [
  "content-type",
  "content-disposition",
  "content-length",
  "content-security-policy",
  "x-content-security-policy",
  "referrer-policy",
  "cross-origin-resource-policy",
  "x-robots-tag",
  "cache-control",
  "x-content-type-options",
  "etag",
  "accept-ranges",
  "access-control-allow-origin",
  "access-control-allow-methods",
  "access-control-allow-headers",
  "access-control-expose-headers",
  "last-modified",
  "x-accel-redirect",
];

const nginxBinary = findNginx();
if (!nginxBinary && process.env.CI === "true") {
  throw new Error("nginx is required under CI=true (apt-get install nginx-light)");
}

function pattern(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 13 + seed) & 0xff;
  return bytes;
}

function pick(headers: Headers): Record<string, string | null> {
  return Object.fromEntries(COMPARED.map((name) => [name, headers.get(name)]));
}

forEachEngine("media_store.accel_redirect behind nginx", (engine) => {
  if (!nginxBinary) {
    it("serves through nginx", {
      skip: "!!! SKIPPED: nginx is not installed (apt-get install nginx-light) — accel_redirect is untested",
    });
    return;
  }
  let accel: TestServer;
  let plain: TestServer;
  let nginx: RunningNginx;
  let alice: TestUser;
  let admin: TestUser;
  const mediaDir = mkdtempSync(join(tmpdir(), "mxcd-accel-"));
  chmodSync(mediaDir, 0o755); // nginx workers may run as another user
  before(async () => {
    accel = await startTestServer(engine, {
      media_store: {
        engine: "filesystem",
        path: mediaDir,
        accel_redirect: { location: LOCATION },
      },
    });
    // The same store without accel: what a client must see through nginx.
    plain = await startTestServer(engine, {
      media_store: { engine: "filesystem", path: mediaDir },
      database: accel.app.config.database,
    });
    alice = await accel.user("alice");
    admin = await accel.user("admin", { admin: true });
    nginx = await startNginx(
      nginxBinary,
      nginxProxyConfig({
        mxcd: accel.baseUrl,
        homeserver: accel.baseUrl,
        maxUploadSize: 50 * 1024 * 1024,
        accelRedirect: { location: LOCATION, root: mediaDir },
      }),
    );
    markSuiteRan("nginx");
  });
  after(async () => {
    await nginx?.stop();
    await plain?.stop();
    await accel?.stop();
  });

  const both = (path: string, token: string | undefined, headers?: Record<string, string>) =>
    Promise.all([
      download(nginx.url, path, { ...(token && { token }), ...(headers && { headers }) }),
      download(plain.baseUrl, path, { ...(token && { token }), ...(headers && { headers }) }),
    ]);

  it("answers with X-Accel-Redirect and no body after the checks", async () => {
    const id = await uploadBytes(alice.http, pattern(4096, 1), { contentType: "image/png" });
    const direct = await download(accel.baseUrl, `${V1}/download/test.local/${id}`, {
      token: alice.token,
    });
    assert.equal(direct.status, 200);
    assert.equal(direct.headers.get("x-accel-redirect"), `${LOCATION}${localMediaKey(id, null)}`);
    assert.equal(direct.bytes.length, 0);
    assert.equal(direct.headers.get("content-type"), "image/png");
    // Without a token the redirect is never given.
    const anonymous = await download(accel.baseUrl, `${V1}/download/test.local/${id}`);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get("x-accel-redirect"), null);
  });

  for (const [name, length] of [
    ["small", 4096],
    ["large", 3 * 1024 * 1024 + 17],
  ] as const) {
    it(`sends the ${name} download byte-exact with the headers mxcd sends without accel`, async () => {
      const bytes = pattern(length, 2);
      const id = await uploadBytes(alice.http, bytes, {
        contentType: "text/plain",
        filename: "notes é.txt",
      });
      for (const path of [
        `${V1}/download/test.local/${id}`,
        `${V1}/download/test.local/${id}/other.txt`,
      ]) {
        const [viaNginx, fromMxcd] = await both(path, alice.token);
        assert.equal(viaNginx.status, 200, path);
        assert.equal(fromMxcd.status, 200, path);
        assert.ok(viaNginx.bytes.equals(bytes), `${path}: byte-exact`);
        assert.deepEqual(pick(viaNginx.headers), pick(fromMxcd.headers), path);
      }
    });
  }

  it("sends thumbnails byte-exact with the same headers", async () => {
    const png = await sharp({
      create: { width: 300, height: 200, channels: 3, background: { r: 90, g: 20, b: 200 } },
    })
      .png()
      .toBuffer();
    const id = await uploadBytes(alice.http, png, { contentType: "image/png" });
    for (const query of ["width=32&height=32&method=crop", "width=640&height=480&method=scale"]) {
      const path = `${V1}/thumbnail/test.local/${id}?${query}`;
      const [viaNginx, fromMxcd] = await both(path, alice.token);
      assert.equal(viaNginx.status, 200, query);
      assert.equal(fromMxcd.status, 200, query);
      assert.ok(viaNginx.bytes.equals(fromMxcd.bytes), `${query}: byte-exact`);
      assert.deepEqual(pick(viaNginx.headers), pick(fromMxcd.headers), query);
    }
  });

  it("answers ranges and If-None-Match as mxcd does", async () => {
    const bytes = pattern(10_000, 3);
    const id = await uploadBytes(alice.http, bytes);
    const path = `${V1}/download/test.local/${id}`;
    const [ranged, rangedMxcd] = await both(path, alice.token, { range: "bytes=100-1099" });
    assert.equal(ranged.status, 206);
    assert.ok(ranged.bytes.equals(bytes.subarray(100, 1100)));
    assert.equal(ranged.headers.get("content-range"), rangedMxcd.headers.get("content-range"));
    assert.deepEqual(pick(ranged.headers), pick(rangedMxcd.headers));
    const [suffix] = await both(path, alice.token, { range: "bytes=-10" });
    assert.ok(suffix.bytes.equals(bytes.subarray(9990)));
    const [beyond, beyondMxcd] = await both(path, alice.token, { range: "bytes=10000-" });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get("content-range"), beyondMxcd.headers.get("content-range"));
    const [cached, cachedMxcd] = await both(path, alice.token, { "if-none-match": '"1"' });
    assert.equal(cached.status, 304);
    assert.equal(cachedMxcd.status, 304);
  });

  it("answers quarantined media 404 JSON, and the admin bypass streams it from mxcd", async () => {
    const bytes = pattern(5000, 4);
    const id = await uploadBytes(alice.http, bytes, { contentType: "image/png" });
    const path = `${V1}/download/test.local/${id}`;
    assert.equal((await download(nginx.url, path, { token: alice.token })).status, 200);
    const res = await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`);
    assert.equal(res.status, 200, res.text);
    for (const p of [path, `${V1}/thumbnail/test.local/${id}?width=32&height=32`]) {
      const refused = await download(nginx.url, p, { token: alice.token });
      assert.equal(refused.status, 404, p);
      assert.equal(JSON.parse(refused.bytes.toString()).errcode, "M_NOT_FOUND", p);
      assert.equal(refused.headers.get("x-content-type-options"), "nosniff", p);
    }
    const bypass = `${path}?admin_unsafely_bypass_quarantine=true`;
    const direct = await download(accel.baseUrl, bypass, { token: admin.token });
    assert.equal(direct.headers.get("x-accel-redirect"), null);
    assert.ok(direct.bytes.equals(bytes), "mxcd streams the bypass itself");
    const viaNginx = await download(nginx.url, bypass, { token: admin.token });
    assert.equal(viaNginx.status, 200);
    assert.ok(viaNginx.bytes.equals(bytes));
  });

  it("keeps the internal location closed to clients", async () => {
    const id = await uploadBytes(alice.http, pattern(100, 5));
    const res = await download(nginx.url, `${LOCATION}${localMediaKey(id, null)}`, {
      token: alice.token,
    });
    assert.equal(res.status, 404);
    assert.ok(!res.bytes.equals(pattern(100, 5)));
  });

  it("answers a cached download's X-Accel-Redirect on the fast path", async () => {
    const id = await uploadBytes(alice.http, pattern(3000, 7));
    const path = `${V1}/download/test.local/${id}`;
    const answered = () =>
      metric(accel.baseUrl, "mxcd_fast_path_requests_total", 'route="download",result="answered"');
    // The first answer (Fastify's) fills the token and media caches.
    await download(nginx.url, path, { token: alice.token });
    const before = await answered();
    for (let i = 0; i < 3; i++) {
      const res = await download(nginx.url, path, { token: alice.token });
      assert.ok(res.bytes.equals(pattern(3000, 7)));
    }
    assert.equal(await answered(), before + 3);
  });

  it("reads no bytes in mxcd for a redirected download", async () => {
    const id = await uploadBytes(alice.http, pattern(2048, 6));
    const misses = () =>
      metric(accel.baseUrl, "mxcd_media_byte_cache_requests_total", 'result="miss"');
    const before = await misses();
    for (let i = 0; i < 3; i++) {
      const res = await download(nginx.url, `${V1}/download/test.local/${id}`, {
        token: alice.token,
      });
      assert.ok(res.bytes.equals(pattern(2048, 6)));
    }
    assert.equal(await misses(), before);
    assert.equal(await metric(accel.baseUrl, "mxcd_media_byte_cache_bytes"), 0);
  });
});

describe("mxcd proxy-config nginx with media_store.accel_redirect", () => {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-accel-cli-"));
  const upstreams = ["--mxcd", "http://127.0.0.1:8009", "--homeserver", "http://127.0.0.1:8008"];
  const configWith = (store: string) => {
    const file = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, `server_name: example.org\nmedia_store: ${store}\n`);
    return file;
  };

  it("prints the internal location docs/deployment.md shows", async () => {
    const config = configWith(
      '{ engine: filesystem, path: /var/lib/mxcd/media, accel_redirect: { location: "/_mxcd_internal/" } }',
    );
    const printed = await runCli(["proxy-config", "nginx", "-c", config, ...upstreams]);
    assert.equal(printed.code, 0, printed.stderr);
    const page = readFileSync(new URL("docs/deployment.md", REPO_URL), "utf8");
    const section = page.slice(page.indexOf("## Serving fast path"));
    const block = /```\n(location \^~ [\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, "docs/deployment.md shows the internal location");
    assert.ok(printed.stdout.includes(block), printed.stdout);
  });

  it("prints no internal location without accel_redirect", async () => {
    const config = configWith("{ engine: filesystem, path: /var/lib/mxcd/media }");
    const printed = await runCli(["proxy-config", "nginx", "-c", config, ...upstreams]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.doesNotMatch(printed.stdout, /internal;/);
  });

  it("refuses a location that is not a /-delimited prefix", async () => {
    const config = configWith(
      '{ engine: filesystem, path: /m, accel_redirect: { location: "_mxcd_internal" } }',
    );
    const printed = await runCli(["proxy-config", "nginx", "-c", config, ...upstreams]);
    assert.notEqual(printed.code, 0);
    assert.match(printed.stderr, /media_store\.accel_redirect\.location/);
  });
});
