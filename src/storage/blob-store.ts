/**
 * The blob-store seam: where media bytes live. Backends (filesystem, memory,
 * S3) sit in sibling folders and all pass the one contract suite in
 * test/storage/blob-store-contract.ts.
 *
 * Keys are relative, `/`-separated paths in Synapse's media store layout
 * (see media-paths.ts); a backend may assume every key it receives passed
 * `assertSafeKey`.
 */
import type { Readable } from "node:stream";

/** Thrown by every backend when a key does not exist (ENOENT, NoSuchKey, ...). */
export class BlobNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`blob not found: ${key}`);
    this.name = "BlobNotFoundError";
  }
}

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export interface BlobStat {
  readonly size: number;
}

export interface WriteOptions {
  /** Aborting stops the write; nothing becomes visible under the key. */
  readonly signal?: AbortSignal;
}

/** Response headers a presigned URL makes the store send with the bytes. */
export interface PresignOptions {
  readonly contentType?: string;
  readonly contentDisposition?: string;
}

/** Where `sendTo` writes: Node's `http.ServerResponse` is one. */
export interface ByteSink {
  /** The callback runs once the chunk is handed to the kernel (or the sink failed). */
  write(chunk: Uint8Array, callback: (error?: Error | null) => void): boolean;
  end(): unknown;
  destroy(error?: Error): unknown;
  readonly destroyed: boolean;
  once(event: "close", listener: () => void): unknown;
}

export interface BlobStore {
  /**
   * Streams a blob, or the inclusive byte range of it. Throws
   * BlobNotFoundError (before any byte is produced) when the key is missing.
   */
  read(key: string, range?: ByteRange): Promise<Readable>;

  /**
   * Writes a blob from a stream. The blob becomes visible under `key` only
   * once every byte is stored (temp name, then rename or commit); if the
   * source errors or the signal aborts, the promise rejects and nothing is
   * left behind, not even a partial temp file. Replaces an existing blob.
   */
  write(
    key: string,
    source: Readable | AsyncIterable<Uint8Array>,
    options?: WriteOptions,
  ): Promise<BlobStat>;

  /** Size of a blob; throws BlobNotFoundError. */
  stat(key: string): Promise<BlobStat>;

  /** Deletes a blob; a missing key is not an error. */
  delete(key: string): Promise<void>;

  /** Every key that starts with `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<string>;

  /**
   * Optional capability (S3): a URL that serves the blob to anyone holding it,
   * without our credentials, for `ttlSeconds` (a whole number, 1 to 604800),
   * answering with the given headers. No I/O: the key is not checked to exist.
   * Callers must have done every access check (auth, quarantine) first.
   */
  presignedUrl?(key: string, ttlSeconds: number, options?: PresignOptions): Promise<string>;

  /**
   * Optional capability (filesystem): removes the store's own temporary files
   * — writes that never finished, like those of a process killed mid-upload —
   * not modified for at least `olderThanMs`, and nothing else. Resolves to how
   * many it removed; stops early when `signal` aborts.
   */
  sweepTemporaryFiles?(olderThanMs: number, signal?: AbortSignal): Promise<number>;

  /**
   * Optional capability (filesystem): sends a blob, or the inclusive byte
   * range of it, straight to a response. BlobNotFoundError rejects before
   * `start` is called; `start` (given the number of bytes that will be sent)
   * writes the head and returns the sink. From then on nothing rejects: a
   * failure, or a file that shrank under the send, destroys the sink (its
   * client sees a cut answer, never more bytes than announced), and the
   * promise resolves once the sink ended or closed and the file is closed.
   */
  sendTo?(
    key: string,
    range: ByteRange | undefined,
    start: (length: number) => ByteSink,
  ): Promise<void>;

  /** Releases resources (connections, handles); idempotent. */
  close?(): Promise<void>;
}
