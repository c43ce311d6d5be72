/**
 * The one contract every BlobStore backend passes (memory, filesystem, later
 * S3): `blobStoreContract("name", makeStore)`. Backend-neutral; a backend that
 * can list its raw files (temp files included) passes `listAllFiles` so the
 * suite can also prove that failed writes leave nothing behind.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import { BlobNotFoundError, type BlobStore } from "../../src/storage/blob-store.js";
import { UnsafePathError } from "../../src/storage/media-paths.js";

export interface StoreUnderTest {
  readonly store: BlobStore;
  cleanup(): Promise<void>;
  /** Every file the backend holds, temp files included (relative paths). */
  listAllFiles?(): Promise<string[]>;
}

export type MakeStore = () => Promise<StoreUnderTest>;

const MiB = 1024 * 1024;

/** Concatenates a stream's bytes. */
export async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

/** Collects a listing, sorted. */
export async function listAll(store: BlobStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of store.list(prefix)) keys.push(key);
  return keys.sort();
}

/** Writes `bytes` (in two chunks, so it really streams) and returns the reported size. */
async function put(store: BlobStore, key: string, bytes: Buffer | string): Promise<number> {
  const data = Buffer.from(bytes);
  const half = Math.floor(data.length / 2);
  const stat = await store.write(key, Readable.from([data.subarray(0, half), data.subarray(half)]));
  return stat.size;
}

/** A source that yields some bytes, then fails. */
async function* failingSource(): AsyncGenerator<Uint8Array> {
  yield Buffer.from("partial bytes ");
  await new Promise((resolve) => setTimeout(resolve, 5));
  yield Buffer.from("more partial bytes");
  throw new Error("source broke");
}

/** A source that yields one chunk, reports it, then waits until it is torn down. */
function stallingSource(onFirstChunk: () => void): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (sent) return; // never push again: the write only ends by abort
      sent = true;
      this.push(Buffer.from("first chunk"));
      setImmediate(onFirstChunk);
    },
  });
}

/** A deterministic 1 MiB chunk, different for each index. */
function bigChunk(index: number): Buffer {
  const chunk = Buffer.alloc(MiB, index % 251);
  chunk.writeUInt32BE(index, 0);
  return chunk;
}

/** Runs `test` against a fresh store and cleans it up afterwards. */
function withStore(makeStore: MakeStore, test: (s: StoreUnderTest) => Promise<void>) {
  return async () => {
    const subject = await makeStore();
    try {
      await test(subject);
    } finally {
      await subject.store.close?.();
      await subject.cleanup();
    }
  };
}

/** Asserts nothing is stored at all: no key and, where visible, no temp file. */
async function assertEmpty(subject: StoreUnderTest): Promise<void> {
  assert.deepEqual(await listAll(subject.store, ""), []);
  if (subject.listAllFiles) assert.deepEqual(await subject.listAllFiles(), []);
}

/** Defines the contract suite for one backend. */
export function blobStoreContract(name: string, makeStore: MakeStore): void {
  describe(`BlobStore contract [${name}]`, () => {
    readWriteTests(makeStore);
    missingAndDeleteTests(makeStore);
    listTests(makeStore);
    failedWriteTests(makeStore);
    scaleAndKeyTests(makeStore);
  });
}

function readWriteTests(makeStore: MakeStore): void {
  const key = "local_content/Ab/Cd/EfGhIjKlMnOpQrStUvWx";
  const bytes = Buffer.from("0123456789abcdef");

  it(
    "reads back exactly what was written, and stat reports its size",
    withStore(makeStore, async ({ store }) => {
      assert.equal(await put(store, key, bytes), bytes.length);
      assert.deepEqual(await readAll(await store.read(key)), bytes);
      assert.deepEqual(await store.stat(key), { size: bytes.length });
    }),
  );

  it(
    "serves inclusive byte ranges, clamping an end past the blob",
    withStore(makeStore, async ({ store }) => {
      await put(store, key, bytes);
      const range = async (start: number, end: number) =>
        (await readAll(await store.read(key, { start, end }))).toString();
      assert.equal(await range(0, 0), "0");
      assert.equal(await range(3, 6), "3456");
      assert.equal(await range(15, 15), "f");
      assert.equal(await range(0, 15), bytes.toString());
      assert.equal(await range(10, 1000), "abcdef");
    }),
  );

  it(
    "stores an empty blob",
    withStore(makeStore, async ({ store }) => {
      assert.equal(await put(store, key, ""), 0);
      assert.equal((await readAll(await store.read(key))).length, 0);
      assert.deepEqual(await store.stat(key), { size: 0 });
    }),
  );

  it(
    "overwrites an existing blob with the new bytes",
    withStore(makeStore, async ({ store }) => {
      await put(store, key, "a much longer first version");
      assert.equal(await put(store, key, "short"), 5);
      assert.equal((await readAll(await store.read(key))).toString(), "short");
      assert.deepEqual(await store.stat(key), { size: 5 });
      assert.deepEqual(await listAll(store, "local_content/"), [key]);
    }),
  );

  it(
    "accepts an async iterable of Uint8Array as the source",
    withStore(makeStore, async ({ store }) => {
      async function* source() {
        yield new Uint8Array([1, 2, 3]);
        yield new Uint8Array([4, 5]);
      }
      assert.deepEqual(await store.write(key, source()), { size: 5 });
      assert.deepEqual(await readAll(await store.read(key)), Buffer.from([1, 2, 3, 4, 5]));
    }),
  );
}

