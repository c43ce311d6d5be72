/**
 * `quarantine_placeholder` (docs/trust-and-safety.md, "Quarantine
 * placeholder"). Two servers federate on loopback: A has both placeholders
 * on, B the defaults. B shows the default (404 as Synapse); A answers
 * quarantined local and cached remote media on the client routes with a
 * grey PNG that is never cached, while its federation routes, the admin
 * bypass and non-quarantined media behave exactly as before.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import {
  DOWNLOAD_PLACEHOLDER_SIDE,
  PLACEHOLDER_CACHE_BYTES,
  PLACEHOLDER_CACHE_ENTRIES,
  PLACEHOLDER_MAX_SIDE,
  placeholderMaxSide,
  placeholderSize,
  QuarantinePlaceholders,
  stripedPng,
} from "../src/media/quarantine-placeholder.js";
import { QuarantinedMediaError } from "../src/media/quarantined-media-error.js";
import { forEachEngine } from "./support/databases.js";
import { download, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { freePort } from "./support/postgres-cluster.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const ADMIN = "/_synapse/admin/v1";
const SECRET_NAME = "secret-holiday-name.png";
const SERVED = "mxcd_quarantine_placeholders_served_total";

let images = 0;

/**
 * A colourful image, nothing of it grey (a placeholder cannot be mistaken
 * for it), and a new one each call: uploading the bytes of quarantined
 * media quarantines the upload too (by hash).
 */
async function colourfulPng(): Promise<Buffer> {
  images += 1;
  return sharp({ create: { width: 300 + images, height: 200, channels: 3, background: "#e0301e" } })
    .png()
    .toBuffer();
}

/** Asserts `res` is a placeholder PNG of `width` × `height` that no cache may keep. */
async function assertPlaceholder(
  res: { status: number; headers: Headers; bytes: Buffer },
  width: number,
  height: number,
) {
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "image/png");
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(res.headers.get("etag"), null);
  assert.equal(res.headers.get("last-modified"), null);
  assert.equal(res.headers.get("accept-ranges"), null);
  assert.equal(res.headers.get("content-disposition"), "inline; filename=quarantined.png");
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  const meta = await sharp(res.bytes).metadata();
  assert.equal(meta.format, "png");
  assert.deepEqual([meta.width, meta.height], [width, height]);
  // Only the two greys of the pattern: no pixel of the red original.
  const stats = await sharp(res.bytes).stats();
  for (const channel of stats.channels) {
    assert.ok(
      channel.min >= 0x80 && channel.max <= 0xa0,
      `grey, got ${channel.min}-${channel.max}`,
    );
  }
}

