/**
 * THE outbound HTTP client (DESIGN.md "Security"): every request mxcd makes
 * to another host (federation, discovery, later URL previews) goes through
 * `OutboundHttp.request`, which refuses private, loopback and link-local
 * addresses unless the config allows them.
 *
 * Design notes:
 * - The address check sits in the socket's `lookup` hook, so the address
 *   checked is the address connected to; IP-literal hosts, for which Node
 *   skips the hook, are checked before the request (address-guard.ts).
 * - Redirects are never followed here: the caller sees the 30x and decides.
 * - Time limits: `timeoutMs` covers connecting up to the response headers;
 *   then the body errors if it stalls for `idleTimeoutMs`. An overall
 *   deadline is the caller's `signal` (e.g. `AbortSignal.timeout`).
 * - One keep-alive Agent per scheme; pooled sockets were checked when they
 *   connected.
 */
import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import type { Readable } from "node:stream";
import { MXCD_VERSION } from "../version.js";
import { checkLiteralAddress, guardedLookup } from "./address-guard.js";
import { type Dns, systemDns } from "./dns.js";
import type { AddressPolicy } from "./ip-ranges.js";
import { type JsonResponse, readJsonResponse } from "./json-response.js";
import { LimitedBody } from "./limited-body.js";
import {
  ConnectError,
  OutboundHttpError,
  OutboundTimeoutError,
  ResponseTooLargeError,
} from "./outbound-errors.js";

/** How OutboundHttp is set up (from the config, plus test seams). */
export interface OutboundHttpOptions {
  /** `ip_range_blacklist` / `ip_range_whitelist`. */
  readonly policy: AddressPolicy;
  /** Verify TLS certificates (`federation_verify_certificates`); default true. */
  readonly verifyCertificates?: boolean;
  /** Default `timeoutMs` of requests that give none. */
  readonly defaultTimeoutMs: number;
  /** Address resolution; default the system resolver. */
  readonly dns?: Pick<Dns, "lookup">;
  /**
   * Trusted CA certificates (PEM), replacing the system roots: for tests. A
   * deployment adds a private CA with NODE_EXTRA_CA_CERTS instead.
   */
  readonly ca?: string;
}

/** One request. */
export interface OutboundRequest {
  /** Absolute http(s) URL. Its path and query are sent unless `path` is given. */
  readonly url: string | URL;
  /** Sent exactly as given instead of the URL's path and query (signed requests). */
  readonly path?: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  /** The Host header; default the URL's host. */
  readonly hostHeader?: string;
  /** TLS SNI and the name the certificate must match; default the URL's host (none for IPs). */
  readonly tlsServerName?: string;
  readonly signal?: AbortSignal;
  /** Limit for connecting and receiving the response headers. */
  readonly timeoutMs?: number;
  /** Limit on a stall while reading the body; default `timeoutMs`. */
  readonly idleTimeoutMs?: number;
  /** Largest body accepted; more (declared or streamed) is ResponseTooLargeError. */
  readonly maxBytes: number;
}

/** A response whose body has not been read yet: read it to the end or destroy it. */
export interface OutboundResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
}

/** Cap of `getJson` bodies unless the caller gives one. */
export const DEFAULT_JSON_MAX_BYTES = 1024 * 1024;

/** How long an idle pooled connection is kept. */
const FREE_SOCKET_TIMEOUT_MS = 30_000;

export class OutboundHttp {
  readonly #policy: AddressPolicy;
  readonly #lookup: LookupFunction;
  readonly #defaultTimeoutMs: number;
  readonly #verify: boolean;
  readonly #httpAgent = new HttpAgent({ keepAlive: true, timeout: FREE_SOCKET_TIMEOUT_MS });
  readonly #httpsAgent: HttpsAgent;