function missingAndDeleteTests(makeStore: MakeStore): void {
  it(
    "rejects read and stat of a missing key with BlobNotFoundError, before any stream exists",
    withStore(makeStore, async ({ store }) => {
      await put(store, "local_content/ab/cd/present", "x");
      for (const key of ["local_content/ab/cd/absent", "local_content/ab/cd/present/below"]) {
        await assert.rejects(store.read(key), (error: unknown) => {
          assert.ok(error instanceof BlobNotFoundError);
          assert.equal(error.key, key);
          return true;
        });
        await assert.rejects(store.read(key, { start: 0, end: 0 }), BlobNotFoundError);
        await assert.rejects(store.stat(key), BlobNotFoundError);
      }
    }),
  );

  it(
    "treats a key that is only a prefix of other keys as missing",
    withStore(makeStore, async ({ store }) => {
      await put(store, "local_thumbnails/ab/cd/efgh/32-32-image-png-crop", "t");
      await assert.rejects(store.read("local_thumbnails/ab/cd/efgh"), BlobNotFoundError);
      await assert.rejects(store.stat("local_thumbnails/ab/cd"), BlobNotFoundError);
    }),
  );

  it(
    "deletes idempotently",
    withStore(makeStore, async ({ store }) => {
      const key = "local_content/ab/cd/efgh";
      await put(store, key, "bytes");
      await store.delete(key);
      await assert.rejects(store.stat(key), BlobNotFoundError);
      await store.delete(key);
      await store.delete("local_content/zz/zz/never-written");
      await store.delete("never/written/at/all");
      assert.deepEqual(await listAll(store, ""), []);
    }),
  );
}

function listTests(makeStore: MakeStore): void {
  const keys = [
    "local_content/ab/cd/efghij",
    "local_content/ab/cd/efgxyz",
    "local_content/ab/ce/zzzzzz",
    "local_content/abc/de/fghij",
    "local_thumbnails/ab/cd/efghij/32-32-image-png-crop",
    "local_thumbnails/ab/cd/efghij/96-96-image-png-crop",
    "local_thumbnails/ab/cd/efghik/32-32-image-png-crop",
  ];

  it(
    "lists keys by prefix: whole directories, partial names, nested levels, nothing",
    withStore(makeStore, async ({ store }) => {
      await Promise.all(keys.map((key) => put(store, key, key)));
      assert.deepEqual(await listAll(store, ""), [...keys].sort());
      assert.deepEqual(await listAll(store, "local_content/ab/"), keys.slice(0, 3));
      assert.deepEqual(await listAll(store, "local_content/a"), keys.slice(0, 4));
      assert.deepEqual(await listAll(store, "local_content/ab/cd/efgh"), keys.slice(0, 1));
      assert.deepEqual(await listAll(store, "local_thumbnails/ab/cd/efghij/"), keys.slice(4, 6));
      assert.deepEqual(await listAll(store, "local_thumbnails/ab/cd/efghi"), keys.slice(4, 7));
      assert.deepEqual(await listAll(store, "local_thumbnails/ab/cd/efghij/32-"), keys.slice(4, 5));
      assert.deepEqual(await listAll(store, "local_content/ab/cd/efghij"), keys.slice(0, 1));
      assert.deepEqual(await listAll(store, "local_content/zz/"), []);
      assert.deepEqual(await listAll(store, "remote_content/"), []);
      assert.deepEqual(await listAll(store, "nothing_here/at/all/"), []);
    }),
  );

  it(
    "stops listing deleted keys",
    withStore(makeStore, async ({ store }) => {
      await Promise.all(keys.slice(4, 7).map((key) => put(store, key, key)));
      for await (const key of store.list("local_thumbnails/ab/cd/efghij/")) await store.delete(key);
      assert.deepEqual(await listAll(store, "local_thumbnails/"), keys.slice(6, 7));
    }),
  );
}

