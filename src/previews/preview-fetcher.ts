/**
 * Fetching for URL previews through mxcd's one outbound client
 * (`OutboundHttp`, built with the preview address policy): every request —
 * the page, each redirect hop, the oEmbed endpoint, the image — is checked
 * against `url_preview_url_blacklist` before it is sent, and its addresses
 * against `url_preview_ip_range_blacklist`/`whitelist` at connect time (the
 * client's lookup hook). Redirects are followed here, hop by hop, so no hop
 * escapes either check.
 *
 * Failures are Matrix errors as Synapse answers them: a policy refusal 403
 * `M_FORBIDDEN`, a body over `max_spider_size` 502 `M_TOO_LARGE`, anything
 * else 502 `M_UNKNOWN` with a message that says what went wrong. Each carries
 * a `kind` for the fetch-failure metric.
 *
 * Memory (bounded by construction): a body is read as a stream and at most
 * `max_spider_size` of it is kept (a page keeps only its parsed prefix), so
 * one fresh preview holds at most about `max_spider_size` plus one chunk;
 * `withSlot` lets at most `url_preview_max_concurrent_fetches` run at once
 * and `url_preview_fetch_queue_size` wait, refusing the rest with 429.
 */
import type { IncomingHttpHeaders } from "node:http";
import { MatrixError } from "../domain/matrix-error.js";
import {
  ConnectError,
  DnsLookupError,
  ForbiddenAddressError,
  OutboundTimeoutError,
  ResponseTooLargeError,
} from "../net/outbound-errors.js";
import type { OutboundHttp } from "../net/outbound-http.js";
import { type Semaphore, SemaphoreFullError } from "../util/semaphore.js";
import type { UrlBlacklist } from "./url-blacklist.js";

/** What a client refused for a full fetch queue is told to wait. */
const PREVIEW_BUSY_RETRY_AFTER_MS = 1000;

/** Redirects followed at most (browsers: 20; Synapse's treq: 20; MMR: 10). */
export const MAX_PREVIEW_REDIRECTS = 10;

/** Why a fetch failed, for `mxcd_url_preview_fetch_failures_total{kind}`. */
export type PreviewFailureKind =
  | "url_blacklist"
  | "ip_blacklist"
  | "dns"
  | "connect"
  | "timeout"
  | "too_large"
  | "status"
  | "content_type"
  | "redirects";

/** A Matrix error of a failed preview fetch, with its metric kind. */
export class PreviewFetchError extends MatrixError {
  readonly kind: PreviewFailureKind;
  constructor(
    kind: PreviewFailureKind,
    errcode: "M_FORBIDDEN" | "M_TOO_LARGE" | "M_UNKNOWN",
    message: string,
    status: number,
  ) {
    super(errcode, message, status);
    this.kind = kind;
  }
}

export interface PreviewFetchSettings {
  /** `max_spider_size`: more bytes than this is 502 M_TOO_LARGE. */
  readonly maxBytes: number;
  /** `url_preview_timeout`: the whole fetch, redirects and body included. */
  readonly timeoutMs: number;
  readonly userAgent: string;
  /** `url_preview_accept_language`, joined. */
  readonly acceptLanguage: string;
  readonly urlBlacklist: UrlBlacklist;
}

/** A 2xx response after redirects; its body must be read or destroyed. */
export interface FetchedResponse {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: AsyncIterable<Uint8Array> & { destroy(error?: Error): void };
  /** The media type of `Content-Type`, lower case, without parameters. */
  readonly mediaType: string;
  readonly contentType: string | undefined;
}

export class PreviewFetcher {
  constructor(
    private readonly outbound: OutboundHttp,
    readonly settings: PreviewFetchSettings,
    /**
     * Turns for fresh previews: `url_preview_max_concurrent_fetches` permits,
     * `url_preview_fetch_queue_size` waiters (its `waiting` is a metric).
     */
    private readonly slots: Semaphore,
  ) {}

  /**
   * Runs one fresh preview's fetching in a turn of its own: waits (FIFO)
   * while every turn is taken, and is refused at once with 429
   * `M_LIMIT_EXCEEDED` (`retry_after_ms`) when the queue is full too, so
   * memory is bounded and a flood of distinct URLs never hangs.
   */
  async withSlot<T>(work: () => Promise<T>): Promise<T> {
    let release: () => void;
    try {
      release = await this.slots.acquire();
    } catch (error) {
      if (!(error instanceof SemaphoreFullError)) throw error;
      throw new MatrixError(
        "M_LIMIT_EXCEEDED",
        "Too many URL previews are being fetched; try again later",
        429,
        { retry_after_ms: PREVIEW_BUSY_RETRY_AFTER_MS },
      );
    }
    try {
      return await work();
    } finally {
      release();
    }
  }

  /** Throws 403 M_FORBIDDEN when `url_preview_url_blacklist` refuses `url`. */
  checkUrl(url: string | URL): void {
    if (this.settings.urlBlacklist.blocks(url)) {
      throw new PreviewFetchError(
        "url_blacklist",
        "M_FORBIDDEN",
        "URL blocked by url pattern blocklist entry",
        403,
      );
    }
  }

