/**
 * mxcd over HTTP with `media_store: { engine: s3 }` on an in-process s3rver:
 * upload, download, ranges, thumbnails and admin delete land in (and leave)
 * the bucket; `presigned_redirects` sends client v1 downloads to S3 with a
 * 307, but never quarantined media, the admin bypass or legacy downloads.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import sharp from "sharp";
import { download, uploadBytes } from "./support/media.js";
import { startS3rver, type TestS3 } from "./support/s3rver.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const V1 = "/_matrix/client/v1/media/download/test.local";
const THUMB = "/_matrix/client/v1/media/thumbnail/test.local";
const ADMIN = "/_synapse/admin/v1";

let s3: TestS3;
let bucket: S3Client;
before(async () => {
  s3 = await startS3rver();
  bucket = s3.client();
});
after(async () => {
  bucket.destroy();
  await s3.stop();
});

/** Every object name in the bucket under `prefix`, sorted (one page is plenty here). */
async function objects(prefix: string): Promise<string[]> {
  const page = await bucket.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
  return (page.Contents ?? []).map((object) => object.Key!).sort();
}

/** The object names that belong to local media `id` (its bytes and thumbnails). */
function objectsOf(keys: string[], id: string): string[] {
  const path = `${id.slice(0, 2)}/${id.slice(2, 4)}/${id.slice(4)}`;
  return keys.filter(
    (key) => key.includes(`/local_content/${path}`) || key.includes(`/local_thumbnails/${path}/`),
  );
}

/** GET without following redirects. */
async function getManual(baseUrl: string, path: string, token: string) {
  const response = await fetch(new URL(path, baseUrl), {
    headers: { authorization: `Bearer ${token}` },
    redirect: "manual",
  });
  await response.arrayBuffer();
  return response;
}

describe("media on S3", () => {
  let server: TestServer;
  let alice: TestUser;
  let admin: TestUser;
  before(async () => {
    server = await startTestServer("sqlite", {
      media_store: s3.storeConfig({ prefix: "proxied/" }),
    });
    alice = await server.user("alice");
    admin = await server.user("admin", { admin: true });
  });
  after(() => server.stop());

  it("stores an upload under the prefix in Synapse's layout and serves it back", async () => {
    const bytes = randomBytes(100_000);
    const id = await uploadBytes(alice.http, bytes, {
      contentType: "image/png",
      filename: "a.png",
    });
    const path = `${id.slice(0, 2)}/${id.slice(2, 4)}/${id.slice(4)}`;
    assert.deepEqual(await objects(`proxied/local_content/${path}`), [
      `proxied/local_content/${path}`,
    ]);
    const got = await download(server.baseUrl, `${V1}/${id}`, { token: alice.token });
    assert.equal(got.status, 200);
    assert.deepEqual(got.bytes, bytes);
    assert.equal(got.headers.get("content-type"), "image/png");
    assert.equal(got.headers.get("content-disposition"), "inline; filename=a.png");
  });

  it("answers range requests from S3", async () => {
    const id = await uploadBytes(alice.http, "0123456789abcdef");
    for (const [range, expected] of [
      ["bytes=2-5", "2345"],
      ["bytes=0-0", "0"],
      ["bytes=-3", "def"],
      ["bytes=10-", "abcdef"],
    ]) {
      const got = await download(server.baseUrl, `${V1}/${id}`, {
        token: alice.token,
        headers: { range: range! },
      });
      assert.equal(got.status, 206, range);
      assert.equal(got.bytes.toString(), expected, range);
    }
  });

  it("thumbnails a PNG, and an admin delete removes the bytes and every thumbnail object", async () => {
    const png = await sharp({
      create: { width: 640, height: 480, channels: 3, background: { r: 10, g: 90, b: 200 } },
    })
      .png()
      .toBuffer();
    const id = await uploadBytes(alice.http, png, { contentType: "image/png" });
    const thumb = await download(server.baseUrl, `${THUMB}/${id}?width=32&height=32&method=crop`, {
      token: alice.token,
    });
    assert.equal(thumb.status, 200);
    const meta = await sharp(thumb.bytes).metadata();
    assert.deepEqual([meta.format, meta.width, meta.height], ["png", 32, 32]);
    const stored = objectsOf(await objects("proxied/"), id);
    assert.ok(stored.filter((key) => key.includes("/local_thumbnails/")).length >= 1, `${stored}`);

    const res = await admin.http.delete(`${ADMIN}/media/test.local/${id}`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { deleted_media: [id], total: 1 });
    assert.deepEqual(objectsOf(await objects("proxied/"), id), []);
    const gone = await download(server.baseUrl, `${V1}/${id}`, { token: alice.token });
    assert.equal(gone.status, 404);
  });
});