  constructor(options: OutboundHttpOptions) {
    this.#policy = options.policy;
    this.#lookup = guardedLookup(options.dns ?? systemDns, options.policy);
    this.#defaultTimeoutMs = options.defaultTimeoutMs;
    this.#verify = options.verifyCertificates ?? true;
    this.#httpsAgent = new HttpsAgent({
      keepAlive: true,
      timeout: FREE_SOCKET_TIMEOUT_MS,
      rejectUnauthorized: this.#verify,
      ...(options.ca !== undefined && { ca: options.ca }),
    });
  }

  /**
   * Sends one request and resolves once the response headers arrive. Rejects
   * with ForbiddenAddressError, DnsLookupError, ConnectError,
   * OutboundTimeoutError ("headers"), ResponseTooLargeError (declared
   * Content-Length over `maxBytes`), or the signal's reason when aborted.
   * Any status resolves, redirects included. The body errors later with
   * ResponseTooLargeError, OutboundTimeoutError ("body") or ConnectError.
   */
  async request(request: OutboundRequest): Promise<OutboundResponse> {
    const url = new URL(request.url);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`not an http(s) URL: ${url.protocol}`);
    }
    const target = url.host;
    const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
    checkLiteralAddress(hostname, target, this.#policy);
    request.signal?.throwIfAborted();
    const response = await this.#send(url, hostname, request);
    const declared = Number(response.headers["content-length"]);
    if (declared > request.maxBytes) {
      response.destroy();
      throw new ResponseTooLargeError(target, request.maxBytes, declared);
    }
    const idleTimeoutMs = request.idleTimeoutMs ?? request.timeoutMs ?? this.#defaultTimeoutMs;
    const body = new LimitedBody(response, { target, maxBytes: request.maxBytes, idleTimeoutMs });
    abortWith(request.signal, body);
    return { status: response.statusCode ?? 0, headers: response.headers, body };
  }

  /**
   * `request` then `readJsonResponse`: the parsed JSON of a 2xx answer
   * (capped at `maxBytes`, default 1 MiB); HttpStatusError for other
   * statuses, InvalidJsonResponseError for a body that is not JSON.
   */
  async getJson(
    request: Omit<OutboundRequest, "maxBytes" | "method"> & { maxBytes?: number },
  ): Promise<JsonResponse> {
    const response = await this.request({
      ...request,
      method: "GET",
      maxBytes: request.maxBytes ?? DEFAULT_JSON_MAX_BYTES,
      headers: { accept: "application/json", ...request.headers },
    });
    return readJsonResponse(response, new URL(request.url).host);
  }

  /** Closes pooled connections. Requests still in flight carry on. */
  close(): void {
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
  }

  #send(url: URL, hostname: string, request: OutboundRequest) {
    const timeoutMs = request.timeoutMs ?? this.#defaultTimeoutMs;
    const options = this.#requestOptions(url, hostname, request);
    const isHttps = url.protocol === "https:";
    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = (isHttps ? httpsRequest : httpRequest)(options);
      const timer = setTimeout(
        () => req.destroy(new OutboundTimeoutError(url.host, "headers", timeoutMs)),
        timeoutMs,
      );
      const onAbort = () => req.destroy(request.signal?.reason);
      request.signal?.addEventListener("abort", onAbort, { once: true });
      const settle = () => {
        clearTimeout(timer);
        request.signal?.removeEventListener("abort", onAbort);
      };
      req.once("response", (response) => {
        settle();
        resolve(response);
      });
      // A persistent listener: late socket errors must not become unhandled.
      req.on("error", (error) => {
        settle();
        reject(toOutboundError(error, url.host, request.signal));
      });
      req.end(request.body);
    });
  }

  /** http.request options: the guarded lookup, the pooled agent, Host and TLS names. */
  #requestOptions(url: URL, hostname: string, request: OutboundRequest): RequestOptions {
    const isHttps = url.protocol === "https:";
    const headers: Record<string, string> = {
      "user-agent": `mxcd/${MXCD_VERSION}`,
      ...request.headers,
    };
    if (request.hostHeader !== undefined) headers.host = request.hostHeader;
    // SNI only for names: RFC 6066 forbids IP addresses in SNI, and with an
    // empty servername Node checks the certificate against the IP.
    const serverName = request.tlsServerName ?? hostname;
    return {
      method: request.method ?? "GET",
      hostname,
      port: url.port || (isHttps ? 443 : 80),
      path: request.path ?? `${url.pathname}${url.search}`,
      headers,
      lookup: this.#lookup,
      agent: isHttps ? this.#httpsAgent : this.#httpAgent,
      ...(isHttps && {
        servername: isIP(serverName) ? "" : serverName,
        rejectUnauthorized: this.#verify,
      }),
    };
  }
}

/** Keeps typed errors and the abort reason; anything else is a ConnectError. */
function toOutboundError(error: unknown, target: string, signal: AbortSignal | undefined) {
  if (error instanceof OutboundHttpError) return error;
  if (signal?.aborted && error === signal.reason) return error;
  const code = (error as NodeJS.ErrnoException).code;
  return new ConnectError(target, code, { cause: error });
}

/** Destroys `body` with the signal's reason when it aborts before the body ends. */
function abortWith(signal: AbortSignal | undefined, body: Readable): void {
  if (!signal) return;
  const onAbort = () => body.destroy(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  body.once("close", () => signal.removeEventListener("abort", onAbort));
}
