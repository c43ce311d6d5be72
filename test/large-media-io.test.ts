/**
 * Large media through the filesystem store (issue 15, "Large files" and
 * "Upload"): multi-MiB uploads and downloads are byte-exact, ranges that
 * start or end at the 256 KiB read-chunk boundaries are exact, a read never
 * serves more than the size the file had when it was opened, an upload's
 * write buffers many body chunks before it pushes back (one `writev` per
 * thread-pool round trip, not one write per 64 KiB), and the guarantees hold
 * with the larger buffers: a refused or aborted upload leaves no file, the
 * hash is over exactly the stored bytes, and quarantine by hash applies on
 * arrival.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { appendFileSync, mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { FilesystemBlobStore } from "../src/storage/filesystem/filesystem-blob-store.js";
import { localContentKey } from "../src/storage/media-paths.js";
import { readAll } from "./storage/blob-store-contract.js";
import { forEachEngine } from "./support/databases.js";
import { allKeys, download, mediaIdOf } from "./support/media.js";
import { storeTempFiles } from "./support/store-files.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const V1 = "/_matrix/client/v1/media/download/test.local";
const ADMIN = "/_synapse/admin/v1";
const KIB = 1024;
const MIB = 1024 * KIB;
/** The filesystem store's read chunk. */
const CHUNK = 256 * KIB;

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

describe("filesystem store: large reads and writes", () => {
  let root: string;
  let store: FilesystemBlobStore;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "mxcd-large-io-"));
    store = new FilesystemBlobStore(root);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it("serves no byte beyond the size the file had when it was opened", async () => {
    const bytes = randomBytes(CHUNK + 100);
    await store.write("a/grows", Readable.from([bytes]));
    const whole = await store.read("a/grows");
    const tail = await store.read("a/grows", { start: CHUNK, end: CHUNK + 10_000 });
    // The response's Content-Length was fixed from the row; a file that grew
    // after the open must not push extra bytes after it.
    appendFileSync(join(root, "a", "grows"), randomBytes(3 * CHUNK));
    assert.deepEqual(await readAll(whole), bytes);
    assert.deepEqual(await readAll(tail), bytes.subarray(CHUNK));
  });

  it("reads an empty blob, and a range past the end, as no bytes", async () => {
    await store.write("a/empty", Readable.from([Buffer.alloc(0)]));
    assert.equal((await readAll(await store.read("a/empty"))).length, 0);
    await store.write("a/small", Readable.from([Buffer.from("small")]));
    assert.equal((await readAll(await store.read("a/small", { start: 10, end: 20 }))).length, 0);
  });

  it("buffers many 64 KiB chunks per write instead of pausing the source at each", async () => {
    const chunks = Array.from({ length: 64 }, () => randomBytes(64 * KIB));
    const source = Readable.from(chunks, { objectMode: false });
    let pauses = 0;
    source.on("pause", () => {
      pauses += 1;
    });
    const stat = await store.write("a/chunks", source);
    assert.equal(stat.size, 64 * 64 * KIB);
    assert.equal(
      sha256(await readAll(await store.read("a/chunks"))),
      sha256(Buffer.concat(chunks)),
    );
    // With Node's 16 KiB default every 64 KiB chunk pushes back (64 pauses);
    // with 1 MiB of room it pushes back about once per MiB.
    assert.ok(pauses <= 16, `the source was paused ${pauses} times for 64 chunks`);
  });
});

