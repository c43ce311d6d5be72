/**
 * The S3 store as `createBlobStore` hands it out: the AWS SDK is loaded on
 * the first call, not when the config is read.
 *
 * Why: `@aws-sdk/client-s3` costs several MiB of memory once loaded, and a
 * process whose `media_store` is not S3 must never load it (issue 15,
 * "Memory at rest"). Only S3 configs reach this class, and the SDK is
 * imported by the first blob operation of the process, so start-up and the
 * embedded default stay free of it. What can be checked without the SDK (the
 * prefix) is still checked at construction, as S3BlobStore does.
 */
import type { Readable } from "node:stream";
import type {
  BlobStat,
  BlobStore,
  ByteRange,
  PresignOptions,
  WriteOptions,
} from "../blob-store.js";
import { assertStorePrefix } from "../media-paths.js";
import type { S3BlobStore } from "./s3-blob-store.js";
import type { S3MediaStoreConfig } from "./s3-object-client.js";

/** A BlobStore that builds the real S3BlobStore (and its SDK client) on first use. */
export class LazyS3BlobStore implements BlobStore {
  readonly #config: S3MediaStoreConfig;
  #store: Promise<S3BlobStore> | undefined;
  #closed = false;

  constructor(config: S3MediaStoreConfig) {
    assertStorePrefix(config.prefix ?? "");
    this.#config = config;
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    return (await this.#real()).read(key, range);
  }

  async write(
    key: string,
    source: Readable | AsyncIterable<Uint8Array>,
    options?: WriteOptions,
  ): Promise<BlobStat> {
    return (await this.#real()).write(key, source, options);
  }

  async stat(key: string): Promise<BlobStat> {
    return (await this.#real()).stat(key);
  }

  async delete(key: string): Promise<void> {
    return (await this.#real()).delete(key);
  }

  async *list(prefix: string): AsyncIterable<string> {
    yield* (await this.#real()).list(prefix);
  }

  async presignedUrl(key: string, ttlSeconds: number, options?: PresignOptions): Promise<string> {
    return (await this.#real()).presignedUrl(key, ttlSeconds, options);
  }

  /** Closes the real store if one was built; never loads the SDK just to close it. */
  async close(): Promise<void> {
    this.#closed = true;
    const store = await this.#store?.catch(() => undefined);
    await store?.close();
  }

  #real(): Promise<S3BlobStore> {
    if (this.#closed) return Promise.reject(new Error("the S3 blob store is closed"));
    if (!this.#store) {
      const config = this.#config;
      this.#store = Promise.all([
        import("./s3-blob-store.js"),
        import("./s3-object-client.js"),
      ]).then(
        ([{ S3BlobStore }, { createS3Client, s3ObjectClientOf }]) =>
          new S3BlobStore(s3ObjectClientOf(createS3Client(config)), {
            bucket: config.bucket,
            prefix: config.prefix,
          }),
      );
      // A failed load (a broken install) is not remembered: the next call tries again.
      this.#store.catch(() => {
        this.#store = undefined;
      });
    }
    return this.#store;
  }
}
