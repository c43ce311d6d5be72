/**
 * The body stream OutboundHttp hands to callers: the response bytes as they
 * arrive, with the size cap and the stall timeout enforced while streaming.
 *
 * Design notes:
 * - The source is read in paused mode and resumed only when the consumer
 *   asks for more (`_read`), so backpressure reaches the socket.
 * - The idle timer runs only while the consumer is waiting for bytes: a
 *   slow consumer (a blob store write) never looks like a stalled server.
 * - A source that closes before its end (connection reset, truncated
 *   chunked body) errors the body with ConnectError; a caller never
 *   mistakes a cut-off body for a complete one.
 */
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { ConnectError, OutboundTimeoutError, ResponseTooLargeError } from "./outbound-errors.js";

/** Limits of a body stream. */
export interface BodyLimits {
  /** Names the server in errors. */
  readonly target: string;
  /** More bytes than this errors the stream with ResponseTooLargeError. */
  readonly maxBytes: number;
  /** Waiting this long for the next bytes errors the stream with OutboundTimeoutError. */
  readonly idleTimeoutMs: number;
}

/**
 * A Readable of `source`'s bytes that errors with ResponseTooLargeError past
 * `maxBytes`, OutboundTimeoutError ("body") when the server stalls, and
 * ConnectError when the connection ends early. Destroying it destroys the
 * source (and so its connection).
 */
export class LimitedBody extends Readable {
  readonly #source: IncomingMessage;
  readonly #limits: BodyLimits;
  #received = 0;
  #ended = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(source: IncomingMessage, limits: BodyLimits) {
    super();
    this.#source = source;
    this.#limits = limits;
    source.on("data", (chunk: Buffer) => this.#onData(chunk));
    source.pause();
    source.once("end", () => {
      this.#ended = true;
      this.#clearTimer();
      this.push(null);
    });
    source.once("error", (error) => this.#fail(error));
    source.once("close", () => {
      if (!this.#ended) this.#fail(undefined);
    });
  }

  /** Bytes received so far. */
  get bytesReceived(): number {
    return this.#received;
  }

  override _read(): void {
    this.#armTimer();
    this.#source.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#clearTimer();
    if (!this.#ended) this.#source.destroy();
    callback(error);
  }

  #onData(chunk: Buffer): void {
    this.#clearTimer();
    this.#received += chunk.length;
    if (this.#received > this.#limits.maxBytes) {
      this.destroy(new ResponseTooLargeError(this.#limits.target, this.#limits.maxBytes));
      return;
    }
    // push() false: the consumer is full. Stop the source and the idle
    // clock until it asks for more in _read().
    if (this.push(chunk)) this.#armTimer();
    else this.#source.pause();
  }

  #fail(cause: Error | undefined): void {
    if (this.destroyed) return;
    const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? "ECONNRESET";
    this.destroy(new ConnectError(this.#limits.target, code, { cause }));
  }

  #armTimer(): void {
    this.#clearTimer();
    if (this.#ended || this.destroyed) return;
    const { target, idleTimeoutMs } = this.#limits;
    this.#timer = setTimeout(
      () => this.destroy(new OutboundTimeoutError(target, "body", idleTimeoutMs)),
      idleTimeoutMs,
    );
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
