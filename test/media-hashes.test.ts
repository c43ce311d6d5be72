/**
 * Stored hashes (docs/trust-and-safety.md "Stored hashes"): MD5 computed
 * while bytes stream in, on every admission path (upload, async upload,
 * remote fetch, URL-preview image), agreeing with `md5sum`; PDQ computed
 * after admission through the bounded queue (a fake hasher: nothing here
 * depends on the real one); both exposed in the admin media info, the user
 * media list and every quarantine-feed record; hostile hashers (throwing,
 * hanging) leave a reason and a working server.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { forEachEngine } from "./support/databases.js";
import { FakePdqHasher } from "./support/fake-pdq-hasher.js";
import { download, mediaIdOf, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { freePort } from "./support/postgres-cluster.js";
import {
  listenPreviewOrigin,
  newPreviewOrigin,
  ORIGIN_HOST,
  type PreviewOrigin,
} from "./support/preview-origin.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const ADMIN = "/_synapse/admin/v1";
const CONCURRENCY = 2;

/** The first field of `<program> <file>` (md5sum, sha256sum). */
function sumOf(program: string, bytes: Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-hashes-"));
  const path = join(dir, "file");
  writeFileSync(path, bytes);
  return execFileSync(program, [path], { encoding: "utf8" }).split(" ")[0]!;
}

async function png(seed: number, size = 64): Promise<Buffer> {
  return sharp({
    create: {
      width: size,
      height: size,
      channels: 3,
      background: { r: seed % 256, g: (seed * 7) % 256, b: (seed * 13) % 256 },
    },
  })
    .png()
    .toBuffer();
}

