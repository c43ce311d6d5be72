/**
 * Requests to other homeservers: resolve the destination (spec §4.5), sign
 * the request (X-Matrix, spec §4.2), send it through OutboundHttp with the
 * resolved Host header and TLS name. Redirects are returned, not followed.
 *
 * The request target is sent byte for byte as the caller gives it, and the
 * signature covers exactly that string: no URL parsing in between may
 * normalise it (`..`, percent-encoding), or the remote's check would fail.
 */
import { type JsonResponse, readJsonResponse } from "../net/json-response.js";
import {
  DEFAULT_JSON_MAX_BYTES,
  type OutboundHttp,
  type OutboundResponse,
} from "../net/outbound-http.js";
import type { ResolvedServer } from "./server-resolver.js";

/** Builds the `Authorization: X-Matrix ...` header of a request (RequestSigner implements it). */
export interface FederationRequestSigner {
  authorizationHeader(method: string, uri: string, destination: string, content?: unknown): string;
}

/** Options of one federation request. */
export interface FederationRequestOptions {
  readonly signal?: AbortSignal;
  /** Connect + response headers limit; default `federation_request_timeout`. */
  readonly timeoutMs?: number;
  /** Largest body accepted (ResponseTooLargeError past it). */
  readonly maxBytes: number;
  /** Send the X-Matrix Authorization header; default true. */
  readonly signed?: boolean;
  /** Extra request headers (Accept, ...). */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface FederationClientOptions {
  readonly resolver: { resolve(serverName: string): Promise<ResolvedServer> };
  readonly http: Pick<OutboundHttp, "request">;
  readonly signer: FederationRequestSigner;
  /** `federation_request_timeout`. */
  readonly timeoutMs: number;
}

/** A request target: absolute path, optional query, printable ASCII, no fragment. */
const PATH_AND_QUERY = /^\/[\x21-\x22\x24-\x7e]*$/;

export class FederationClient {
  readonly #options: FederationClientOptions;

  constructor(options: FederationClientOptions) {
    this.#options = options;
  }

  /**
   * GETs `pathAndQuery` (already percent-encoded, e.g.
   * `/_matrix/federation/v1/media/download/abc?timeout_ms=20000`) from
   * `destination`. Resolves with the response of any status, body unread:
   * the caller streams it or destroys it. Rejects with the OutboundHttp
   * errors, UnresolvableServerError, or a TypeError for a malformed target.
   */
  async get(
    destination: string,
    pathAndQuery: string,
    options: FederationRequestOptions,
  ): Promise<OutboundResponse> {
    if (!PATH_AND_QUERY.test(pathAndQuery)) {
      throw new TypeError(`not a request target: ${JSON.stringify(pathAndQuery)}`);
    }
    const server = await this.#options.resolver.resolve(destination);
    options.signal?.throwIfAborted();
    const headers: Record<string, string> = { ...options.headers };
    if (options.signed ?? true) {
      headers.authorization = this.#options.signer.authorizationHeader(
        "GET",
        pathAndQuery,
        destination,
      );
    }
    return this.#options.http.request({
      url: server.baseUrl,
      path: pathAndQuery,
      method: "GET",
      headers,
      hostHeader: server.hostHeader,
      tlsServerName: server.tlsServerName,
      signal: options.signal,
      timeoutMs: options.timeoutMs ?? this.#options.timeoutMs,
      maxBytes: options.maxBytes,
    });
  }

  /**
   * `get` then `readJsonResponse`: the parsed JSON of a 2xx answer (capped at
   * `maxBytes`, default 1 MiB); HttpStatusError (with the remote's
   * `errcode`) for other statuses; InvalidJsonResponseError for non-JSON.
   */
  async getJson(
    destination: string,
    pathAndQuery: string,
    options: Omit<FederationRequestOptions, "maxBytes"> & { maxBytes?: number } = {},
  ): Promise<JsonResponse> {
    const response = await this.get(destination, pathAndQuery, {
      ...options,
      maxBytes: options.maxBytes ?? DEFAULT_JSON_MAX_BYTES,
      headers: { accept: "application/json", ...options.headers },
    });
    return readJsonResponse(response, destination);
  }
}
