/**
 * Runs the blob-store contract against the memory and filesystem backends,
 * plus the few filesystem-only checks (temp-file naming, directories, layout
 * on disk) and the factory.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import { BlobNotFoundError } from "../../src/storage/blob-store.js";
import { createBlobStore } from "../../src/storage/create-blob-store.js";
import { FilesystemBlobStore } from "../../src/storage/filesystem/filesystem-blob-store.js";
import { MemoryBlobStore } from "../../src/storage/memory/memory-blob-store.js";
import { blobStoreContract, listAll, readAll, type StoreUnderTest } from "./blob-store-contract.js";

/** Every regular file under `root`, as `/`-separated relative paths. */
function filesUnder(root: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(root, { recursive: true }).map(String);
  } catch {
    return [];
  }
  return entries
    .filter((entry) => statSync(join(root, entry)).isFile())
    .map((entry) => entry.split(sep).join("/"))
    .sort();
}

/** A filesystem store rooted one level below a fresh temp dir (so escapes would show). */
async function makeFilesystemStore(): Promise<
  StoreUnderTest & { dir: string; root: string; listAllFiles(): Promise<string[]> }
> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-blobs-"));
  const root = join(dir, "media");
  return {
    dir,
    root,
    store: new FilesystemBlobStore(root),
    async cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
    // The whole temp dir, so a file written beside the root would show up too.
    async listAllFiles() {
      return filesUnder(dir).map((path) => path.replace(/^media\//, ""));
    },
  };
}

blobStoreContract("memory", async () => ({
  store: new MemoryBlobStore(),
  async cleanup() {},
}));

blobStoreContract("filesystem", makeFilesystemStore);

describe("FilesystemBlobStore specifics", () => {
  it("stores a key at the matching path below the root", async () => {
    const subject = await makeFilesystemStore();
    try {
      await subject.store.write("local_content/ab/cd/efgh", Readable.from([Buffer.from("hi")]));
      assert.deepEqual(filesUnder(subject.dir), ["media/local_content/ab/cd/efgh"]);
    } finally {
      await subject.cleanup();
    }
  });

  it("does not list temp files or names that are not valid keys", async () => {
    const subject = await makeFilesystemStore();
    try {
      const dir = join(subject.root, "local_content", "ab", "cd");
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, ".efgh~0123456789abcdef.tmp"), "partial");
      writeFileSync(join(dir, "with space"), "junk");
      writeFileSync(join(dir, "efgh"), "real");
      assert.deepEqual(await listAll(subject.store, ""), ["local_content/ab/cd/efgh"]);
    } finally {
      await subject.cleanup();
    }
  });

  it("treats a directory as a missing blob, and delete of one as a no-op", async () => {
    const subject = await makeFilesystemStore();
    try {
      mkdirSync(join(subject.root, "local_thumbnails", "ab", "cd", "efgh"), { recursive: true });
      const key = "local_thumbnails/ab/cd/efgh";
      await assert.rejects(subject.store.read(key), BlobNotFoundError);
      await assert.rejects(subject.store.stat(key), BlobNotFoundError);
      await subject.store.delete(key);
    } finally {
      await subject.cleanup();
    }
  });

  it("writes a key whose last part is 251 characters (temp name stays short enough)", async () => {
    const subject = await makeFilesystemStore();
    try {
      const key = `local_content/ab/cd/${"x".repeat(251)}`;
      await subject.store.write(key, Readable.from([Buffer.from("long")]));
      assert.equal((await readAll(await subject.store.read(key))).toString(), "long");
    } finally {
      await subject.cleanup();
    }
  });

  it("writes with fsync on", async () => {
    const subject = await makeFilesystemStore();
    try {
      const store = new FilesystemBlobStore(subject.root, { fsync: true });
      assert.deepEqual(await store.write("a/b", Readable.from([Buffer.from("durable")])), {
        size: 7,
      });
      assert.deepEqual(await subject.listAllFiles(), ["a/b"]);
    } finally {
      await subject.cleanup();
    }
  });

  it("reads with a 256 KiB high-water mark, or the size of a smaller file or range", async () => {
    const subject = await makeFilesystemStore();
    try {
      await subject.store.write("a/b", Readable.from([Buffer.alloc(1024 * 1024)]));
      const stream = await subject.store.read("a/b");
      assert.equal(stream.readableHighWaterMark, 256 * 1024);
      await readAll(stream);
      const range = await subject.store.read("a/b", { start: 5, end: 14 });
      assert.equal(range.readableHighWaterMark, 10);
      await readAll(range);
    } finally {
      await subject.cleanup();
    }
  });
});

describe("createBlobStore", () => {
  it("builds the configured backend", () => {
    assert.ok(createBlobStore({ engine: "memory" }) instanceof MemoryBlobStore);
    const store = createBlobStore({ engine: "filesystem", path: "relative/media" });
    assert.ok(store instanceof FilesystemBlobStore);
    assert.equal(store.root, join(process.cwd(), "relative", "media"));
  });
});
