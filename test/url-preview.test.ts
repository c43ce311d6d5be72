/**
 * GET /preview_url end to end (docs/previews.md), on SQLite and PostgreSQL:
 * a local origin server on 127.0.0.2 (the only whitelisted address) serves
 * pages, images, oEmbed and hostile answers; a "refused" listener on
 * 127.0.0.1 must never see a connection.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import type { AddressInfo, Socket } from "node:net";
import { createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createClient } from "matrix-js-sdk";
import sharp from "sharp";
import { validateConfig } from "../src/config/load-config.js";
import { isAttachedRoute } from "../src/http/attached-routes.js";
import { PREVIEW_URL_PATHS } from "../src/http/routes/media-preview-routes.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { allKeys, download, mediaIdOf, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import {
  listenPreviewOrigin,
  newPreviewOrigin,
  ORIGIN_HOST,
  type OriginRoute,
  type PreviewOrigin,
  sendHtml,
} from "./support/preview-origin.js";
import { ScriptedHomeserver } from "./support/scripted-homeserver.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor as waitUntil } from "./support/wait-for.js";

/** Polls `condition` until it holds (this file's bound: 15 s). */
const waitFor = (condition: () => Promise<boolean> | boolean, what: string) =>
  waitUntil(condition, what, 15_000);

interface Origin extends PreviewOrigin {
  /** Releases held `/held*` responses, by path. */
  releases: Map<string, () => void>;
  neverEndingClosed: boolean;
}

async function startOrigin(image: Buffer, quarantinedImage: Buffer): Promise<Origin> {
  const origin: Origin = {
    ...newPreviewOrigin(),
    releases: new Map(),
    neverEndingClosed: false,
  };
  const routes: Record<string, OriginRoute> = {
    "/og": (_q, res) =>
      sendHtml(
        res,
        `<html><head><meta property="og:title" content="OG title">
        <meta property="og:description" content="OG description">
        <meta property="og:image" content="/img.png"></head><body>x</body></html>`,
      ),
    "/img.png": (_q, res) => {
      res.writeHead(200, {
        "content-type": "image/png",
        "content-disposition": 'inline; filename="pic.png"',
      });
      res.end(image);
    },
    "/twitter-only": (_q, res) =>
      sendHtml(
        res,
        `<html><head><meta name="twitter:title" content="Tw title">
        <meta name="twitter:description" content="Tw description"></head></html>`,
      ),
    // No charset anywhere: cp1252 by Synapse's order (0x93/0x94 quotes, 0x80 euro).
    "/cp1252": (_q, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(
        Buffer.concat([
          Buffer.from("<html><head><title>"),
          Buffer.from([0x93, 0x43, 0x61, 0x66, 0xe9, 0x94, 0x20, 0x80, 0x35]),
          Buffer.from("</title></head></html>"),
        ]),
      );
    },
    // Declared in a <meta> only: windows-1251 ("Привет").
    "/declared-charset": (_q, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end(
        Buffer.concat([
          Buffer.from('<html><head><meta charset="windows-1251"><title>'),
          Buffer.from([0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2]),
          Buffer.from("</title></head></html>"),
        ]),
      );
    },
    "/fallback": (_q, res) =>
      sendHtml(res, "<html><head><title>Foo</title></head><body><p>Some text.</p></body></html>"),
    "/oembed-page": (_q, res) =>
      sendHtml(
        res,
        `<html><head><title>Page title</title>
        <link rel="alternate" type="application/json+oembed" href="/oembed.json"></head>
        <body><p>Body</p></body></html>`,
      ),
    "/oembed.json": (_q, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          version: "1.0",
          type: "link",
          title: "oEmbed title",
          provider_name: "Prov",
        }),
      );
    },
    "/redirect": (_q, res) => {
      res.writeHead(302, { location: "/og" });
      res.end();
    },
    "/big": (_q, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      const chunk = Buffer.alloc(64 * 1024, "a");
      let sent = 0;
      const pump = () => {
        while (sent < 20 * 1024 * 1024) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end();
      };
      res.on("error", () => {});
      pump();
    },
    "/never": (req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.write("<html><head><title>never</title>");
      const timer = setInterval(() => res.write("<p>more</p>"), 50);
      req.socket.once("close", () => {
        clearInterval(timer);
        origin.neverEndingClosed = true;
      });
    },
    "/quarantined-page": (_q, res) =>
      sendHtml(
        res,
        `<html><head><meta property="og:title" content="Q"><meta property="og:image" content="/q.png"></head></html>`,
      ),
    "/q.png": (_q, res) => {
      res.writeHead(200, { "content-type": "image/png" });
      res.end(quarantinedImage);
    },
    "/blocked-page": (_q, res) => sendHtml(res, "<title>blocked</title>"),
    "/redirect-to-blocked": (_q, res) => {
      res.writeHead(302, { location: "/blocked-target" });
      res.end();
    },
    "/blocked-target": (_q, res) => sendHtml(res, "<title>should not be fetched</title>"),
    "/page-blocked-image": (_q, res) =>
      sendHtml(
        res,
        `<html><head><meta property="og:title" content="T"><meta property="og:image" content="/blocked-image.png"></head></html>`,
      ),
    "/blocked-image.png": (_q, res) => {
      res.writeHead(200, { "content-type": "image/png" });
      res.end(image);
    },
    "/page-blocked-oembed": (_q, res) =>
      sendHtml(
        res,
        `<html><head><title>HTML only</title>
        <link rel="alternate" type="application/json+oembed" href="/blocked-oembed.json"></head></html>`,
      ),
    "/blocked-oembed.json": (_q, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ version: "1.0", type: "link", provider_name: "Nope" }));
    },
    "/fails": (_q, res) => {
      res.writeHead(500);
      res.end("no");
    },
    "/text": (_q, res) => {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end("bytes");
    },
    "/to-refused": (req, res) => {
      const port = new URL(req.url ?? "/", "http://x").searchParams.get("port");
      res.writeHead(302, { location: `http://localhost:${port}/` });
      res.end();
    },
    "/oembed-endpoint": (req, res) => {
      const query = new URL(req.url ?? "/", "http://x").searchParams;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          version: "1.0",
          type: "photo",
          title: `Provided ${query.get("format")}`,
          url: `${origin.base}/img.png`,
        }),
      );
    },
    "/deep": (_q, res) =>
      sendHtml(
        res,
        `<html><head><title>Deep</title></head><body>${"<div>".repeat(100_000)}text</body></html>`,
      ),
    "/held": (_q, res) => {
      origin.releases.set("/held", () => sendHtml(res, "<title>held</title>"));
    },
    "/held2": (_q, res) => {
      origin.releases.set("/held2", () => sendHtml(res, "<title>held2</title>"));
    },
  };
  await listenPreviewOrigin(origin, routes);
  return origin;
}

