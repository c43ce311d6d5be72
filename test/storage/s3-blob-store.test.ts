/**
 * Runs the blob-store contract against S3BlobStore on an in-process s3rver
 * (without and with a key prefix), plus the S3-only checks: multipart
 * streaming, clean-up of failed multipart uploads, prefixes, presigned URLs,
 * error mapping, pagination (with a small fake client) and the config.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { parseConfigText } from "../../src/config/load-config.js";
import { BlobNotFoundError } from "../../src/storage/blob-store.js";
import { createBlobStore } from "../../src/storage/create-blob-store.js";
import { LazyS3BlobStore } from "../../src/storage/s3/lazy-s3-blob-store.js";
import { rangeBody } from "../../src/storage/s3/range-body.js";
import { S3BlobStore } from "../../src/storage/s3/s3-blob-store.js";
import {
  createS3Client,
  type S3MediaStoreConfig,
  type S3ObjectClient,
  s3ObjectClientOf,
} from "../../src/storage/s3/s3-object-client.js";
import { recordCommands, startS3rver, type TestS3 } from "../support/s3rver.js";
import { blobStoreContract, listAll, readAll, type StoreUnderTest } from "./blob-store-contract.js";

const MiB = 1024 * 1024;
let s3: TestS3;
let counter = 0;

before(async () => {
  s3 = await startS3rver();
});
after(() => s3.stop());

/** The validated `media_store` for the test s3rver, with `extra` keys. */
function s3Config(extra: Record<string, unknown> = {}): S3MediaStoreConfig {
  const config = parseConfigText(
    JSON.stringify({ server_name: "test.local", media_store: s3.storeConfig(extra) }),
  );
  return config.media_store as S3MediaStoreConfig;
}

/** A store on `bucket` (default: the shared one) with its own client, and that raw client. */
function makeStore(options: { bucket?: string; prefix?: string } = {}) {
  const client = createS3Client(s3Config());
  const bucket = options.bucket ?? s3.bucket;
  const store = new S3BlobStore(s3ObjectClientOf(client), { bucket, prefix: options.prefix });
  return { client, store, bucket };
}

/** Every object name in `bucket` under `prefix`, raw (no filtering), sorted. */
async function rawKeys(client: S3Client, bucket: string, prefix = ""): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) keys.push(object.Key!);
    token = page.NextContinuationToken;
  } while (token);
  return keys.sort();
}

/** A fresh, empty bucket per store: the contract with no key prefix. */
async function makeBucketStore(): Promise<StoreUnderTest> {
  const bucket = `contract-${++counter}`;
  const { client, store } = makeStore({ bucket });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const admin = createS3Client(s3Config());
  return {
    store,
    listAllFiles: () => rawKeys(admin, bucket),
    async cleanup() {
      for (const key of await rawKeys(admin, bucket)) {
        await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      }
      await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
      admin.destroy();
    },
  };
}

/** A fresh prefix in the shared bucket per store: the contract with a key prefix. */
async function makePrefixedStore(): Promise<StoreUnderTest> {
  const prefix = `tenant-${++counter}/media/`;
  const { store } = makeStore({ prefix });
  const admin = createS3Client(s3Config());
  const files = async () =>
    (await rawKeys(admin, s3.bucket, prefix)).map((key) => key.slice(prefix.length));
  return {
    store,
    listAllFiles: files,
    async cleanup() {
      for (const key of await files()) await store.delete(key).catch(() => {});
      admin.destroy();
    },
  };
}

blobStoreContract("s3", makeBucketStore);
blobStoreContract("s3 with prefix", makePrefixedStore);

/** `count` deterministic 1 MiB chunks, hashed as they are produced. */
function chunks(count: number, hash = createHash("sha256")) {
  async function* source() {
    for (let i = 0; i < count; i++) {
      const chunk = Buffer.alloc(MiB, i % 251);
      chunk.writeUInt32BE(i, 0);
      hash.update(chunk);
      yield chunk;
    }
  }
  return { source: source(), hash };
}

