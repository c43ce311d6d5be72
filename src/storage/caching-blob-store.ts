/**
 * A BlobStore decorator that keeps the media byte cache in step with the
 * store: a key that is deleted or rewritten is dropped from the cache once
 * the store has done it (after, so that a read racing the change cannot put
 * the old bytes back: the cache marks fills in flight as stale).
 *
 * Everything else passes through; optional capabilities stay optional.
 */
import type { Readable } from "node:stream";
import type {
  BlobStat,
  BlobStore,
  ByteRange,
  ByteSink,
  PresignOptions,
  WriteOptions,
} from "./blob-store.js";
import type { MediaByteCache } from "./media-byte-cache.js";

export class CachingBlobStore implements BlobStore {
  readonly presignedUrl?: (
    key: string,
    ttlSeconds: number,
    options?: PresignOptions,
  ) => Promise<string>;
  readonly sweepTemporaryFiles?: (olderThanMs: number, signal?: AbortSignal) => Promise<number>;
  readonly close?: () => Promise<void>;
  readonly sendTo?: (
    key: string,
    range: ByteRange | undefined,
    start: (length: number) => ByteSink,
  ) => Promise<void>;

  constructor(
    private readonly inner: BlobStore,
    private readonly cache: MediaByteCache,
  ) {
    if (inner.presignedUrl) this.presignedUrl = inner.presignedUrl.bind(inner);
    if (inner.sweepTemporaryFiles) this.sweepTemporaryFiles = inner.sweepTemporaryFiles.bind(inner);
    if (inner.close) this.close = inner.close.bind(inner);
    if (inner.sendTo) this.sendTo = inner.sendTo.bind(inner);
  }

  read(key: string, range?: ByteRange): Promise<Readable> {
    return this.inner.read(key, range);
  }

  async write(
    key: string,
    source: Readable | AsyncIterable<Uint8Array>,
    options?: WriteOptions,
  ): Promise<BlobStat> {
    try {
      return await this.inner.write(key, source, options);
    } finally {
      this.cache.evictKey(key);
    }
  }

  stat(key: string): Promise<BlobStat> {
    return this.inner.stat(key);
  }

  async delete(key: string): Promise<void> {
    try {
      await this.inner.delete(key);
    } finally {
      this.cache.evictKey(key);
    }
  }

  list(prefix: string): AsyncIterable<string> {
    return this.inner.list(prefix);
  }
}