describe("media on S3 with presigned_redirects", () => {
  let server: TestServer;
  let alice: TestUser;
  let admin: TestUser;
  before(async () => {
    server = await startTestServer("sqlite", {
      media_store: s3.storeConfig({ prefix: "presigned/", presigned_redirects: true }),
      enable_authenticated_media: false,
    });
    alice = await server.user("alice");
    admin = await server.user("admin", { admin: true });
  });
  after(() => server.stop());

  it("answers a client v1 download with 307 to a URL that serves the bytes and headers", async () => {
    const bytes = randomBytes(20_000);
    const id = await uploadBytes(alice.http, bytes, {
      contentType: "image/png",
      filename: "b.png",
    });
    const res = await getManual(server.baseUrl, `${V1}/${id}/other.png`, alice.token);
    assert.equal(res.status, 307);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const location = res.headers.get("location")!;
    assert.ok(location.startsWith(`${s3.endpoint}/${s3.bucket}/presigned/local_content/`));
    assert.match(location, /X-Amz-Expires=300&/);
    const got = await fetch(location);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), bytes);
    assert.equal(got.headers.get("content-type"), "image/png");
    assert.equal(got.headers.get("content-disposition"), "inline; filename=other.png");
    const text = await uploadBytes(alice.http, "hello", { contentType: "text/html" });
    const html = await fetch(
      (await getManual(server.baseUrl, `${V1}/${text}`, alice.token)).headers.get("location")!,
    );
    assert.equal(html.headers.get("content-type"), "text/html; charset=UTF-8");
    assert.equal(html.headers.get("content-disposition"), "attachment");
    await html.arrayBuffer();
    const chicken = await uploadBytes(alice.http, "x", {
      contentType: "image/png",
      filename: "🐔",
    });
    const named = await getManual(server.baseUrl, `${V1}/${chicken}`, alice.token);
    const signed = await fetch(named.headers.get("location")!);
    assert.equal(
      signed.headers.get("content-disposition"),
      "inline; filename*=utf-8''%F0%9F%90%94",
    );
    await signed.arrayBuffer();
  });

  it("proxies legacy downloads, thumbnails and the admin quarantine bypass", async () => {
    const id = await uploadBytes(alice.http, "proxied bytes");
    const legacy = await download(server.baseUrl, `/_matrix/media/v3/download/test.local/${id}`);
    assert.deepEqual([legacy.status, legacy.bytes.toString()], [200, "proxied bytes"]);
    const bypass = await getManual(
      server.baseUrl,
      `${V1}/${id}?admin_unsafely_bypass_quarantine=true`,
      admin.token,
    );
    assert.equal(bypass.status, 200);
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: "red" } })
      .png()
      .toBuffer();
    const image = await uploadBytes(alice.http, png, { contentType: "image/png" });
    const thumb = await getManual(
      server.baseUrl,
      `${THUMB}/${image}?width=32&height=32&method=crop`,
      alice.token,
    );
    assert.equal(thumb.status, 200);
  });

  it("answers 404 for quarantined media, with no redirect", async () => {
    const id = await uploadBytes(alice.http, "bad bytes");
    const res = await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`);
    assert.equal(res.status, 200, res.text);
    const got = await getManual(server.baseUrl, `${V1}/${id}`, alice.token);
    assert.equal(got.status, 404);
    assert.equal(got.headers.get("location"), null);
    const bypass = await getManual(
      server.baseUrl,
      `${V1}/${id}?admin_unsafely_bypass_quarantine=true`,
      admin.token,
    );
    assert.equal(bypass.status, 200);
  });
});