describe("quarantine placeholder images", () => {
  it("clamps the size to the bound, keeping the aspect ratio, at least 1x1", () => {
    assert.deepEqual(placeholderSize({ width: 96, height: 96 }, 800), { width: 96, height: 96 });
    assert.deepEqual(placeholderSize({ width: 800, height: 600 }, 800), {
      width: 800,
      height: 600,
    });
    assert.deepEqual(placeholderSize({ width: 10_000, height: 10_000 }, 800), {
      width: 800,
      height: 800,
    });
    assert.deepEqual(placeholderSize({ width: 4000, height: 1000 }, 800), {
      width: 800,
      height: 200,
    });
    assert.deepEqual(placeholderSize({ width: 10_000, height: 1 }, 800), { width: 800, height: 1 });
    assert.deepEqual(placeholderSize({ width: 1, height: 10_000 }, 800), { width: 1, height: 800 });
    assert.deepEqual(placeholderSize({ width: 0, height: -5 }, 800), { width: 1, height: 1 });
  });

  it("bounds the side by the largest configured size, at most 1024 (800 with none)", () => {
    assert.equal(placeholderMaxSide([{ width: 320, height: 240 }]), 320);
    assert.equal(
      placeholderMaxSide([
        { width: 32, height: 32 },
        { width: 100, height: 900 },
      ]),
      900,
    );
    assert.equal(PLACEHOLDER_MAX_SIDE, 1024);
    assert.equal(placeholderMaxSide([{ width: 10_000, height: 10_000 }]), PLACEHOLDER_MAX_SIDE);
    assert.equal(placeholderMaxSide([]), 800);
  });

  it("writes valid greyscale PNGs that sharp decodes at the size asked", async () => {
    for (const [width, height] of [
      [1, 1],
      [5, 4],
      [96, 96],
      [1024, 3],
    ] as const) {
      const meta = await sharp(stripedPng(width, height)).metadata();
      assert.deepEqual(
        [meta.format, meta.width, meta.height, meta.channels],
        ["png", width, height, 1],
      );
    }
  });

  it("answers only QuarantinedMediaError, and only for the kinds switched on", () => {
    const sizes = [{ width: 96, height: 96 }];
    const off = new QuarantinePlaceholders({
      thumbnails: false,
      downloads: false,
      thumbnailSizes: sizes,
    });
    const quarantined = new QuarantinedMediaError("Not found");
    assert.equal(off.forThumbnail(quarantined, { width: 32, height: 32 }), undefined);
    assert.equal(off.forDownload(quarantined), undefined);
    const thumbs = new QuarantinePlaceholders({
      thumbnails: true,
      downloads: false,
      thumbnailSizes: sizes,
    });
    assert.equal(thumbs.forThumbnail(new Error("other"), { width: 32, height: 32 }), undefined);
    assert.equal(thumbs.forDownload(quarantined), undefined);
    assert.equal(thumbs.forThumbnail(quarantined, { width: 32, height: 32 })?.width, 32);
    assert.deepEqual(thumbs.served, { thumbnail: 1, download: 0 });
  });

  it("keeps a bounded cache whatever sizes are asked for", () => {
    const placeholders = new QuarantinePlaceholders({
      thumbnails: true,
      downloads: true,
      thumbnailSizes: [{ width: 800, height: 600 }],
    });
    const quarantined = new QuarantinedMediaError("Not found");
    const asked = PLACEHOLDER_CACHE_ENTRIES + 100;
    for (let i = 1; i <= asked; i++) {
      const image = placeholders.forThumbnail(quarantined, { width: i, height: 2 });
      assert.equal(image?.width, i);
    }
    const { entries, bytes } = placeholders.cached;
    assert.ok(entries <= PLACEHOLDER_CACHE_ENTRIES, `${entries} entries`);
    assert.ok(bytes <= PLACEHOLDER_CACHE_BYTES, `${bytes} bytes`);
    assert.equal(placeholders.served.thumbnail, asked);
  });
});

