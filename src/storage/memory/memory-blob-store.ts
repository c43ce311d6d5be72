/**
 * Blobs in process memory: a Map from key to Buffer. Real code with the same
 * semantics as the other backends (it passes the same contract suite), used as
 * the default test double and for `media_store: {engine: memory}` trials.
 *
 * A write collects the whole source first and stores it only when the source
 * ended without error and without an abort, so a failed write is never
 * visible. Streams handed out by `read` keep the Buffer they started with, so
 * an overwrite or delete never changes bytes a reader is already receiving.
 */
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { assertByteRange } from "../assert-byte-range.js";
import {
  BlobNotFoundError,
  type BlobStat,
  type BlobStore,
  type ByteRange,
  type WriteOptions,
} from "../blob-store.js";
import { assertSafeKey, assertSafePrefix } from "../media-paths.js";

/** Chunk size of read streams, matching the filesystem store. */
const READ_CHUNK = 256 * 1024;

/** A BlobStore holding every blob in memory; nothing survives the process. */
export class MemoryBlobStore implements BlobStore {
  readonly #blobs = new Map<string, Buffer>();

  /** Streams the blob (or an inclusive range, clamped to its end); BlobNotFoundError if absent. */
  async read(key: string, range?: ByteRange): Promise<Readable> {
    if (range) assertByteRange(range);
    const blob = this.#get(key);
    const bytes = range ? blob.subarray(range.start, range.end + 1) : blob;
    return Readable.from(chunks(bytes), { objectMode: false });
  }

  /** Buffers the source, then stores it under `key` if it ended cleanly. */
  async write(
    key: string,
    source: Readable | AsyncIterable<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<BlobStat> {
    assertSafeKey(key);
    const parts: Buffer[] = [];
    const collector = new Writable({
      write(chunk: Buffer, _encoding, done) {
        // Copy: a source may reuse its buffer for the next chunk.
        parts.push(Buffer.from(chunk));
        done();
      },
    });
    await pipeline(source, collector, { signal: options.signal });
    const blob = Buffer.concat(parts);
    this.#blobs.set(key, blob);
    return { size: blob.length };
  }

  /** The blob's size; BlobNotFoundError if absent. */
  async stat(key: string): Promise<BlobStat> {
    return { size: this.#get(key).length };
  }

  /** Forgets the blob; a missing key is fine. */
  async delete(key: string): Promise<void> {
    this.#blobs.delete(assertSafeKey(key));
  }

  /** Keys starting with `prefix`, from a snapshot taken when listing starts. */
  async *list(prefix: string): AsyncIterable<string> {
    assertSafePrefix(prefix);
    for (const key of [...this.#blobs.keys()]) {
      if (key.startsWith(prefix)) yield key;
    }
  }

  #get(key: string): Buffer {
    const blob = this.#blobs.get(assertSafeKey(key));
    if (blob === undefined) throw new BlobNotFoundError(key);
    return blob;
  }
}

function* chunks(bytes: Buffer): Generator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += READ_CHUNK) {
    yield bytes.subarray(offset, offset + READ_CHUNK);
  }
}