forEachEngine("large uploads and downloads", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let admin: TestUser;
  let mediaRoot: string;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "mxcd-large-media-"));
    mediaRoot = join(dir, "media");
    server = await startTestServer(engine, {
      max_upload_size: 6 * MIB,
      media_store: { engine: "filesystem", path: mediaRoot },
    });
    alice = await server.user("alice");
    admin = await server.user("admin", { admin: true });
  });
  after(() => server.stop());

  /** A chunked (no Content-Length) POST /upload writing `chunks` one after another. */
  function chunkedUpload(
    chunks: readonly Buffer[],
    options: { abortAfter?: number } = {},
  ): Promise<{ status: number; body: string }> {
    const url = new URL("/_matrix/media/v3/upload", server.baseUrl);
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method: "POST",
        headers: {
          authorization: `Bearer ${alice.token}`,
          "content-type": "application/octet-stream",
          "transfer-encoding": "chunked",
        },
      });
      req.on("response", (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      void (async () => {
        for (const [i, chunk] of chunks.entries()) {
          if (req.destroyed) return;
          if (!req.write(chunk)) await new Promise((d) => req.once("drain", d));
          if (options.abortAfter === i + 1) {
            // Only once the server is writing this upload to a temp file.
            await waitFor(() => storeTempFiles(mediaRoot).length > 0, "the upload's temp file");
            req.destroy();
            resolve({ status: 0, body: "aborted" });
            return;
          }
        }
        req.end();
      })();
    });
  }

  it("uploads 5 MiB in uneven chunks and serves it byte-exact, with the hash of the stored bytes", async () => {
    const bytes = randomBytes(5 * MIB + 12_345);
    const cuts = [1, 65_535, 700_000, 2 * MIB + 3, 4 * MIB];
    const chunks = [0, ...cuts].map((start, i) => bytes.subarray(start, cuts[i] ?? bytes.length));
    const res = await chunkedUpload(chunks);
    assert.equal(res.status, 200, res.body);
    const mediaId = mediaIdOf((JSON.parse(res.body) as { content_uri: string }).content_uri);
    const got = await download(server.baseUrl, `${V1}/${mediaId}`, { token: alice.token });
    assert.equal(got.status, 200);
    assert.equal(got.headers.get("content-length"), String(bytes.length));
    assert.equal(sha256(got.bytes), sha256(bytes));
    const row = await server.app.database.db
      .selectFrom("local_media_repository")
      .select(["sha256", "media_length"])
      .where("media_id", "=", mediaId)
      .executeTakeFirstOrThrow();
    assert.equal(row.sha256, sha256(bytes));
    assert.equal(Number(row.media_length), bytes.length);

    // Ranges that start, end or straddle the read chunks' boundaries.
    const ranges: [number, number][] = [
      [0, 0],
      [0, CHUNK - 1],
      [CHUNK - 1, CHUNK],
      [CHUNK, 2 * CHUNK - 1],
      [CHUNK - 5, 3 * CHUNK + 5],
      [bytes.length - CHUNK - 1, bytes.length - 1],
      [bytes.length - 1, bytes.length - 1],
    ];
    for (const [start, end] of ranges) {
      const part = await download(server.baseUrl, `${V1}/${mediaId}`, {
        token: alice.token,
        headers: { range: `bytes=${start}-${end}` },
      });
      assert.equal(part.status, 206, `${start}-${end}`);
      assert.equal(part.headers.get("content-range"), `bytes ${start}-${end}/${bytes.length}`);
      assert.deepEqual(part.bytes, bytes.subarray(start, end + 1), `${start}-${end}`);
    }
    const suffix = await download(server.baseUrl, `${V1}/${mediaId}`, {
      token: alice.token,
      headers: { range: `bytes=${bytes.length - 1000}-` },
    });
    assert.deepEqual(suffix.bytes, bytes.subarray(bytes.length - 1000));
  });

  it("serves an empty upload as an empty 200", async () => {
    const res = await chunkedUpload([]);
    assert.equal(res.status, 200, res.body);
    const mediaId = mediaIdOf((JSON.parse(res.body) as { content_uri: string }).content_uri);
    const got = await download(server.baseUrl, `${V1}/${mediaId}`, { token: alice.token });
    assert.equal(got.status, 200);
    assert.equal(got.bytes.length, 0);
    assert.equal(got.headers.get("content-length"), "0");
  });

  it("refuses an upload whose limit falls inside a large chunk, leaving no file", async () => {
    const before = await allKeys(server.app.store);
    // 6 MiB limit: the fourth 2 MiB chunk crosses it in its middle.
    const res = await chunkedUpload(Array.from({ length: 4 }, () => randomBytes(2 * MIB)));
    assert.equal(res.status, 413, res.body);
    assert.equal((JSON.parse(res.body) as { errcode: string }).errcode, "M_TOO_LARGE");
    await waitFor(() => storeTempFiles(mediaRoot).length === 0, "no temp file");
    assert.deepEqual(await allKeys(server.app.store), before);
  });

  it("leaves no file when the client goes away in the middle of a large upload", async () => {
    const before = await allKeys(server.app.store);
    await chunkedUpload(
      Array.from({ length: 4 }, () => randomBytes(MIB)),
      { abortAfter: 2 },
    );
    await waitFor(
      () => storeTempFiles(mediaRoot).length === 0,
      "the aborted upload's temp file to go",
    );
    assert.deepEqual(await allKeys(server.app.store), before);
  });

  it("quarantines a large upload on arrival when its hash is quarantined", async () => {
    const bytes = randomBytes(3 * MIB + 1);
    const first = await chunkedUpload([bytes]);
    assert.equal(first.status, 200, first.body);
    const firstId = mediaIdOf((JSON.parse(first.body) as { content_uri: string }).content_uri);
    const quarantine = await admin.http.request(
      "POST",
      `${ADMIN}/media/quarantine/test.local/${firstId}`,
    );
    assert.equal(quarantine.status, 200);
    const again = await chunkedUpload([bytes.subarray(0, MIB), bytes.subarray(MIB)]);
    assert.equal(again.status, 200, again.body);
    const againId = mediaIdOf((JSON.parse(again.body) as { content_uri: string }).content_uri);
    const row = await server.app.database.db
      .selectFrom("local_media_repository")
      .select("quarantined_by")
      .where("media_id", "=", againId)
      .executeTakeFirstOrThrow();
    assert.equal(row.quarantined_by, "system");
    const got = await download(server.baseUrl, `${V1}/${againId}`, { token: alice.token });
    assert.equal(got.status, 404);
    assert.ok(await server.app.store.stat(localContentKey(againId)));
  });
});
