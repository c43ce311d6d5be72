/**
 * The typed errors of outbound HTTP. Every failure of `OutboundHttp` (and so
 * of federation requests) is one of these, so callers map failures by class
 * (e.g. remote media: `HttpStatusError` 404 → 404, `ResponseTooLargeError`
 * → 502 `M_TOO_LARGE`, any other `OutboundHttpError` → 502), never by
 * parsing messages or Node error codes.
 */

/** Base class of every outbound HTTP failure. `target` names the host or URL. */
export class OutboundHttpError extends Error {
  readonly target: string;
  constructor(message: string, target: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.target = target;
  }
}

/** The address to connect to is refused by `ip_range_blacklist`/`ip_range_whitelist`. */
export class ForbiddenAddressError extends OutboundHttpError {
  readonly address: string;
  constructor(target: string, address: string) {
    super(`refusing to connect to ${target}: address ${address} is not allowed`, target);
    this.address = address;
  }
}

/** The host name did not resolve (NXDOMAIN, no addresses, resolver failure). */
export class DnsLookupError extends OutboundHttpError {
  readonly code: string | undefined;
  constructor(target: string, code: string | undefined, options?: ErrorOptions) {
    super(`cannot resolve ${target}${code ? ` (${code})` : ""}`, target, options);
    this.code = code;
  }
}

/**
 * The connection failed: refused, reset, unreachable, TLS handshake or
 * certificate failure, or lost before the response (or its body) completed.
 * `code` is Node's error code when there is one (`ECONNREFUSED`, ...).
 */
export class ConnectError extends OutboundHttpError {
  readonly code: string | undefined;
  constructor(target: string, code: string | undefined, options?: ErrorOptions) {
    super(`connection to ${target} failed${code ? ` (${code})` : ""}`, target, options);
    this.code = code;
  }
}

/** Which wait ran out: connecting plus the response headers, or a stalled body. */
export type TimeoutPhase = "headers" | "body";

/** No response headers within the request timeout, or the body stalled for too long. */
export class OutboundTimeoutError extends OutboundHttpError {
  readonly phase: TimeoutPhase;
  readonly timeoutMs: number;
  constructor(target: string, phase: TimeoutPhase, timeoutMs: number) {
    super(`${target} did not answer within ${timeoutMs} ms (${phase})`, target);
    this.phase = phase;
    this.timeoutMs = timeoutMs;
  }
}

/** The response body is larger than the caller's cap (declared or streamed). */
export class ResponseTooLargeError extends OutboundHttpError {
  readonly maxBytes: number;
  /** The Content-Length the server declared, when that is what gave it away. */
  readonly declared: number | undefined;
  constructor(target: string, maxBytes: number, declared?: number) {
    super(`response from ${target} is larger than ${maxBytes} bytes`, target);
    this.maxBytes = maxBytes;
    this.declared = declared;
  }
}

/** A JSON request got a non-2xx status; `body` is the parsed JSON error body, if any. */
export class HttpStatusError extends OutboundHttpError {
  readonly status: number;
  readonly body: unknown;
  /** The Matrix `errcode` of the body, when it has one. */
  readonly errcode: string | undefined;
  constructor(target: string, status: number, body: unknown) {
    super(`${target} answered HTTP ${status}`, target);
    this.status = status;
    this.body = body;
    const errcode = (body as { errcode?: unknown } | undefined)?.errcode;
    this.errcode = typeof errcode === "string" ? errcode : undefined;
  }
}

/** A JSON request got a 2xx response whose body is not JSON. */
export class InvalidJsonResponseError extends OutboundHttpError {
  constructor(target: string, options?: ErrorOptions) {
    super(`${target} answered with a body that is not JSON`, target, options);
  }
}