/** A listener on a refused address: counts the connections it gets (must stay 0). */
async function startRefusedListener() {
  const sockets = new Set<Socket>();
  const listener = { connections: 0, port: 0, close: async () => {} };
  const server = createTcpServer((socket) => {
    listener.connections += 1;
    sockets.add(socket);
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  listener.port = (server.address() as AddressInfo).port;
  listener.close = () => new Promise<void>((r) => server.close(() => r()));
  return listener;
}

it("url_preview_enabled without url_preview_ip_range_blacklist is a start-up error", () => {
  assert.throws(
    () => validateConfig({ server_name: "test.local", url_preview_enabled: true }),
    /url_preview_ip_range_blacklist/,
  );
  assert.doesNotThrow(() =>
    validateConfig({
      server_name: "test.local",
      url_preview_enabled: true,
      url_preview_ip_range_blacklist: ["10.0.0.0/8"],
    }),
  );
});

forEachEngine("URL previews", (engine) => {
  let server: TestServer;
  let off: TestServer;
  let user: TestUser;
  let admin: TestUser;
  let origin: Origin;
  let refused: Awaited<ReturnType<typeof startRefusedListener>>;
  let image: Buffer;

  const preview = (url: string, extra = "") =>
    user.http.get(`/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}${extra}`);

  before(async () => {
    image = await sharp({ create: { width: 64, height: 48, channels: 3, background: "red" } })
      .png()
      .toBuffer();
    const quarantinedImage = await sharp({
      create: { width: 20, height: 20, channels: 3, background: "blue" },
    })
      .png()
      .toBuffer();
    origin = await startOrigin(image, quarantinedImage);
    refused = await startRefusedListener();
    const providers = join(mkdtempSync(join(tmpdir(), "mxcd-oembed-")), "providers.json");
    writeFileSync(
      providers,
      JSON.stringify([
        {
          provider_name: "Local",
          provider_url: origin.base,
          endpoints: [
            { schemes: [`${origin.base}/video/*`], url: `${origin.base}/oembed-endpoint` },
            { schemes: [`${origin.base}/other-video/*`], url: `${origin.base}/blocked-endpoint` },
          ],
        },
      ]),
    );
    server = await startTestServer(engine, {
      url_preview_enabled: true,
      url_preview_ip_range_blacklist: [
        "127.0.0.0/8",
        "10.0.0.0/8",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
      ],
      url_preview_ip_range_whitelist: [`${ORIGIN_HOST}/32`],
      url_preview_url_blacklist: [{ path: "/blocked*" }],
      url_preview_timeout: "5s",
      oembed: { additional_providers: [providers] },
    });
    off = await startTestServer(engine);
    user = await server.user("previewer");
    admin = await server.user("previewadmin", { admin: true });
    // Quarantine the bytes of /q.png by uploading and quarantining a copy.
    const id = await uploadBytes(admin.http, quarantinedImage, { contentType: "image/png" });
    const q = await admin.http.post(`/_synapse/admin/v1/media/quarantine/test.local/${id}`, {});
    assert.equal(q.status, 200);
  });
  after(async () => {
    await server?.stop();
    await off?.stop();
    await refused?.close();
    origin?.server.closeAllConnections();
    await new Promise((r) => origin?.server.close(r));
  });

  describe("the endpoint", () => {
    it("is 404 M_UNRECOGNIZED when previews are off", async () => {
      const u = await off.user("offuser");
      for (const path of [
        "/_matrix/client/v1/media/preview_url",
        "/_matrix/media/v3/preview_url",
      ]) {
        const res = await u.http.get(`${path}?url=${encodeURIComponent(`${origin.base}/og`)}`);
        assert.equal(res.status, 404);
        assert.equal(res.body.errcode, "M_UNRECOGNIZED");
      }
    });

    it("needs a token, a url, a valid ts and an http(s) URL", async () => {
      const anonymous = await server.http.get(
        `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(`${origin.base}/og`)}`,
      );
      assert.equal(anonymous.status, 401);
      const missing = await user.http.get("/_matrix/client/v1/media/preview_url");
      assert.equal(missing.status, 400);
      assert.equal(missing.body.errcode, "M_MISSING_PARAM");
      for (const ts of ["abc", "-5"]) {
        const bad = await preview(`${origin.base}/og`, `&ts=${ts}`);
        assert.equal(bad.status, 400);
        assert.equal(bad.body.errcode, "M_INVALID_PARAM");
      }
      for (const url of ["ftp://example.org/x", "javascript:alert(1)", "not a url"]) {
        const res = await preview(url);
        assert.equal(res.status, 400, url);
        assert.equal(res.body.errcode, "M_INVALID_PARAM");
      }
    });

    it("previews OpenGraph tags with the image stored as url-cache media", async () => {
      const res = await preview(`${origin.base}/og`, "&ts=1700000000000");
      assert.equal(res.status, 200);
      assert.equal(res.body["og:title"], "OG title");
      assert.equal(res.body["og:description"], "OG description");
      assert.match(res.body["og:image"], /^mxc:\/\/test\.local\/\d{4}-\d{2}-\d{2}_[A-Za-z]+$/);
      assert.equal(res.body["og:image:type"], "image/png");
      assert.equal(res.body["og:image:width"], 64);
      assert.equal(res.body["og:image:height"], 48);
      assert.equal(res.body["matrix:image:size"], image.length);
      const mediaId = mediaIdOf(res.body["og:image"]);
      const keys = await allKeys(server.app.store);
      const [date, rest] = mediaId.split("_");
      assert.ok(keys.includes(`url_cache/${date}/${rest}`), keys.join(","));
      const got = await download(
        server.baseUrl,
        `/_matrix/client/v1/media/download/test.local/${mediaId}`,
        {
          token: user.token,
        },
      );
      assert.equal(got.status, 200);
      assert.deepEqual(got.bytes, image);
      const thumb = await download(
        server.baseUrl,
        `/_matrix/client/v1/media/thumbnail/test.local/${mediaId}?width=32&height=32&method=scale`,
        { token: user.token },
      );
      assert.equal(thumb.status, 200);
    });

    it("serves the legacy paths too", async () => {
      for (const version of ["v3", "r0", "v1"]) {
        const res = await user.http.get(
          `/_matrix/media/${version}/preview_url?url=${encodeURIComponent(`${origin.base}/fallback`)}`,
        );
        assert.equal(res.status, 200, version);
        assert.equal(res.body["og:title"], "Foo");
      }
    });

    it("maps twitter:* tags, and decodes undeclared cp1252 and <meta>-declared charsets", async () => {
      assert.deepEqual((await preview(`${origin.base}/twitter-only`)).body, {
        "og:title": "Tw title",
        "og:description": "Tw description",
      });
      assert.equal(
        (await preview(`${origin.base}/cp1252`)).body["og:title"],
        "\u201cCaf\u00e9\u201d \u20ac5",
      );
      assert.equal((await preview(`${origin.base}/declared-charset`)).body["og:title"], "Привет");
    });

    it("falls back to the title and body text", async () => {
      const res = await preview(`${origin.base}/fallback#frag`);
      assert.deepEqual(res.body, { "og:title": "Foo", "og:description": "Some text." });
    });

    it("uses oEmbed autodiscovery, HTML tags winning", async () => {
      const res = await preview(`${origin.base}/oembed-page`);
      assert.equal(res.status, 200);
      assert.equal(res.body["og:title"], "Page title");
      assert.equal(res.body["og:site_name"], "Prov");
    });

    it("asks an oEmbed provider of oembed.additional_providers instead of the page", async () => {
      const res = await preview(`${origin.base}/video/1`);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body["og:title"], "Provided json");
      assert.match(res.body["og:image"], /^mxc:\/\//);
      assert.equal(origin.hits.get("/video/1") ?? 0, 0);
    });

    it("previews a page of 100,000 nested <div>s", async () => {
      const res = await preview(`${origin.base}/deep`);
      assert.equal(res.status, 200);
      assert.equal(res.body["og:title"], "Deep");
    });

    it("follows redirects", async () => {
      const res = await preview(`${origin.base}/redirect`);
      assert.equal(res.status, 200);
      assert.equal(res.body["og:title"], "OG title");
    });

    it("previews a direct image URL as the image", async () => {
      const res = await preview(`${origin.base}/img.png`);
      assert.equal(res.status, 200);
      assert.match(res.body["og:image"], /^mxc:\/\//);
      assert.equal(res.body["og:description"], "pic.png");
      assert.equal(res.body["og:image:width"], 64);
    });

    it("pre-generates the preview image's thumbnails under url_cache_thumbnails/", async () => {
      const res = await preview(`${origin.base}/img.png?pregenerate=1`);
      assert.equal(res.status, 200);
      const [date, rest] = mediaIdOf(res.body["og:image"]).split("_");
      const prefix = `url_cache_thumbnails/${date}/${rest}/`;
      await waitFor(
        async () => (await allKeys(server.app.store)).some((key) => key.startsWith(prefix)),
        "a pre-generated thumbnail of the preview image",
      );
    });

    it("drops an og:image whose hash is quarantined, and stores it quarantined", async () => {
      const res = await preview(`${origin.base}/quarantined-page`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.body, { "og:title": "Q" });
      assert.equal(origin.hits.get("/q.png"), 1);
      const feed = await admin.http.get("/_synapse/admin/v1/media/quarantine_changes?limit=100");
      assert.equal(feed.status, 200);
      const ids = (feed.body.changes ?? feed.body.chunk ?? []).map(
        (c: { media_id: string }) => c.media_id,
      );
      assert.ok(
        ids.some((id: string) => /^\d{4}-\d{2}-\d{2}_/.test(id)),
        `a url-cache id in the feed: ${JSON.stringify(feed.body)}`,
      );
    });

    it("refuses unknown content types with 502", async () => {
      const res = await preview(`${origin.base}/text`);
      assert.equal(res.status, 502);
    });
  });

  describe("policy", () => {
    it("applies the URL blacklist to the page, redirects, images and oEmbed endpoints", async () => {
      const page = await preview(`${origin.base}/blocked-page`);
      assert.equal(page.status, 403);
      assert.equal(page.body.errcode, "M_FORBIDDEN");
      const redirect = await preview(`${origin.base}/redirect-to-blocked`);
      assert.equal(redirect.status, 403);
      const withImage = await preview(`${origin.base}/page-blocked-image`);
      assert.deepEqual(withImage.body, { "og:title": "T" });
      const provider = await preview(`${origin.base}/other-video/1`);
      assert.equal(provider.status, 403);
      assert.equal(provider.body.errcode, "M_FORBIDDEN");
      const withOEmbed = await preview(`${origin.base}/page-blocked-oembed`);
      assert.deepEqual(withOEmbed.body, { "og:title": "HTML only" });
      for (const path of [
        "/blocked-endpoint",
        "/blocked-page",
        "/blocked-target",
        "/blocked-image.png",
        "/blocked-oembed.json",
      ]) {
        assert.equal(origin.hits.get(path) ?? 0, 0, path);
      }
      assert.ok(
        (await metric(
          server.baseUrl,
          "mxcd_url_preview_fetch_failures_total",
          'kind="url_blacklist"',
        )) >= 3,
      );
    });

    it("never connects to a refused address, however it is written", async () => {
      const p = refused.port;
      const urls = [
        `http://127.0.0.1:${p}/`,
        `http://0.0.0.0:${p}/`,
        `http://[::]:${p}/`,
        `http://[::ffff:127.0.0.1]:${p}/`,
        `http://2130706433:${p}/`,
        `http://0177.0.0.1:${p}/`,
        `http://0x7f.1:${p}/`,
        `http://localhost:${p}/`,
      ];
      for (const url of urls) {
        const res = await preview(url);
        assert.equal(res.status, 403, `${url}: ${res.text}`);
        assert.equal(res.body.errcode, "M_FORBIDDEN");
      }
      assert.equal(refused.connections, 0);
    });

    it("refuses a redirect to a refused address without connecting", async () => {
      const res = await preview(`${origin.base}/to-refused?port=${refused.port}`);
      assert.equal(res.status, 403);
      assert.equal(refused.connections, 0);
    });
  });

  describe("hostile pages", () => {
    it("a 20 MB page is 502 M_TOO_LARGE", async () => {
      const res = await preview(`${origin.base}/big`);
      assert.equal(res.status, 502);
      assert.equal(res.body.errcode, "M_TOO_LARGE");
    });

    it("a page that never ends is a 502 at the timeout, and its connection is closed", async () => {
      const res = await preview(`${origin.base}/never`);
      assert.equal(res.status, 502);
      assert.equal(res.body.errcode, "M_UNKNOWN");
      await waitFor(() => origin.neverEndingClosed, "the never-ending connection to close");
    });
  });

  describe("cache", () => {
    it("answers a second request from the cache", async () => {
      const url = `${origin.base}/fallback?cache=1`;
      const hitsBefore = await metric(server.baseUrl, "mxcd_url_preview_cache_hits_total");
      const first = await preview(url);
      const fetched = origin.hits.get("/fallback") ?? 0;
      const second = await preview(url);
      assert.deepEqual(second.body, first.body);
      assert.equal(origin.hits.get("/fallback"), fetched);
      assert.equal(
        await metric(server.baseUrl, "mxcd_url_preview_cache_hits_total"),
        hitsBefore + 1,
      );
    });

    it("caches failures briefly", async () => {
      const first = await preview(`${origin.base}/fails`);
      assert.equal(first.status, 502);
      const second = await preview(`${origin.base}/fails`);
      assert.equal(second.status, 502);
      assert.equal(second.body.error, first.body.error);
      assert.equal(origin.hits.get("/fails"), 1);
      assert.ok(
        (await metric(server.baseUrl, "mxcd_url_preview_fetch_failures_total", 'kind="status"')) >=
          1,
      );
    });

    it("caches a URL longer than an index entry may be", async () => {
      // Random, so PostgreSQL cannot compress it under its B-tree entry limit.
      const url = `${origin.base}/fallback?long=${randomBytes(5000).toString("hex")}`;
      const first = await preview(url);
      assert.equal(first.status, 200, first.text);
      const fetched = origin.hits.get("/fallback");
      const second = await preview(url);
      assert.deepEqual(second.body, first.body);
      assert.equal(origin.hits.get("/fallback"), fetched);
    });

    it("makes one fetch for concurrent requests of one URL", async () => {
      const joins = await metric(server.baseUrl, "mxcd_url_preview_flight_joins_total");
      const requests = Array.from({ length: 4 }, () => preview(`${origin.base}/held`));
      await waitFor(
        async () =>
          (await metric(server.baseUrl, "mxcd_url_preview_flight_joins_total")) >= joins + 3,
        "three requests to join the first one's fetch",
      );
      // Joining can come before the fetch reaches the origin: release only a held response.
      await waitFor(async () => origin.releases.has("/held"), "the origin to hold /held");
      origin.releases.get("/held")!();
      origin.releases.delete("/held");
      for (const res of await Promise.all(requests))
        assert.deepEqual(res.body, { "og:title": "held" });
      assert.equal(origin.hits.get("/held"), 1);
    });

    it("counts previews served", async () => {
      assert.ok((await metric(server.baseUrl, "mxcd_url_previews_served_total")) > 5);
    });
  });

  it("works with matrix-js-sdk's getUrlPreview", async () => {
    const client = createClient({
      baseUrl: server.baseUrl,
      accessToken: user.token,
      userId: user.userId,
    });
    const og = await client.getUrlPreview(`${origin.base}/og?sdk=1`, Date.now());
    assert.equal(og["og:title"], "OG title");
    assert.match(String(og["og:image"]), /^mxc:\/\//);
    client.stopClient();
  });
});

forEachEngine("URL previews in attached mode", (engine) => {
  let hs: ScriptedHomeserver;
  let server: TestServer;
  let origin: Origin;

  before(async () => {
    origin = await startOrigin(Buffer.from("x"), Buffer.from("y"));
    hs = await ScriptedHomeserver.start();
    server = await startTestServer(engine, {
      mode: "attached",
      homeserver: { base_url: hs.baseUrl, admin_api: "synapse" },
      url_preview_enabled: true,
      url_preview_ip_range_blacklist: ["127.0.0.0/8"],
      url_preview_ip_range_whitelist: [`${ORIGIN_HOST}/32`],
    });
  });
  after(async () => {
    await server?.stop();
    await hs?.stop();
    origin?.server.closeAllConnections();
    await new Promise((r) => origin?.server.close(r));
  });

  it("every preview_url path is in the attached route table", () => {
    for (const path of PREVIEW_URL_PATHS) assert.ok(isAttachedRoute(path), path);
  });

  it("serves users and refuses guests with 403 M_GUEST_ACCESS_FORBIDDEN", async () => {
    hs.addToken("syt_alice_preview", { userId: "@alice:test.local", deviceId: "DEV" });
    hs.addToken("syt_guest_preview", { userId: "@guest:test.local", deviceId: "DEV", guest: true });
    const url = encodeURIComponent(`${origin.base}/fallback`);
    for (const path of PREVIEW_URL_PATHS) {
      const alice = await server.http.withToken("syt_alice_preview").get(`${path}?url=${url}`);
      assert.equal(alice.status, 200, `${path}: ${alice.text}`);
      assert.equal(alice.body["og:title"], "Foo");
      const guest = await server.http.withToken("syt_guest_preview").get(`${path}?url=${url}`);
      assert.equal(guest.status, 403, path);
      assert.equal(guest.body.errcode, "M_GUEST_ACCESS_FORBIDDEN");
    }
  });
});

describe("URL previews across processes [postgres]", () => {
  let a: TestServer;
  let b: TestServer;
  let origin: Origin;

  before(async () => {
    origin = await startOrigin(Buffer.from("x"), Buffer.from("y"));
    // Two mxcd instances on one PostgreSQL database: each has its own
    // advisory-lock session and LISTEN connection, as two processes would.
    const database = await freshDatabaseConfig("postgres");
    const config = {
      database,
      url_preview_enabled: true,
      url_preview_ip_range_blacklist: ["127.0.0.0/8"],
      url_preview_ip_range_whitelist: [`${ORIGIN_HOST}/32`],
      notification_poll_interval: "1h",
    };
    a = await startTestServer("postgres", config);
    b = await startTestServer("postgres", config);
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
    origin?.server.closeAllConnections();
    await new Promise((r) => origin?.server.close(r));
  });

  it("one fetch for one URL requested from two processes; the waiter wakes on the holder's notification", async () => {
    const userA = await a.user("crossa");
    const userB = await a.user("crossb");
    const path = `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(`${origin.base}/held2`)}`;
    const first = userA.http.withToken(userA.token).get(path);
    await waitFor(() => origin.hits.get("/held2") === 1, "the first process to fetch");
    const second = b.http.withToken(userB.token).get(path);
    await waitFor(
      async () => (await metric(b.baseUrl, "mxcd_waiting_requests", 'kind="url_preview"')) === 1,
      "the second process to wait for the first",
    );
    origin.releases.get("/held2")?.();
    const [resA, resB] = await Promise.all([first, second]);
    assert.deepEqual(resA.body, { "og:title": "held2" });
    assert.deepEqual(resB.body, { "og:title": "held2" });
    assert.equal(origin.hits.get("/held2"), 1);
  });
});
