/**
 * A pass-through stream that counts and hashes (SHA-256 and MD5, one pass)
 * the bytes of an upload as they flow to the blob store, and fails the moment the count exceeds the
 * limit — so `max_upload_size` holds for bodies without a Content-Length and
 * the whole file is never held in memory.
 */
import { createHash } from "node:crypto";
import { type Readable, Transform, type TransformCallback } from "node:stream";

/** The upload went past its size limit while streaming. */
export class UploadTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`upload exceeds ${limit} bytes`);
    this.name = "UploadTooLargeError";
  }
}

export class UploadMeter extends Transform {
  readonly #hash = createHash("sha256");
  // HMA's non-image signal is a plain MD5 of the file (docs/trust-and-safety.md).
  readonly #md5 = createHash("md5");
  #bytes = 0;

  constructor(private readonly limit: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.limit) {
      done(new UploadTooLargeError(this.limit));
      return;
    }
    this.#hash.update(chunk);
    this.#md5.update(chunk);
    done(null, chunk);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Lowercase hex SHA-256 of everything seen; call once, after the stream ended. */
  sha256(): string {
    return this.#hash.digest("hex");
  }

  /** Lowercase hex MD5 of everything seen; call once, after the stream ended. */
  md5(): string {
    return this.#md5.digest("hex");
  }
}

/**
 * Pipes an upload body into the meter. Unlike `pipeline()`, a failing meter
 * does not destroy the body: destroying an HTTP request destroys its socket
 * and with it the 413 on its way out. The body is left paused instead; the
 * error answer then closes the connection (see http-server.ts).
 * Resolves when the body ended; rejects when either side fails.
 */
export function feedMeter(body: Readable, meter: UploadMeter): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      body.unpipe(meter);
      body.pause();
      meter.destroy(error);
      reject(error);
    };
    body.once("error", fail);
    body.once("aborted", () => fail(new Error("upload aborted by the client")));
    meter.once("error", fail);
    body.once("end", () => resolve());
    body.pipe(meter);
  });
}