  /**
   * GETs `url`, following redirects (each hop checked), within `signal`'s
   * deadline. Resolves with a 2xx response; any other final status is 502.
   */
  async get(url: string, accept: string, signal: AbortSignal): Promise<FetchedResponse> {
    let current = new URL(url);
    for (let hop = 0; hop <= MAX_PREVIEW_REDIRECTS; hop++) {
      this.checkUrl(current);
      const response = await this.#request(current, accept, signal);
      const location = response.headers.location;
      if (response.status >= 300 && response.status < 400 && location !== undefined) {
        response.body.destroy();
        let next: URL;
        try {
          next = new URL(location, current);
        } catch {
          throw fetchFailure("status", `${current.host} redirected to an invalid URL`);
        }
        if (next.protocol !== "http:" && next.protocol !== "https:") {
          throw fetchFailure("status", `${current.host} redirected to a non-http(s) URL`);
        }
        current = next;
        continue;
      }
      if (response.status < 200 || response.status >= 300) {
        response.body.destroy();
        throw fetchFailure("status", `Got error ${response.status} from ${current.host}`);
      }
      const contentType = header(response.headers["content-type"]);
      return {
        url: current.href,
        headers: response.headers,
        body: response.body,
        mediaType: (contentType ?? "").split(";", 1)[0]!.trim().toLowerCase(),
        contentType,
      };
    }
    throw fetchFailure("redirects", `more than ${MAX_PREVIEW_REDIRECTS} redirects`);
  }

  /**
   * Reads a whole body (at most `max_spider_size`: the stream errors past
   * it), keeping only its first `keepBytes`. What is kept is the only
   * memory held: with a Content-Length it is read straight into one buffer
   * of that size; without, chunks are joined once at the end.
   */
  async readPrefix(
    response: FetchedResponse,
    keepBytes: number,
    signal: AbortSignal,
  ): Promise<{ bytes: Uint8Array; truncated: boolean }> {
    const declared = Number(header(response.headers["content-length"]));
    const sink = new PrefixSink(
      Math.min(keepBytes, this.settings.maxBytes),
      Number.isSafeInteger(declared) && declared >= 0 ? declared : undefined,
    );
    try {
      for await (const chunk of response.body) {
        signal.throwIfAborted();
        sink.add(chunk);
      }
    } catch (error) {
      throw toPreviewError(error, signal);
    }
    return sink.result();
  }

  async #request(url: URL, accept: string, signal: AbortSignal) {
    try {
      return await this.outbound.request({
        url,
        signal,
        timeoutMs: this.settings.timeoutMs,
        maxBytes: this.settings.maxBytes,
        headers: {
          accept,
          "accept-language": this.settings.acceptLanguage,
          "user-agent": this.settings.userAgent,
        },
      });
    } catch (error) {
      throw toPreviewError(error, signal);
    }
  }
}

/** Maps an outbound failure (or the deadline) to the Matrix error Synapse gives. */
export function toPreviewError(error: unknown, signal?: AbortSignal): Error {
  if (error instanceof PreviewFetchError) return error;
  if (error instanceof ForbiddenAddressError) {
    return new PreviewFetchError("ip_blacklist", "M_FORBIDDEN", "IP address blocked", 403);
  }
  if (error instanceof ResponseTooLargeError) {
    return new PreviewFetchError(
      "too_large",
      "M_TOO_LARGE",
      "Requested file is too large (max_spider_size)",
      502,
    );
  }
  if (error instanceof DnsLookupError) {
    return fetchFailure("dns", "DNS resolution failure during URL preview generation");
  }
  if (error instanceof OutboundTimeoutError || signal?.aborted) {
    return fetchFailure("timeout", "Fetching the URL took too long");
  }
  if (error instanceof ConnectError) {
    return fetchFailure("connect", `Failed to connect to ${error.target}`);
  }
  return error instanceof Error ? error : new Error(String(error));
}

/** A 502 `M_UNKNOWN` fetch failure. */
export function fetchFailure(kind: PreviewFailureKind, message: string): PreviewFetchError {
  return new PreviewFetchError(kind, "M_UNKNOWN", message, 502);
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The kept prefix of a body: at most `keep` bytes. With a declared length,
 * one buffer of min(declared, keep) bytes is filled in place (no second
 * copy at the end); a body longer than it declared keeps what fits.
 */
class PrefixSink {
  readonly #keep: number;
  readonly #buffer: Buffer | undefined;
  readonly #chunks: Uint8Array[] = [];
  #kept = 0;
  #truncated = false;

  constructor(keep: number, declared: number | undefined) {
    this.#keep = declared === undefined ? keep : Math.min(keep, declared);
    this.#buffer = declared === undefined ? undefined : Buffer.allocUnsafe(this.#keep);
    // A declared length over what is kept: the rest is read and dropped.
    if (declared !== undefined && declared > keep) this.#truncated = true;
  }

  add(chunk: Uint8Array): void {
    const room = this.#keep - this.#kept;
    if (chunk.length > room) this.#truncated = true;
    if (room <= 0) return;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (this.#buffer) this.#buffer.set(part, this.#kept);
    else this.#chunks.push(part);
    this.#kept += part.length;
  }

  result(): { bytes: Uint8Array; truncated: boolean } {
    const bytes = this.#buffer
      ? this.#buffer.subarray(0, this.#kept)
      : Buffer.concat(this.#chunks, this.#kept);
    return { bytes, truncated: this.#truncated };
  }
}