forEachEngine("quarantine_placeholder", (engine) => {
  let a: TestServer;
  let b: TestServer;
  let adminOnA: TestUser;
  let aliceOnA: TestUser;
  let adminOnB: TestUser;
  let bobOnB: TestUser;
  before(async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const common = {
      ip_range_whitelist: ["127.0.0.0/8"],
      federation_custom_resolvers: {
        "a.test": `http://127.0.0.1:${portA}`,
        "b.test": `http://127.0.0.1:${portB}`,
      },
    };
    a = await startTestServer(engine, {
      ...common,
      server_name: "a.test",
      listen: { host: "127.0.0.1", port: portA },
      quarantine_placeholder: { thumbnails: true, downloads: true },
    });
    b = await startTestServer(engine, {
      ...common,
      server_name: "b.test",
      listen: { host: "127.0.0.1", port: portB },
    });
    adminOnA = await a.user("admin", { admin: true });
    aliceOnA = await a.user("alice");
    adminOnB = await b.user("admin", { admin: true });
    bobOnB = await b.user("bob");
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  const get = (server: TestServer, user: TestUser | undefined, path: string) =>
    download(server.baseUrl, path, user ? { token: user.token } : {});
  const v1Thumb = (origin: string, id: string, w: number, h: number, method: string) =>
    `/_matrix/client/v1/media/thumbnail/${origin}/${id}?width=${w}&height=${h}&method=${method}`;
  const v1Download = (origin: string, id: string, name = "") =>
    `/_matrix/client/v1/media/download/${origin}/${id}${name ? `/${name}` : ""}`;
  const quarantine = async (admin: TestUser, origin: string, id: string, undo = false) => {
    const verb = undo ? "unquarantine" : "quarantine";
    const res = await admin.http.post(`${ADMIN}/media/${verb}/${origin}/${id}`);
    assert.equal(res.status, 200, res.text);
  };
  /** Uploads a new image as alice on A; its id and bytes. */
  const uploadOnA = async () => {
    const bytes = await colourfulPng();
    const id = await uploadBytes(aliceOnA.http, bytes, {
      contentType: "image/png",
      filename: SECRET_NAME,
    });
    return { id, original: bytes };
  };
  /** Lets the legacy unauthenticated endpoints serve the item (media from before authenticated media). */
  const unfreeze = (server: TestServer, id: string) =>
    server.app.database.db
      .updateTable("local_media_repository")
      .set({ authenticated: false })
      .where("media_id", "=", id)
      .execute();

  it("defaults (B): quarantined media answers 404 as in Synapse, no placeholder", async () => {
    const id = await uploadBytes(bobOnB.http, await colourfulPng(), { contentType: "image/png" });
    await quarantine(adminOnB, "b.test", id);
    for (const path of [v1Thumb("b.test", id, 96, 96, "crop"), v1Download("b.test", id)]) {
      const res = await b.http.withToken(bobOnB.token).get(path);
      assert.equal(res.status, 404, path);
      assert.equal(res.body.errcode, "M_NOT_FOUND");
    }
    assert.equal(await metric(b.baseUrl, SERVED, 'kind="thumbnail"'), 0);
    assert.equal(await metric(b.baseUrl, SERVED, 'kind="download"'), 0);
  });

  it("thumbnails: the requested size for crop and scale, clamped, grey, no-store", async () => {
    const { id, original } = await uploadOnA();
    const real = await get(a, aliceOnA, v1Thumb("a.test", id, 96, 96, "crop"));
    assert.equal(real.status, 200);
    assert.equal(real.headers.get("etag"), "1", "the real thumbnail is cacheable");
    await quarantine(adminOnA, "a.test", id);
    const before = await metric(a.baseUrl, SERVED, 'kind="thumbnail"');
    const cases = [
      [96, 96, "crop", 96, 96],
      [50, 30, "crop", 50, 30],
      [320, 240, "scale", 320, 240],
      [33, 70, "scale", 33, 70],
      [1, 1, "crop", 1, 1],
      // Over the largest configured side (800): shrunk to fit, aspect kept.
      [10_000, 10_000, "crop", 800, 800],
      [4000, 1000, "scale", 800, 200],
      [20_000, 1, "scale", 800, 1],
    ] as const;
    for (const [w, h, method, width, height] of cases) {
      const res = await get(a, aliceOnA, v1Thumb("a.test", id, w, h, method));
      await assertPlaceholder(res, width, height);
      assert.ok(
        !res.bytes.equals(original) && !res.bytes.equals(real.bytes),
        "neither the original nor its thumbnail",
      );
    }
    // A conditional or range request gets the whole placeholder, never a 304 or 206.
    const conditional = await download(a.baseUrl, v1Thumb("a.test", id, 96, 96, "crop"), {
      token: aliceOnA.token,
      headers: { "if-none-match": "1", range: "bytes=0-3" },
    });
    await assertPlaceholder(conditional, 96, 96);
    const after = await metric(a.baseUrl, SERVED, 'kind="thumbnail"');
    assert.equal(after - before, cases.length + 1);
  });

  it("bad thumbnail parameters are still refused before anything else", async () => {
    const { id } = await uploadOnA();
    await quarantine(adminOnA, "a.test", id);
    const res = await aliceOnA.http.get(
      `/_matrix/client/v1/media/thumbnail/a.test/${id}?width=0&height=5`,
    );
    assert.equal(res.status, 400);
    const none = await a.http.get(v1Thumb("a.test", id, 96, 96, "crop"));
    assert.equal(none.status, 401, "no token, no placeholder");
  });

  it("downloads: a 512x512 placeholder named quarantined.png, never the original name", async () => {
    const { id, original } = await uploadOnA();
    await quarantine(adminOnA, "a.test", id);
    const before = await metric(a.baseUrl, SERVED, 'kind="download"');
    for (const path of [v1Download("a.test", id), v1Download("a.test", id, "other.png")]) {
      const res = await get(a, aliceOnA, path);
      await assertPlaceholder(res, DOWNLOAD_PLACEHOLDER_SIDE, DOWNLOAD_PLACEHOLDER_SIDE);
      for (const [name, value] of res.headers) {
        assert.ok(!value.includes("secret-holiday"), `${name}: ${value}`);
      }
      assert.ok(!res.bytes.includes(Buffer.from("secret-holiday")), "no original name in the body");
      assert.ok(!res.bytes.equals(original), "not the original");
    }
    assert.equal((await metric(a.baseUrl, SERVED, 'kind="download"')) - before, 2);
  });

  it("legacy endpoints behave alike; authenticated media stays 404 there", async () => {
    const frozen = (await uploadOnA()).id;
    const legacy = (await uploadOnA()).id;
    await unfreeze(a, legacy);
    await quarantine(adminOnA, "a.test", frozen);
    await quarantine(adminOnA, "a.test", legacy);
    const thumb = (id: string) =>
      `/_matrix/media/v3/thumbnail/a.test/${id}?width=64&height=48&method=scale`;
    const dl = (id: string) => `/_matrix/media/v3/download/a.test/${id}/${SECRET_NAME}`;
    await assertPlaceholder(await get(a, undefined, thumb(legacy)), 64, 48);
    await assertPlaceholder(await get(a, undefined, dl(legacy)), 512, 512);
    // Hidden from the legacy endpoints anyway: a placeholder would reveal it.
    assert.equal((await get(a, undefined, thumb(frozen))).status, 404);
    assert.equal((await get(a, undefined, dl(frozen))).status, 404);
  });

  it("the admin bypass still returns the original", async () => {
    const { id, original } = await uploadOnA();
    await quarantine(adminOnA, "a.test", id);
    const res = await get(
      a,
      adminOnA,
      `${v1Download("a.test", id)}?admin_unsafely_bypass_quarantine=true`,
    );
    assert.equal(res.status, 200);
    assert.ok(res.bytes.equals(original), "the original");
    assert.notEqual(res.headers.get("cache-control"), "no-store");
  });

  it("unquarantine serves the original again, and its thumbnail, nothing stale", async () => {
    const { id, original } = await uploadOnA();
    const real = await get(a, aliceOnA, v1Thumb("a.test", id, 96, 96, "crop"));
    await quarantine(adminOnA, "a.test", id);
    await assertPlaceholder(await get(a, aliceOnA, v1Download("a.test", id)), 512, 512);
    await assertPlaceholder(await get(a, aliceOnA, v1Thumb("a.test", id, 96, 96, "crop")), 96, 96);
    await quarantine(adminOnA, "a.test", id, true);
    const file = await get(a, aliceOnA, v1Download("a.test", id));
    assert.equal(file.status, 200);
    assert.ok(file.bytes.equals(original), "the original again");
    assert.equal(file.headers.get("etag"), "1");
    assert.match(file.headers.get("content-disposition") ?? "", /secret-holiday-name\.png/);
    const thumb = await get(a, aliceOnA, v1Thumb("a.test", id, 96, 96, "crop"));
    assert.equal(thumb.status, 200);
    assert.ok(thumb.bytes.equals(real.bytes), "the real thumbnail again");
  });

  it("non-quarantined media is served as before with placeholders on", async () => {
    const { id, original } = await uploadOnA();
    const before = await metric(a.baseUrl, SERVED, 'kind="download"');
    const res = await get(a, aliceOnA, v1Download("a.test", id));
    assert.equal(res.status, 200);
    assert.ok(res.bytes.equals(original), "the original");
    assert.equal(
      res.headers.get("cache-control"),
      "public,max-age=86400,s-maxage=0,proxy-revalidate",
    );
    assert.equal((await metric(a.baseUrl, SERVED, 'kind="download"')) - before, 0);
  });

  it("federation downloads and thumbnails of quarantined media stay 404", async () => {
    const quarantined = (await uploadOnA()).id;
    const free = (await uploadOnA()).id;
    await quarantine(adminOnA, "a.test", quarantined);
    const before = await metric(a.baseUrl, SERVED, 'kind="download"');
    const federation = async (path: string) => {
      const authorization = b.app.signer.authorizationHeader("GET", path, "a.test");
      return download(a.baseUrl, path, { headers: { authorization } });
    };
    const paths = (id: string) => [
      `/_matrix/federation/v1/media/download/${id}`,
      `/_matrix/federation/v1/media/thumbnail/${id}?width=96&height=96&method=crop`,
    ];
    for (const path of paths(free)) {
      assert.equal((await federation(path)).status, 200, `signed requests work: ${path}`);
    }
    for (const path of paths(quarantined)) {
      const res = await federation(path);
      assert.equal(res.status, 404, path);
      assert.equal(JSON.parse(res.bytes.toString()).errcode, "M_NOT_FOUND");
    }
    assert.equal((await metric(a.baseUrl, SERVED, 'kind="download"')) - before, 0);
  });

  it("cached remote media that is quarantined gets the placeholder too", async () => {
    const original = await colourfulPng();
    const id = await uploadBytes(bobOnB.http, original, {
      contentType: "image/png",
      filename: SECRET_NAME,
    });
    const fetched = await get(a, aliceOnA, v1Download("b.test", id));
    assert.equal(fetched.status, 200);
    assert.ok(fetched.bytes.equals(original), "cached on A");
    await quarantine(adminOnA, "b.test", id);
    const dl = await get(a, aliceOnA, v1Download("b.test", id));
    await assertPlaceholder(dl, 512, 512);
    await assertPlaceholder(await get(a, aliceOnA, v1Thumb("b.test", id, 40, 30, "crop")), 40, 30);
    const bypass = await get(
      a,
      adminOnA,
      `${v1Download("b.test", id)}?admin_unsafely_bypass_quarantine=true`,
    );
    assert.ok(bypass.bytes.equals(original), "the original through the bypass");
    // B's copy is not quarantined: B serves it as ever.
    assert.ok(
      (await get(b, bobOnB, v1Download("b.test", id))).bytes.equals(original),
      "B serves its own copy",
    );
  });

  it("a remote fetch quarantined on arrival (by hash) gets the placeholder thumbnail", async () => {
    // The same bytes quarantined on A, then uploaded on B (B knows nothing of it).
    const { id: local, original } = await uploadOnA();
    await quarantine(adminOnA, "a.test", local);
    const id = await uploadBytes(bobOnB.http, original, { contentType: "image/png" });
    const thumb = await get(a, aliceOnA, v1Thumb("b.test", id, 64, 64, "crop"));
    await assertPlaceholder(thumb, 64, 64);
    const row = await a.app.database.db
      .selectFrom("remote_media_cache")
      .select("quarantined_by")
      .where("media_origin", "=", "b.test")
      .where("media_id", "=", id)
      .executeTakeFirstOrThrow();
    assert.equal(row.quarantined_by, "system", "fetched, cached and quarantined on arrival");
  });
});
