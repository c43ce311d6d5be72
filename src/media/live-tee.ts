/**
 * The first client's share of a remote fetch: the bytes go to the cache at
 * the speed of the network and the store, and to the client only as fast as
 * it reads them.
 *
 * Design note. The fetch never waits for the client (a slow client must not
 * slow the cache, nor hold the remote connection open). Instead, the bytes
 * waiting for the client are bounded: while the client's stream holds less
 * than `limit` bytes, each chunk is written to it; the first chunk that
 * would take it past the limit detaches the client. Nothing more is written
 * to it during the fetch; once the fetch is committed to the cache, the rest
 * (from the first byte it did not get) is streamed from the store, with
 * ordinary backpressure. So a client that lags costs at most `limit` bytes
 * plus one chunk of memory, and still gets every byte, in order.
 *
 * The last chunk is always held back until the quarantine decision (see
 * remote-media-service.ts): quarantined bytes are never completed.
 */
import type { PassThrough, Readable } from "node:stream";

export class LiveTee {
  #held: Buffer | undefined;
  #sent = 0;
  #detached = false;

  constructor(
    /** The client's stream (an HTTP response body). */
    private readonly live: PassThrough,
    /** Most bytes buffered for the client before it is detached. */
    private readonly limit: number,
  ) {}

  /** Bytes written to the client and not yet read by it. */
  get buffered(): number {
    return this.live.writableLength + this.live.readableLength;
  }

  /** Passes the previous chunk on (unless detached) and holds this one back. */
  push(chunk: Buffer): void {
    const previous = this.#held;
    this.#held = chunk;
    if (!previous || this.#detached || this.live.destroyed) return;
    if (this.buffered + previous.length > this.limit) {
      this.#detached = true;
      return;
    }
    this.live.write(previous);
    this.#sent += previous.length;
  }

  /**
   * The fetch is committed and may be served: completes the client's
   * stream with the held-back chunk, or, when it was detached, with the rest
   * read from the cache by `readFrom(offset)`. Never throws: a failure to
   * read the cache cuts the client's response off.
   */
  async finish(readFrom: (offset: number) => Promise<Readable>): Promise<void> {
    if (this.live.destroyed) return;
    if (!this.#detached) {
      this.live.end(this.#held);
      return;
    }
    try {
      const rest = await readFrom(this.#sent);
      if (this.live.destroyed) {
        rest.destroy();
        return;
      }
      rest.on("error", (error) => this.live.destroy(error));
      this.live.once("close", () => rest.destroy());
      rest.pipe(this.live);
    } catch (error) {
      this.live.destroy(error as Error);
    }
  }
}