forEachEngine("stored hashes", (engine) => {
  const hasher = new FakePdqHasher();
  let a: TestServer;
  let b: TestServer;
  let origin: PreviewOrigin;
  let admin: TestUser;
  let alice: TestUser;
  let bob: TestUser;
  let previewPng: Buffer = Buffer.alloc(0);

  /** The stored hash columns of a local row. */
  const localRow = (mediaId: string) =>
    a.app.database.db
      .selectFrom("local_media_repository")
      .select(["md5", "pdq", "pdq_quality", "pdq_status", "pdq_reason"])
      .where("media_id", "=", mediaId)
      .executeTakeFirstOrThrow();
  const waitHashed = (mediaId: string) =>
    waitFor(async () => (await localRow(mediaId)).pdq_status !== null, `PDQ outcome of ${mediaId}`);
  const info = async (server: string, mediaId: string) => {
    const res = await admin.http.get(`${ADMIN}/media/${server}/${mediaId}`);
    assert.equal(res.status, 200);
    return res.body.media_info;
  };

  before(async () => {
    previewPng = await png(200, 40);
    origin = newPreviewOrigin();
    await listenPreviewOrigin(origin, {
      "/og": (_q, res) => {
        res.writeHead(200, { "content-type": "text/html" });
        res.end(`<html><head><meta property="og:title" content="t">
          <meta property="og:image" content="/img.png"></head></html>`);
      },
      "/img.png": (_q, res) => {
        res.writeHead(200, { "content-type": "image/png" });
        res.end(previewPng);
      },
    });
    const [portA, portB] = [await freePort(), await freePort()];
    const resolvers = {
      "a.test": `http://127.0.0.1:${portA}`,
      "b.test": `http://127.0.0.1:${portB}`,
    };
    const common = { ip_range_whitelist: ["127.0.0.0/8"], federation_custom_resolvers: resolvers };
    b = await startTestServer(engine, {
      ...common,
      server_name: "b.test",
      listen: { host: "127.0.0.1", port: portB },
    });
    a = await startTestServer(
      engine,
      {
        ...common,
        server_name: "a.test",
        listen: { host: "127.0.0.1", port: portA },
        max_thumbnail_concurrency: CONCURRENCY,
        // No pre-generation: the decode slots are the hasher's alone here.
        thumbnail_sizes: [],
        thumbnail_timeout: "1s",
        url_preview_enabled: true,
        url_preview_ip_range_blacklist: ["10.0.0.0/8"],
        url_preview_ip_range_whitelist: [`${ORIGIN_HOST}/32`],
      },
      { appOptions: { pdqHasher: hasher.hash } },
    );
    admin = await a.user("admin", { admin: true });
    alice = await a.user("alice");
    bob = await b.user("bob");
  });
  after(async () => {
    hasher.release();
    hasher.endHangs();
    await a?.stop();
    await b?.stop();
    origin?.server.closeAllConnections();
    await new Promise((r) => origin?.server.close(r));
  });

  it("an upload's MD5 agrees with md5sum (and SHA-256 with sha256sum); its PDQ is stored", async () => {
    const bytes = await png(1);
    const id = await uploadBytes(alice.http, bytes, { contentType: "image/png" });
    const first = await info("a.test", id);
    assert.equal(first.md5, sumOf("md5sum", bytes));
    assert.equal(first.sha256, sumOf("sha256sum", bytes));
    await waitHashed(id);
    const row = await localRow(id);
    assert.deepEqual(row, {
      md5: sumOf("md5sum", bytes),
      pdq: FakePdqHasher.hashOf(bytes),
      pdq_quality: 90,
      pdq_status: "hashed",
      pdq_reason: null,
    });
    const shown = await info("a.test", id);
    assert.equal(shown.pdq, FakePdqHasher.hashOf(bytes));
    assert.equal(shown.pdq_quality, 90);
    // The user media list rows carry them too.
    const list = await admin.http.get(`${ADMIN}/users/${encodeURIComponent(alice.userId)}/media`);
    assert.equal(list.status, 200);
    const listed = list.body.media.find((m: { media_id: string }) => m.media_id === id);
    assert.equal(listed.md5, sumOf("md5sum", bytes));
    assert.equal(listed.pdq, FakePdqHasher.hashOf(bytes));
    assert.equal(listed.pdq_quality, 90);
  });

  it("an async upload (create, then PUT) gets MD5 and PDQ", async () => {
    const bytes = await png(2);
    const created = await alice.http.post("/_matrix/media/v1/create", {});
    assert.equal(created.status, 200);
    const id = mediaIdOf(created.body.content_uri);
    const put = await alice.http.request("PUT", `/_matrix/media/v3/upload/a.test/${id}`, {
      rawBody: bytes,
      headers: { "content-type": "image/png" },
    });
    assert.equal(put.status, 200);
    await waitHashed(id);
    const row = await localRow(id);
    assert.equal(row.md5, sumOf("md5sum", bytes));
    assert.equal(row.pdq, FakePdqHasher.hashOf(bytes));
  });

  it("a non-image gets its MD5 and 'no PDQ: not an image', without a call to the hasher", async () => {
    const bytes = randomBytes(100_000);
    const calls = hasher.calls;
    const id = await uploadBytes(alice.http, bytes, { contentType: "application/pdf" });
    const row = await localRow(id);
    assert.deepEqual(row, {
      md5: sumOf("md5sum", bytes),
      pdq: null,
      pdq_quality: null,
      pdq_status: "none",
      pdq_reason: "not an image",
    });
    const shown = await info("a.test", id);
    assert.equal(shown.md5, sumOf("md5sum", bytes));
    assert.equal(shown.pdq, null);
    assert.equal(shown.pdq_quality, null);
    assert.equal(hasher.calls, calls);
  });

  it("bytes labelled image/* that are no image get no PDQ, with the reason, and no hasher call", async () => {
    const calls = hasher.calls;
    const id = await uploadBytes(alice.http, "plain text", { contentType: "image/png" });
    await waitHashed(id);
    const row = await localRow(id);
    assert.equal(row.pdq_status, "none");
    assert.equal(row.pdq_reason, "not a supported image format");
    assert.equal(row.md5, createHash("md5").update("plain text").digest("hex"));
    assert.equal(hasher.calls, calls);
  });

  it("remote media fetched over federation gets MD5 and PDQ on the fetching server", async () => {
    const bytes = await png(3);
    const id = await uploadBytes(bob.http, bytes, { contentType: "image/png" });
    const got = await download(a.baseUrl, `/_matrix/client/v1/media/download/b.test/${id}`, {
      token: alice.token,
    });
    assert.equal(got.status, 200);
    const remoteRow = () =>
      a.app.database.db
        .selectFrom("remote_media_cache")
        .select(["md5", "pdq", "pdq_quality", "pdq_status"])
        .where("media_origin", "=", "b.test")
        .where("media_id", "=", id)
        .executeTakeFirstOrThrow();
    await waitFor(async () => (await remoteRow()).pdq_status !== null, "remote PDQ");
    const shown = await info("b.test", id);
    assert.equal(shown.md5, sumOf("md5sum", bytes));
    assert.equal(shown.pdq, FakePdqHasher.hashOf(bytes));
    assert.equal(shown.pdq_quality, 90);
  });

  it("a URL-preview image gets MD5 and PDQ", async () => {
    const res = await alice.http.get(
      `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(`${origin.base}/og`)}`,
    );
    assert.equal(res.status, 200);
    const id = mediaIdOf(res.body["og:image"]);
    await waitHashed(id);
    const row = await localRow(id);
    assert.equal(row.md5, sumOf("md5sum", previewPng));
    assert.equal(row.pdq, FakePdqHasher.hashOf(previewPng));
  });

  it("every quarantine-feed record carries md5, pdq and pdq_quality beside sha256", async () => {
    const image = await png(4);
    const imageId = await uploadBytes(alice.http, image, { contentType: "image/png" });
    await waitHashed(imageId);
    const other = randomBytes(5000);
    const otherId = await uploadBytes(alice.http, other, { contentType: "application/zip" });
    for (const id of [imageId, otherId]) {
      const q = await admin.http.post(`${ADMIN}/media/quarantine/a.test/${id}`, {});
      assert.equal(q.status, 200);
    }
    const feed = await admin.http.get(`${ADMIN}/media/quarantine_changes?from=0&limit=1000`);
    assert.equal(feed.status, 200);
    const byId = new Map(feed.body.changes.map((c: { media_id: string }) => [c.media_id, c]));
    assert.deepEqual(byId.get(imageId), {
      ...(byId.get(imageId) as object),
      origin: "a.test",
      quarantined: true,
      sha256: sumOf("sha256sum", image),
      md5: sumOf("md5sum", image),
      pdq: FakePdqHasher.hashOf(image),
      pdq_quality: 90,
    });
    assert.deepEqual(byId.get(otherId), {
      ...(byId.get(otherId) as object),
      md5: sumOf("md5sum", other),
      pdq: null,
      pdq_quality: null,
    });
    for (const change of feed.body.changes) {
      for (const field of ["md5", "pdq", "pdq_quality"]) assert.ok(field in change, field);
    }
  });

  it("a hasher that throws leaves 'no hash' with the reason; the server carries on", async () => {
    hasher.mode = "throw";
    const id = await uploadBytes(alice.http, await png(5), { contentType: "image/png" });
    await waitHashed(id);
    hasher.mode = "ok";
    const row = await localRow(id);
    assert.equal(row.pdq_status, "none");
    assert.equal(row.pdq, null);
    assert.match(row.pdq_reason!, /hasher failed: fake hasher exploded/);
    const next = await uploadBytes(alice.http, await png(6), { contentType: "image/png" });
    await waitHashed(next);
    assert.equal((await localRow(next)).pdq_status, "hashed");
  });

  it("a hasher that hangs times out with the reason and gives its slot back", async () => {
    hasher.mode = "hang";
    const ids: string[] = [];
    // More hung hashes than slots: each must give its slot back on time-out.
    for (let i = 0; i < CONCURRENCY + 1; i++) {
      ids.push(await uploadBytes(alice.http, await png(10 + i), { contentType: "image/png" }));
    }
    for (const id of ids) await waitHashed(id);
    hasher.mode = "ok";
    // The hung calls finish late: their hashes are not stored over the time-out.
    hasher.endHangs();
    await waitFor(() => hasher.inFlight === 0, "the hung calls to end");
    for (const id of ids) {
      const row = await localRow(id);
      assert.equal(row.pdq_status, "none");
      assert.equal(row.pdq, null);
      assert.match(row.pdq_reason!, /hasher timed out after 1000 ms/);
    }
    const next = await uploadBytes(alice.http, await png(20), { contentType: "image/png" });
    await waitHashed(next);
    assert.equal((await localRow(next)).pdq_status, "hashed");
  });

  it("the queue hashes at most max_thumbnail_concurrency items at once", async () => {
    hasher.block();
    hasher.maxInFlight = hasher.inFlight;
    const n = 8;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      ids.push(await uploadBytes(alice.http, await png(30 + i), { contentType: "image/png" }));
    }
    // Every item is in the queue: CONCURRENCY at the hasher, the rest waiting.
    await waitFor(
      async () =>
        hasher.inFlight === CONCURRENCY &&
        (await metric(a.baseUrl, "mxcd_media_hash_queue", 'state="queued"')) === n - CONCURRENCY,
      "a full set of blocked hashes and the rest queued",
    );
    assert.equal(await metric(a.baseUrl, "mxcd_media_hash_queue", 'state="running"'), CONCURRENCY);
    hasher.release();
    for (const id of ids) await waitHashed(id);
    assert.ok(
      hasher.maxInFlight <= CONCURRENCY,
      `at most ${CONCURRENCY}, saw ${hasher.maxInFlight}`,
    );
    for (const id of ids) assert.equal((await localRow(id)).pdq_status, "hashed");
  });
});

