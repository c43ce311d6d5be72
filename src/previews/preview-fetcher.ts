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
import type { UrlBlacklist } from "./url-blacklist.js";

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
  ) {}

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

  /** Reads a whole body (at most `max_spider_size`), keeping only its first `keepBytes`. */
  async readPrefix(
    response: FetchedResponse,
    keepBytes: number,
    signal: AbortSignal,
  ): Promise<{ bytes: Uint8Array; truncated: boolean }> {
    const chunks: Uint8Array[] = [];
    let kept = 0;
    let truncated = false;
    try {
      for await (const chunk of response.body) {
        signal.throwIfAborted();
        const room = keepBytes - kept;
        if (room <= 0) {
          truncated = true;
          continue;
        }
        const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
        if (part.length < chunk.length) truncated = true;
        chunks.push(part);
        kept += part.length;
      }
    } catch (error) {
      throw toPreviewError(error, signal);
    }
    return { bytes: Buffer.concat(chunks), truncated };
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
