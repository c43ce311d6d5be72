/**
 * The attached shape's one way to the homeserver (attached-mode.md §8.3 item 1):
 * JSON GETs to `homeserver.base_url`, the homeserver's internal address, with
 * a time limit, a size cap and a consecutive-failure breaker.
 *
 * Design notes:
 * - Every answer that is JSON is an answer, whatever its status: a 401 or a
 *   403 from the homeserver is information (the token is unknown, the admin
 *   probe says no). Transport errors, time-outs, 5xx and non-JSON bodies (an
 *   HTML 502 page from a proxy) are failures: HomeserverUnavailableError,
 *   which callers turn into 502/504 `M_UNKNOWN` and never cache.
 * - After `failureThreshold` consecutive failures the breaker opens: calls
 *   fail at once for `cooldownMs` (no request), then one call at a time is let
 *   through until one succeeds. A homeserver that is down costs no time-out
 *   per request, and cached tokens keep working meanwhile.
 * - The base URL comes from the admin's config, never from a request, so the
 *   client it is given may allow private addresses; paths are built by the
 *   callers from validated identifiers and percent-encoded.
 */
import { MXCD_VERSION } from "../version.js";

/** The slice of OutboundHttp this client needs (a fake can stand in). */
export interface HomeserverTransport {
  request(request: {
    url: string;
    method?: string;
    headers?: Readonly<Record<string, string>>;
    timeoutMs?: number;
    maxBytes: number;
    signal?: AbortSignal;
  }): Promise<{ status: number; body: AsyncIterable<unknown> & { destroy(): void } }>;
}

export interface HomeserverClientOptions {
  /** `homeserver.base_url`, e.g. `http://synapse:8008` (no trailing path needed). */
  readonly baseUrl: string;
  /** `homeserver.request_timeout`: connect to end of body. */
  readonly timeoutMs: number;
  /** `homeserver.failure_threshold`: consecutive failures that open the breaker. */
  readonly failureThreshold: number;
  /** How long the open breaker fails fast; default 10 s. */
  readonly cooldownMs?: number;
  readonly transport: HomeserverTransport;
  readonly now?: () => number;
}

/** Per-call options of `HomeserverClient.get`. */
export interface HomeserverGetOptions {
  readonly accessToken?: string;
  readonly forwardedFor?: string;
  /** Largest answer read (default 1 MiB); a larger one is a HomeserverUnavailableError. */
  readonly maxBytes?: number;
  /** Gives up the request (a HomeserverUnavailableError) when aborted. */
  readonly signal?: AbortSignal;
}

/** A JSON answer of any status. */
export interface HomeserverAnswer {
  readonly status: number;
  readonly json: unknown;
}

/** The homeserver could not be asked, or answered garbage. */
export class HomeserverUnavailableError extends Error {
  /** True when the failure was a time-out (504 rather than 502 for the client). */
  readonly timedOut: boolean;
  /** The HTTP status, when the homeserver answered (a 5xx, or a body that is not JSON). */
  readonly status: number | undefined;

  constructor(
    message: string,
    options: { timedOut?: boolean; cause?: unknown; status?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "HomeserverUnavailableError";
    this.timedOut = options.timedOut ?? false;
    this.status = options.status;
  }
}

/** Largest homeserver answer read by default (whoami, admin probes and room lists are small). */
const MAX_ANSWER_BYTES = 1024 * 1024;
const DEFAULT_COOLDOWN_MS = 10_000;

export class HomeserverClient {
  readonly #base: string;
  readonly #options: HomeserverClientOptions;
  readonly #now: () => number;
  #consecutiveFailures = 0;
  #openUntil = 0;
  #probing = false;

  constructor(options: HomeserverClientOptions) {
    this.#base = options.baseUrl.replace(/\/+$/, "");
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** True while the breaker fails calls without asking the homeserver. */
  get open(): boolean {
    return this.#consecutiveFailures >= this.#options.failureThreshold;
  }

  /**
   * GETs `path` (with its query, already encoded) with the given access token
   * and forwarded client address. Resolves with any JSON answer; rejects with
   * HomeserverUnavailableError otherwise, a body over `maxBytes` (default
   * MAX_ANSWER_BYTES) included.
   */
  async get(path: string, options: HomeserverGetOptions = {}): Promise<HomeserverAnswer> {
    const probe = this.#admit();
    try {
      const answer = await this.#send(path, options);
      this.#consecutiveFailures = 0;
      return answer;
    } catch (error) {
      this.#consecutiveFailures += 1;
      if (this.open)
        this.#openUntil = this.#now() + (this.#options.cooldownMs ?? DEFAULT_COOLDOWN_MS);
      throw error;
    } finally {
      if (probe) this.#probing = false;
    }
  }

  /** Lets a call through, or fails it at once while the breaker is open; true for the one half-open probe. */
  #admit(): boolean {
    if (!this.open) return false;
    if (this.#now() < this.#openUntil || this.#probing) {
      throw new HomeserverUnavailableError("homeserver unavailable (failing fast after errors)");
    }
    this.#probing = true;
    return true;
  }

  async #send(path: string, options: HomeserverGetOptions): Promise<HomeserverAnswer> {
    const headers: Record<string, string> = {
      accept: "application/json",
      "user-agent": `mxcd/${MXCD_VERSION}`,
    };
    if (options.accessToken !== undefined) headers.authorization = `Bearer ${options.accessToken}`;
    if (options.forwardedFor !== undefined) headers["x-forwarded-for"] = options.forwardedFor;
    const timeout = AbortSignal.timeout(this.#options.timeoutMs);
    const deadline = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    let status: number;
    let text: string;
    try {
      const response = await this.#options.transport.request({
        url: `${this.#base}${path}`,
        headers,
        timeoutMs: this.#options.timeoutMs,
        maxBytes: options.maxBytes ?? MAX_ANSWER_BYTES,
        ...(options.signal && { signal: options.signal }),
      });
      status = response.status;
      text = await readText(response.body, deadline);
    } catch (error) {
      throw new HomeserverUnavailableError(`homeserver request failed: ${describe(error)}`, {
        timedOut: timeout.aborted || isTimeout(error),
        cause: error,
      });
    }
    if (status >= 500) {
      throw new HomeserverUnavailableError(`homeserver answered ${status}`, { status });
    }
    try {
      return { status, json: JSON.parse(text) };
    } catch {
      throw new HomeserverUnavailableError(`homeserver answered ${status} with a non-JSON body`, {
        status,
      });
    }
  }
}

async function readText(
  body: AsyncIterable<unknown> & { destroy(): void },
  deadline: AbortSignal,
): Promise<string> {
  const onAbort = () => body.destroy();
  deadline.addEventListener("abort", onAbort, { once: true });
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(Buffer.from(chunk as Uint8Array));
    deadline.throwIfAborted();
    return Buffer.concat(chunks).toString("utf8");
  } finally {
    deadline.removeEventListener("abort", onAbort);
  }
}

function isTimeout(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  return name === "OutboundTimeoutError" || name === "TimeoutError";
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