describe("S3BlobStore specifics", () => {
  const key = "local_content/ab/cd/multipart";

  it("streams a 20 MiB write as a multipart upload of 8 MiB parts", async () => {
    const { client, store } = makeStore({ prefix: "multipart/" });
    const log = recordCommands(client);
    try {
      const { source, hash } = chunks(20);
      assert.deepEqual(await store.write(key, source), { size: 20 * MiB });
      const names = log.map((entry) => entry.name);
      assert.deepEqual(names, [
        "CreateMultipartUpload",
        "UploadPart",
        "UploadPart",
        "UploadPart",
        "CompleteMultipartUpload",
      ]);
      assert.equal(log[0]!.input.Key, `multipart/${key}`);
      const read = createHash("sha256");
      for await (const chunk of await store.read(key)) read.update(chunk);
      assert.equal(read.digest("hex"), hash.digest("hex"));
      const tail = await readAll(await store.read(key, { start: 20 * MiB - 4, end: 30 * MiB }));
      assert.equal(tail.length, 4);
    } finally {
      await store.delete(key);
      await store.close();
    }
  });

  it("reads the source only about (queue size + 1) parts ahead of the uploaded parts", async () => {
    const { client, store } = makeStore({ prefix: "bounded/" });
    const log = recordCommands(client);
    let produced = 0;
    let mostAhead = 0;
    async function* source() {
      for (let i = 0; i < 48; i++) {
        const uploaded = log.filter((entry) => entry.name === "UploadPart").length * 8 * MiB;
        mostAhead = Math.max(mostAhead, produced - uploaded);
        produced += MiB;
        yield Buffer.alloc(MiB, i);
      }
    }
    try {
      assert.deepEqual(await store.write(key, source()), { size: 48 * MiB });
      // 2 parts in flight + 1 being filled, plus a chunk in the pipe.
      assert.ok(mostAhead <= 25 * MiB, `read ${mostAhead / MiB} MiB ahead`);
    } finally {
      await store.delete(key);
      await store.close();
    }
  });

  it("aborts the multipart upload when the source fails after some parts, before rejecting", async () => {
    const { client, store } = makeStore({ prefix: "failing/" });
    const log = recordCommands(client);
    async function* source() {
      yield* chunks(17).source;
      throw new Error("source broke");
    }
    try {
      await assert.rejects(store.write(key, source()), /source broke/);
      assertAborted(log);
      await assert.rejects(store.stat(key), BlobNotFoundError);
      assert.deepEqual(await listAll(store, ""), []);
    } finally {
      await store.close();
    }
  });

  it("aborts the multipart upload when the signal aborts midway, destroying the source", async () => {
    const { client, store } = makeStore({ prefix: "aborted/" });
    const log = recordCommands(client);
    const controller = new AbortController();
    let sent = 0;
    const source = new Readable({
      read() {
        if (sent === 17) {
          controller.abort(); // then stall: only the abort can end the write
          return;
        }
        this.push(Buffer.alloc(MiB, sent++));
      },
    });
    try {
      const write = store.write(key, source, { signal: controller.signal });
      await assert.rejects(write, { name: "AbortError" });
      assert.ok(source.destroyed);
      assertAborted(log);
      await assert.rejects(store.stat(key), BlobNotFoundError);
    } finally {
      await store.close();
    }
  });

  it("keeps stores with different prefixes apart in one bucket", async () => {
    const a = makeStore({ prefix: "site-a/" });
    const b = makeStore({ prefix: "site-a/nested/" });
    const bare = makeStore();
    try {
      await a.store.write(key, Readable.from([Buffer.from("from a")]));
      await b.store.write(key, Readable.from([Buffer.from("from b")]));
      assert.equal((await readAll(await a.store.read(key))).toString(), "from a");
      assert.equal((await readAll(await b.store.read(key))).toString(), "from b");
      assert.deepEqual(await listAll(b.store, ""), [key]);
      assert.deepEqual(await listAll(bare.store, "site-a/"), [
        `site-a/${key}`,
        `site-a/nested/${key}`,
      ]);
      await b.store.delete(key);
      assert.equal((await readAll(await a.store.read(key))).toString(), "from a");
      // a store's own listing includes what lies under a longer prefix: keys, not tenants
      assert.deepEqual(await listAll(a.store, "local_content/"), [key]);
    } finally {
      await a.store.delete(key);
      for (const s of [a, b, bare]) await s.store.close();
    }
  });

  it("refuses a prefix that does not end in / or is unsafe", () => {
    const client = s3ObjectClientOf(createS3Client(s3Config()));
    for (const prefix of ["media", "../", "a//", "/abs/", "a b/"]) {
      assert.throws(() => new S3BlobStore(client, { bucket: "b", prefix }), /unsafe path/);
    }
    client.destroy();
  });

  it("skips objects whose names are not keys when listing", async () => {
    const { client, store } = makeStore({ prefix: "foreign/" });
    try {
      for (const name of ["foreign/local_content/with space", "foreign/dir/", `foreign/${key}`]) {
        await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: name, Body: "x" }));
      }
      assert.deepEqual(await listAll(store, ""), [key]);
    } finally {
      for (const name of await rawKeys(client, s3.bucket, "foreign/")) {
        await client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: name }));
      }
      await store.close();
    }
  });
});

