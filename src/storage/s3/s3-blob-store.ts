/**
 * Blobs as objects in one S3 (or S3-compatible) bucket, object key = `prefix`
 * + blob key. With the keys of media-paths.ts this is the filesystem store's
 * layout, so a Synapse media store copied into a bucket is served as it is.
 *
 * Design notes:
 * - Streaming writes: lib-storage's Upload cuts the body into PART_SIZE parts
 *   with at most QUEUE_SIZE in flight, so a write buffers about
 *   (QUEUE_SIZE + 1) × PART_SIZE bytes whatever the blob's size. A body that
 *   fits in one part goes up as a single PutObject.
 * - Visibility: S3 shows an object only once PutObject or
 *   CompleteMultipartUpload succeeds, so readers see the old blob or the whole
 *   new one, with no temp names.
 * - Failure and abort: the source is piped through a counting Transform that
 *   Upload reads. A source error or an abort destroys that Transform; Upload
 *   then sends AbortMultipartUpload (dropping the parts) before `done()`
 *   settles, and `write` waits for both sides, so when it rejects nothing is
 *   left, not even parts. The source's error wins over a later abort error.
 *   If the upload fails first, the Transform is destroyed, which destroys the
 *   source. A process killed mid-write leaves parts only a bucket lifecycle
 *   rule (AbortIncompleteMultipartUpload) removes.
 * - Ranges are `Range: bytes=a-b`. S3 clamps an end past the object; a start
 *   past it (416 InvalidRange) gives an empty stream, as the other stores do.
 *   A server that sends more than asked is cut down to the range (range-body.ts).
 * - Errors are translated here (STYLE point 6): `NoSuchKey`, and HEAD's bodiless
 *   404 `NotFound`, become BlobNotFoundError before any stream is returned.
 *   Everything else, `NoSuchBucket` included, passes through unchanged. (A HEAD
 *   against a missing bucket is also a bare 404, so `stat` cannot tell them apart.)
 */
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  ListObjectsV2Command,
} from "@aws-sdk/client-s3";
import { assertByteRange } from "../assert-byte-range.js";
import {
  BlobNotFoundError,
  type BlobStat,
  type BlobStore,
  type ByteRange,
  type PresignOptions,
  type WriteOptions,
} from "../blob-store.js";
import { assertSafeKey, assertSafePrefix, assertStorePrefix } from "../media-paths.js";
import { rangeBody } from "./range-body.js";
import type { S3ObjectClient } from "./s3-object-client.js";

/** Part size of multipart uploads; S3's minimum is 5 MiB, and 10,000 parts make 80 GiB. */
const PART_SIZE = 8 * 1024 * 1024;

/** Parts uploaded at once by one write. */
const QUEUE_SIZE = 2;

/** S3 refuses presigned URLs valid for longer than 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

export interface S3BlobStoreOptions {
  readonly bucket: string;
  /** Prepended to every key: empty, or safe key parts ending in `/` (`media/`). */
  readonly prefix?: string;
}

/** A BlobStore over `bucket`, reached through the given slice of an S3 client. */
export class S3BlobStore implements BlobStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly #client: S3ObjectClient;
  #closed = false;

  constructor(client: S3ObjectClient, options: S3BlobStoreOptions) {
    this.#client = client;
    this.bucket = options.bucket;
    this.prefix = assertStorePrefix(options.prefix ?? "");
  }

  /** GetObject (ranged when asked); BlobNotFoundError before any stream exists. */
  async read(key: string, range?: ByteRange): Promise<Readable> {
    if (range) assertByteRange(range);
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: this.#objectKey(key),
      Range: range ? `bytes=${range.start}-${range.end}` : undefined,
    });
    let output: GetObjectCommandOutput;
    try {
      output = await this.#client.send(command);
    } catch (error) {
      // 416 means the object exists and the range starts at or past its end.
      if (range && errorName(error) === "InvalidRange") return Readable.from([]);
      throw translate(error, key);
    }
    if (!(output.Body instanceof Readable)) throw new Error(`S3 GetObject ${key}: no body stream`);
    return range ? rangeBody(output.Body, output.ContentRange, range) : output.Body;
  }

  /** Streams the source into an upload; see the module note for failure handling. */
  async write(
    key: string,
    source: Readable | AsyncIterable<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<BlobStat> {
    const objectKey = this.#objectKey(key);
    options.signal?.throwIfAborted();
    let size = 0;
    const body = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        done(null, chunk);
      },
    });
    const upload = this.#client.upload(
      { Bucket: this.bucket, Key: objectKey, Body: body },
      { partSize: PART_SIZE, queueSize: QUEUE_SIZE },
    );
    const uploading = upload.done().catch((error: unknown) => {
      // Upload stopped reading: end the pipe so the source is released too.
      body.destroy(error instanceof Error ? error : new Error(String(error)));
      throw error;
    });
    const piping = pipeline(source, body, { signal: options.signal });
    const [piped, uploaded] = await Promise.allSettled([piping, uploading]);
    if (piped.status === "rejected") throw piped.reason;
    if (uploaded.status === "rejected") throw uploaded.reason;
    return { size };
  }

  /** HeadObject's Content-Length; BlobNotFoundError if absent. */
  async stat(key: string): Promise<BlobStat> {
    const command = new HeadObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) });
    const output = await this.#client.send(command).catch((error: unknown) => {
      throw translate(error, key);
    });
    return { size: output.ContentLength ?? 0 };
  }

  /** DeleteObject: the object is gone, not hidden. S3 answers 204 for a missing key too. */
  async delete(key: string): Promise<void> {
    const command = new DeleteObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) });
    try {
      await this.#client.send(command);
    } catch (error) {
      // Some S3-compatible stores answer NoSuchKey instead; missing is fine.
      if (!(translate(error, key) instanceof BlobNotFoundError)) throw error;
    }
  }

  /** ListObjectsV2, page by page; keys without the store's prefix, foreign names skipped. */
  async *list(prefix: string): AsyncIterable<string> {
    assertSafePrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          ContinuationToken: token,
        }),
      );
      for (const object of page.Contents ?? []) {
        const key = object.Key?.slice(this.prefix.length);
        if (key !== undefined && isKey(key)) yield key;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** A presigned GetObject URL that makes S3 answer with the given headers. */
  async presignedUrl(key: string, ttlSeconds: number, options: PresignOptions = {}) {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_PRESIGN_SECONDS) {
      throw new RangeError(`presigned URL lifetime must be 1 to ${MAX_PRESIGN_SECONDS} seconds`);
    }
    const input = {
      Bucket: this.bucket,
      Key: this.#objectKey(key),
      ResponseContentType: options.contentType,
      ResponseContentDisposition: options.contentDisposition,
    };
    return this.#client.presignGetObject(input, ttlSeconds);
  }

  /** Destroys the client (its sockets); idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.destroy();
  }

  /** The object key of a blob key, after checking the blob key. */
  #objectKey(key: string): string {
    return this.prefix + assertSafeKey(key);
  }
}

/** True for object names that are valid blob keys (not `a/`, `a b`, ...). */
function isKey(key: string): boolean {
  try {
    assertSafeKey(key);
    return true;
  } catch {
    return false;
  }
}

function errorName(error: unknown): unknown {
  return (error as { name?: unknown } | null)?.name;
}

/** The SDK error as BlobNotFoundError when it means "no such object", else unchanged. */
function translate(error: unknown, key: string): unknown {
  const name = errorName(error);
  return name === "NoSuchKey" || name === "NotFound" ? new BlobNotFoundError(key) : error;
}
