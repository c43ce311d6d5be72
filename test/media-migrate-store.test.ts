import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { describe, it } from "node:test";
import { createApp } from "../src/app.js";
import { validateConfig } from "../src/config/load-config.js";
import { createLogger } from "../src/logging/logger.js";
import { listKeys, migrateStore } from "../src/media/store-migration.js";
import type { BlobStore } from "../src/storage/blob-store.js";
import { createBlobStore } from "../src/storage/create-blob-store.js";
import { FilesystemBlobStore } from "../src/storage/filesystem/filesystem-blob-store.js";
import { runCli } from "./support/cli.js";
import { HttpClient } from "./support/http-client.js";
import { download, uploadBytes } from "./support/media.js";
import { startS3rver } from "./support/s3rver.js";

const temp = () => mkdtempSync(join(tmpdir(), "mxcd-migrate-"));

async function fill(store: BlobStore, count: number): Promise<Map<string, Buffer>> {
  const blobs = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const key = `local_content/ab/c${i % 3}/media${i}`;
    const bytes = randomBytes(100 + i * 37);
    await store.write(key, Readable.from([bytes]));
    blobs.set(key, bytes);
  }
  return blobs;
}

async function bytesOf(store: BlobStore, key: string): Promise<Buffer> {
  return Buffer.concat((await (await store.read(key)).toArray()) as Buffer[]);
}

describe("media store migration", () => {
  it("copies every blob, verified, and a second run skips them all", async () => {
    const from = new FilesystemBlobStore(temp());
    const to = new FilesystemBlobStore(temp());
    const blobs = await fill(from, 30);
    const keys = await listKeys(from);
    const first = await migrateStore(from, to, keys);
    assert.deepEqual([first.copied, first.skipped, first.failed.length], [30, 0, 0]);
    for (const [key, bytes] of blobs) assert.deepEqual(await bytesOf(to, key), bytes);
    const again = await migrateStore(from, to, keys);
    assert.deepEqual([again.copied, again.skipped], [0, 30]);
  });

  it("moves blobs from a filesystem store to S3 and back, byte for byte", async () => {
    const s3 = await startS3rver();
    try {
      const fs = new FilesystemBlobStore(temp());
      const bucket = createBlobStore(
        validateConfig({ server_name: "x.test", media_store: s3.storeConfig() }).media_store,
      );
      const blobs = await fill(fs, 12);
      const up = await migrateStore(fs, bucket, await listKeys(fs));
      assert.deepEqual([up.copied, up.failed.length], [12, 0]);
      assert.deepEqual(await listKeys(bucket), [...blobs.keys()].sort());
      const back = new FilesystemBlobStore(temp());
      const down = await migrateStore(bucket, back, await listKeys(bucket));
      assert.deepEqual([down.copied, down.failed.length], [12, 0]);
      for (const [key, bytes] of blobs) assert.deepEqual(await bytesOf(back, key), bytes);
      await bucket.close?.();
    } finally {
      await s3.stop();
    }
  });

  it("resumes: recopies a destination blob of the wrong size", async () => {
    const from = new FilesystemBlobStore(temp());
    const to = new FilesystemBlobStore(temp());
    const blobs = await fill(from, 5);
    const [key] = [...blobs.keys()];
    await to.write(key!, Readable.from([Buffer.from("partial")]));
    const result = await migrateStore(from, to, await listKeys(from));
    assert.equal(result.copied, 5);
    assert.deepEqual(await bytesOf(to, key!), blobs.get(key!));
  });

  it("reports and removes a copy that does not verify", async () => {
    const from = new FilesystemBlobStore(temp());
    const real = new FilesystemBlobStore(temp());
    await fill(from, 3);
    // A destination that corrupts what it stores.
    const corrupt: BlobStore = {
      ...real,
      stat: (k) => real.stat(k),
      read: (k, r) => real.read(k, r),
      delete: (k) => real.delete(k),
      list: (p) => real.list(p),
      write: async (k, source) => {
        const flipped = new PassThrough();
        (source as Readable).on("data", (c: Buffer) =>
          flipped.write(Buffer.from(c.map((b) => b ^ 1))),
        );
        (source as Readable).on("end", () => flipped.end());
        return real.write(k, flipped);
      },
    };
    const result = await migrateStore(from, corrupt, await listKeys(from));
    assert.equal(result.failed.length, 3);
    assert.deepEqual(await listKeys(real), []);
  });

  it("mxcd media migrate-store moves a server's media to a new store it then serves from", async () => {
    const dir = temp();
    const database = { engine: "sqlite" as const, path: join(dir, "mxcd.sqlite") };
    const base = {
      server_name: "test.local",
      listen: { host: "127.0.0.1", port: 0 },
      database,
      signing_key_path: join(dir, "signing.key"),
      log_level: "silent",
    };
    const oldStore = { engine: "filesystem" as const, path: join(dir, "old-media") };
    const newStore = { engine: "filesystem" as const, path: join(dir, "new-media") };
    const first = createApp(
      validateConfig({ ...base, media_store: oldStore }),
      createLogger("silent"),
    );
    const url = await first.start();
    const userId = await first.accounts.register({ localpart: "u", password: "p", admin: false });
    const { accessToken } = await first.accounts.issueToken(userId, null);
    const bytes = randomBytes(5000);
    const id = await uploadBytes(new HttpClient(url, accessToken), bytes);
    await first.stop();

    writeFileSync(join(dir, "from.yaml"), JSON.stringify({ ...base, media_store: oldStore }));
    writeFileSync(join(dir, "to.yaml"), JSON.stringify({ ...base, media_store: newStore }));
    const run = await runCli(["media", "migrate-store", "--from", "from.yaml", "--to", "to.yaml"], {
      cwd: dir,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /copied 1 .* failed 0/);

    const second = createApp(
      validateConfig({ ...base, media_store: newStore }),
      createLogger("silent"),
    );
    const url2 = await second.start();
    try {
      const got = await download(url2, `/_matrix/client/v1/media/download/test.local/${id}`, {
        token: accessToken,
      });
      assert.equal(got.status, 200);
      assert.deepEqual(got.bytes, bytes);
    } finally {
      await second.stop();
    }
  });
});