/** The log shows a multipart upload that was aborted (same id) and never completed. */
function assertAborted(log: ReturnType<typeof recordCommands>) {
  const created = log.find((entry) => entry.name === "CreateMultipartUpload");
  assert.ok(created, "a multipart upload was started");
  assert.ok(
    log.some((entry) => entry.name === "UploadPart"),
    "parts were uploaded",
  );
  const abort = log.find((entry) => entry.name === "AbortMultipartUpload");
  assert.ok(abort, "AbortMultipartUpload was sent before write() rejected");
  assert.equal(abort.input.UploadId, created.output!.UploadId);
  assert.equal(abort.input.Key, created.input.Key);
  assert.ok(!log.some((entry) => entry.name === "CompleteMultipartUpload"));
}

describe("S3BlobStore presigned URLs and errors", () => {
  const key = "local_content/pr/es/igned";

  it("presigns a GET that serves the bytes with the requested headers", async () => {
    const { store } = makeStore({ prefix: "presign/" });
    try {
      await store.write(key, Readable.from([Buffer.from("presigned bytes")]));
      const url = await store.presignedUrl(key, 60, {
        contentType: "image/png",
        contentDisposition: "inline; filename=cat.png",
      });
      assert.ok(url.startsWith(`${s3.endpoint}/${s3.bucket}/presign/${key}?`), url);
      const response = await fetch(url);
      assert.equal(response.status, 200);
      assert.equal(Buffer.from(await response.arrayBuffer()).toString(), "presigned bytes");
      assert.equal(response.headers.get("content-type"), "image/png");
      assert.equal(response.headers.get("content-disposition"), "inline; filename=cat.png");
      for (const ttl of [0, 1.5, 7 * 24 * 3600 + 1]) {
        await assert.rejects(store.presignedUrl(key, ttl), RangeError);
      }
    } finally {
      await store.delete(key);
      await store.close();
    }
  });

  it("does not mistake a missing bucket for a missing blob", async () => {
    const { store } = makeStore({ bucket: "no-such-bucket" });
    try {
      await assert.rejects(store.read(key), (error: Error) => {
        assert.ok(!(error instanceof BlobNotFoundError));
        assert.equal(error.name, "NoSuchBucket");
        return true;
      });
    } finally {
      await store.close();
    }
  });

  it("lists every page of a long listing (fake client)", async () => {
    const pages = [
      {
        Contents: [{ Key: "p/a/1" }, { Key: "p/a/2" }],
        IsTruncated: true,
        NextContinuationToken: "t1",
      },
      {
        Contents: [{ Key: "p/a/3" }, { Key: "p/a/bad name" }],
        IsTruncated: true,
        NextContinuationToken: "t2",
      },
      { Contents: [{ Key: "p/a/4" }], IsTruncated: false },
    ];
    const requests: unknown[] = [];
    const fake = {
      send: async (command: ListObjectsV2Command) => {
        requests.push(command.input);
        const token = command.input.ContinuationToken;
        return pages[token === undefined ? 0 : Number(token.slice(1))];
      },
      destroy() {},
    } as unknown as S3ObjectClient;
    const store = new S3BlobStore(fake, { bucket: "b", prefix: "p/" });
    assert.deepEqual(await listAll(store, "a/"), ["a/1", "a/2", "a/3", "a/4"]);
    assert.deepEqual(requests, [
      { Bucket: "b", Prefix: "p/a/", ContinuationToken: undefined },
      { Bucket: "b", Prefix: "p/a/", ContinuationToken: "t1" },
      { Bucket: "b", Prefix: "p/a/", ContinuationToken: "t2" },
    ]);
  });
});