function failedWriteTests(makeStore: MakeStore): void {
  const key = "local_content/ab/cd/failing";

  it(
    "leaves no key and no temp file when the source errors midway",
    withStore(makeStore, async (subject) => {
      await assert.rejects(subject.store.write(key, failingSource()), /source broke/);
      await assert.rejects(subject.store.stat(key), BlobNotFoundError);
      await assertEmpty(subject);
    }),
  );

  it(
    "keeps the old blob when an overwrite fails",
    withStore(makeStore, async ({ store }) => {
      await put(store, key, "old bytes");
      await assert.rejects(store.write(key, failingSource()), /source broke/);
      assert.equal((await readAll(await store.read(key))).toString(), "old bytes");
    }),
  );

  it(
    "leaves no key and no temp file when the write is aborted midway",
    withStore(makeStore, async (subject) => {
      const controller = new AbortController();
      const source = stallingSource(() => controller.abort());
      const write = subject.store.write(key, source, { signal: controller.signal });
      await assert.rejects(write, { name: "AbortError" });
      assert.ok(source.destroyed, "the source is destroyed");
      await assert.rejects(subject.store.stat(key), BlobNotFoundError);
      await assertEmpty(subject);
    }),
  );

  it(
    "rejects a write whose signal is already aborted, storing nothing",
    withStore(makeStore, async (subject) => {
      const signal = AbortSignal.abort();
      await assert.rejects(
        subject.store.write(key, Readable.from([Buffer.from("x")]), { signal }),
        {
          name: "AbortError",
        },
      );
      await assertEmpty(subject);
    }),
  );
}

function scaleAndKeyTests(makeStore: MakeStore): void {
  it(
    "handles concurrent writes to different keys",
    withStore(makeStore, async ({ store }) => {
      const keys = Array.from({ length: 25 }, (_, i) => `local_content/ab/${10 + i}/key${i}`);
      await Promise.all(keys.map((key, i) => put(store, key, `blob number ${i}`.repeat(i + 1))));
      for (const [i, key] of keys.entries()) {
        const text = (await readAll(await store.read(key))).toString();
        assert.equal(text, `blob number ${i}`.repeat(i + 1));
      }
      assert.deepEqual(await listAll(store, "local_content/ab/"), [...keys].sort());
    }),
  );

  it(
    "streams a 20 MiB write and read back chunk by chunk",
    withStore(makeStore, async (subject) => {
      const { store } = subject;
      const key = "remote_content/example.org/ab/cd/big";
      const written = createHash("sha256");
      async function* source() {
        for (let i = 0; i < 20; i++) {
          const chunk = bigChunk(i);
          written.update(chunk);
          yield chunk;
        }
      }
      assert.deepEqual(await store.write(key, source()), { size: 20 * MiB });
      assert.deepEqual(await store.stat(key), { size: 20 * MiB });
      const read = createHash("sha256");
      let largestChunk = 0;
      for await (const chunk of await store.read(key)) {
        read.update(chunk);
        largestChunk = Math.max(largestChunk, (chunk as Buffer).length);
      }
      assert.equal(read.digest("hex"), written.digest("hex"));
      assert.ok(largestChunk <= 4 * MiB, `read arrives in chunks (largest ${largestChunk})`);
      if (subject.listAllFiles) assert.deepEqual(await subject.listAllFiles(), [key]);
    }),
  );

  it(
    "accepts keys using every allowed character class",
    withStore(makeStore, async ({ store }) => {
      const keys = [
        "remote_content/[2001:db8::1]:8448/Ab/9_/-.xZ",
        "remote_content/1.2.3.4:8008/AZ/az/09_-.[]:",
        "url_cache/2024-01-31/AbCdEfGhIjKlMnOp",
        "x/...",
      ];
      for (const key of keys) await put(store, key, key);
      for (const key of keys) assert.equal((await readAll(await store.read(key))).toString(), key);
      assert.deepEqual(
        await listAll(store, "remote_content/[2001:db8::1]:8448/"),
        keys.slice(0, 1),
      );
      assert.deepEqual(await listAll(store, "remote_content/1.2.3.4:"), keys.slice(1, 2));
    }),
  );

  it(
    "refuses unsafe keys and prefixes without touching storage",
    withStore(makeStore, async (subject) => {
      const { store } = subject;
      const unsafe = ["", "../escape", "a/../b", "a/./b", "/abs", "a//b", "a/", "a\\b", "a\0b"];
      for (const key of [...unsafe, "%2e%2e/x", "ü/x", "a b/c", `${"x".repeat(256)}/y`]) {
        await assert.rejects(store.write(key, Readable.from([Buffer.from("x")])), UnsafePathError);
        await assert.rejects(store.read(key), UnsafePathError);
        await assert.rejects(store.stat(key), UnsafePathError);
        await assert.rejects(store.delete(key), UnsafePathError);
      }
      for (const prefix of ["../", "/", "a//", "a/../", "a\0"]) {
        await assert.rejects(listAll(store, prefix), UnsafePathError);
      }
      await assertEmpty(subject);
    }),
  );
}