describe("md5 of the UploadMeter", () => {
  it("agrees with md5sum for a file streamed in many chunks", async () => {
    const { UploadMeter } = await import("../src/media/upload-meter.js");
    const bytes = randomBytes(3_000_001);
    const meter = new UploadMeter(bytes.length);
    const done = meter.toArray();
    for (let at = 0; at < bytes.length; at += 65_537) meter.write(bytes.subarray(at, at + 65_537));
    meter.end();
    await done;
    assert.equal(meter.md5(), sumOf("md5sum", bytes));
    assert.equal(meter.sha256(), sumOf("sha256sum", bytes));
  });
});

describe("md5 of `mxcd import synapse --copy` (MediaCopier)", () => {
  it("is computed in the copying pass and agrees with md5sum", async () => {
    const { MediaCopier } = await import("../src/importer/media-copier.js");
    const { FilesystemMediaSource } = await import("../src/importer/media-source.js");
    const { MemoryBlobStore } = await import("../src/storage/memory/memory-blob-store.js");
    const root = mkdtempSync(join(tmpdir(), "mxcd-copy-md5-"));
    const bytes = randomBytes(1_000_003);
    const key = "local_content/ab/cd/efghijklmnop";
    mkdirSync(join(root, "local_content", "ab", "cd"), { recursive: true });
    writeFileSync(join(root, key), bytes);
    const copier = new MediaCopier(new FilesystemMediaSource(root), new MemoryBlobStore());
    const outcome = await copier.copy(
      { sourceKey: key, destKey: key, length: bytes.length, sha256: null },
      false,
    );
    assert.deepEqual(outcome, {
      ok: true,
      sha256: sumOf("sha256sum", bytes),
      md5: sumOf("md5sum", bytes),
    });
  });
});