describe("rangeBody", () => {
  const body = (text: string) =>
    Readable.from([Buffer.from(text.slice(0, 5)), Buffer.from(text.slice(5))]);
  /** What rangeBody makes of a body holding the whole 16-byte object. */
  const cut = async (contentRange: string | undefined, start: number, end: number) => {
    const stream = rangeBody(body("0123456789abcdef"), contentRange, { start, end });
    return (await readAll(stream)).toString();
  };

  it("returns an exact body untouched, and cuts down a wider or whole one", async () => {
    const exact = body("3456");
    assert.equal(rangeBody(exact, "bytes 3-6/16", { start: 3, end: 6 }), exact);
    assert.equal(await cut("bytes 0-15/16", 0, 0), "0");
    assert.equal(await cut(undefined, 3, 6), "3456");
    assert.equal(await cut(undefined, 4, 5), "45");
    assert.equal(await cut(undefined, 10, 1000), "abcdef");
  });

  it("refuses a body that starts after the requested start", () => {
    const late = body("456");
    assert.throws(() => rangeBody(late, "bytes 4-6/16", { start: 3, end: 6 }), /bytes 4-6/);
    assert.ok(late.destroyed);
  });
});

describe("media_store engine s3 config", () => {
  it("fills the defaults and builds an S3 store without I/O (the SDK loads on first use)", async () => {
    const config = parseConfigText(
      'server_name: "a.org"\nmedia_store: { engine: s3, bucket: media-bucket }',
    );
    assert.deepEqual(config.media_store, {
      engine: "s3",
      bucket: "media-bucket",
      region: "us-east-1",
      prefix: "",
      force_path_style: false,
      presigned_redirects: false,
      presigned_url_ttl: 300_000,
    });
    const store = createBlobStore(config.media_store);
    assert.ok(store instanceof LazyS3BlobStore);
    await store.close?.();
    const ttl = parseConfigText(
      'server_name: "a.org"\nmedia_store: { engine: s3, bucket: b12, presigned_url_ttl: "1h" }',
    );
    assert.equal((ttl.media_store as S3MediaStoreConfig).presigned_url_ttl, 3_600_000);
  });

  it("names the dotted key of a bad s3 option", () => {
    const cases: [string, RegExp][] = [
      ["{ engine: s3 }", /^media_store\.bucket: /],
      ["{ engine: s3, bucket: b12, prefix: media }", /^media_store\.prefix: /],
      ["{ engine: s3, bucket: b12, prefix: ../ }", /^media_store\.prefix: /],
      ["{ engine: s3, bucket: b12, endpoint: ftp://x }", /^media_store\.endpoint: /],
      ["{ engine: s3, bucket: b12, presigned_url_ttl: 8d }", /^media_store\.presigned_url_ttl: /],
      ["{ engine: s3, bucket: b12, access_key_id: k }", /^media_store\.access_key_id: /],
      ["{ engine: s3, bucket: b12, path: ./x }", /^media_store\.path: unknown option/],
    ];
    for (const [store, expected] of cases) {
      assert.throws(
        () => parseConfigText(`server_name: "a.org"\nmedia_store: ${store}`),
        (error: { problems?: readonly string[] }) => {
          assert.match(error.problems?.[0] ?? "", expected, store);
          return true;
        },
      );
    }
  });
});
