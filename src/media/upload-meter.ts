/**
 * A pass-through stream that counts and hashes (SHA-256 and MD5, one pass)
 * the bytes of an upload as they flow to the blob store, and fails the moment the count exceeds the
 * limit — so `max_upload_size` holds for bodies without a Content-Length and
 * the whole file is never held in memory.
 *
 * SHA-256 runs here, on the calling thread; the MD5 goes to an Md5Hasher —
 * in the server a worker thread for large uploads (md5-worker-pool.ts). The
 * meter waits for that hasher when it has too many bytes in flight (the
 * stream is held back, not buffered), and it ends only once the MD5 is
 * known, so `md5()` is ready whenever the stream's consumer is done.
 */
import { createHash } from "node:crypto";
import { type Readable, Transform, type TransformCallback } from "node:stream";
import { MAIN_THREAD_MD5, type Md5Hasher, type Md5Hashers } from "./md5-worker-pool.js";

/** The upload went past its size limit while streaming. */
export class UploadTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`upload exceeds ${limit} bytes`);
    this.name = "UploadTooLargeError";
  }
}

/**
 * The room an upload holds against its user's quota (upload-quota-service.ts):
 * the meter asks for more, holding the body back, when the bytes outgrow it.
 */
export interface UploadAllowance {
  readonly granted: number;
  /** Grows the room to at least `total` bytes; rejects when it does not fit. */
  ensure(total: number): Promise<number>;
}

export class UploadMeter extends Transform {
  readonly #hash = createHash("sha256");
  // HMA's non-image signal is a plain MD5 of the file (docs/trust-and-safety.md).
  readonly #md5: Md5Hasher;
  #md5Hex: string | undefined;
  #bytes = 0;

  /** `md5`: where the MD5 runs; default this thread. `allowance`: the upload's quota room, if any. */
  constructor(
    private readonly limit: number,
    md5: Md5Hashers = MAIN_THREAD_MD5,
    private readonly allowance?: UploadAllowance,
  ) {
    super();
    this.#md5 = md5.create();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.limit) {
      done(new UploadTooLargeError(this.limit));
      return;
    }
    if (this.allowance && this.#bytes > this.allowance.granted) {
      // Past the quota room held: wait for more (the body waits too), or fail.
      this.allowance.ensure(this.#bytes).then(
        () => this.#pass(chunk, done),
        (error: Error) => done(error),
      );
      return;
    }
    this.#pass(chunk, done);
  }

  #pass(chunk: Buffer, done: TransformCallback): void {
    this.#hash.update(chunk);
    let goOn: boolean;
    try {
      goOn = this.#md5.update(chunk);
    } catch (error) {
      done(error as Error);
      return;
    }
    if (goOn) {
      done(null, chunk);
      return;
    }
    // Too much of this upload is waiting for its MD5 worker: hold the stream back.
    this.#md5.drained().then(
      () => done(null, chunk),
      (error: Error) => done(error),
    );
  }

  override _flush(done: TransformCallback): void {
    this.#md5.digest().then(
      (hex) => {
        this.#md5Hex = hex;
        done();
      },
      (error: Error) => done(error),
    );
  }

  override _destroy(error: Error | null, done: (error: Error | null) => void): void {
    // An aborted or refused upload lets go of its MD5 state (and its worker).
    this.#md5.destroy();
    done(error);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Lowercase hex SHA-256 of everything seen; call once, after the stream ended. */
  sha256(): string {
    return this.#hash.digest("hex");
  }

  /** Lowercase hex MD5 of everything seen; known once the stream ended. */
  md5(): string {
    if (this.#md5Hex === undefined) throw new Error("the upload's MD5 is known only after its end");
    return this.#md5Hex;
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
