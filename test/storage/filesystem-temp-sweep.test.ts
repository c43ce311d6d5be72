/**
 * FilesystemBlobStore.sweepTemporaryFiles: removes the store's own temp
 * files (`.<name>~<16 hex>.tmp`) untouched for the given age, and nothing
 * else — not near-miss names, not fresh temp files of live writes, not
 * symlinks, not blobs.
 */
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { it } from "node:test";
import { FilesystemBlobStore } from "../../src/storage/filesystem/filesystem-blob-store.js";

const HOUR = 3_600_000;

/** Sets a file's modification time `ms` into the past. */
function age(path: string, ms: number): void {
  const then = new Date(Date.now() - ms);
  utimesSync(path, then, then);
}

it("sweeps exactly the store's own old temp files", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-sweep-"));
  const root = join(dir, "media");
  const store = new FilesystemBlobStore(root);
  try {
    await store.write("local_content/ab/cd/efgh", Readable.from([Buffer.from("real")]));
    // A temp file named by the store itself: a write whose source stalls.
    const source = new PassThrough();
    const stalled = store.write("local_content/ab/cd/ijkl", source);
    source.write("partial");
    const content = join(root, "local_content", "ab", "cd");
    const own = () => readdirSync(content).find((name) => name.startsWith(".ijkl~"));
    // Wait for the bytes, not just the file: a later write would refresh its time.
    while (!own() || statSync(join(content, own()!)).size === 0) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const ownPath = join(content, own()!);
    age(ownPath, HOUR); // as if its process had died an hour ago

    const thumbs = join(root, "local_thumbnails", "ab", "cd", "efgh");
    mkdirSync(thumbs, { recursive: true });
    const nested = join(thumbs, ".32-32-image-png~0123456789abcdef.tmp");
    const decoys = [
      join(content, ".efgh~0123456789abcdef.tmp.bak"),
      join(content, "efgh~0123456789abcdef.tmp"),
      join(content, ".efgh~0123456789abcdeg.tmp"),
      join(content, ".efgh~0123456789abcde.tmp"),
      join(content, ".efgh~0123456789ABCDEF.tmp"),
      join(content, ".efgh.tmp"),
      join(content, "notes.tmp"),
      join(content, "efgh"),
    ];
    const fresh = join(content, ".mnop~fedcba9876543210.tmp");
    for (const path of [nested, ...decoys.slice(0, -1), fresh]) writeFileSync(path, "x");
    for (const path of [nested, ...decoys]) age(path, HOUR);
    // A symlink with a temp name, to an old file outside the root: neither followed nor removed.
    const outside = join(dir, "outside.tmp");
    writeFileSync(outside, "keep");
    age(outside, HOUR);
    const link = join(content, ".link~0123456789abcdef.tmp");
    symlinkSync(outside, link);

    assert.equal(await store.sweepTemporaryFiles(10 * 60_000), 2);
    assert.equal(existsSync(ownPath), false);
    assert.equal(existsSync(nested), false);
    for (const path of [...decoys, fresh, link, outside]) assert.ok(existsSync(path), path);

    // The stalled write now cannot rename its file: it fails, leaving nothing.
    source.end("rest");
    await assert.rejects(stalled);
    assert.equal(existsSync(join(content, "ijkl")), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it("stops when its signal aborts", async () => {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-sweep-"));
  try {
    const temp = join(dir, ".efgh~0123456789abcdef.tmp");
    writeFileSync(temp, "x");
    age(temp, HOUR);
    const store = new FilesystemBlobStore(dir);
    assert.equal(await store.sweepTemporaryFiles(0, AbortSignal.abort()), 0);
    assert.ok(existsSync(temp));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
