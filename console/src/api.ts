/**
 * The console's one HTTP client: every call goes to this origin's public
 * Matrix and admin APIs with `Authorization: Bearer <token>`. The token never
 * goes into a URL (no `access_token=`): media the console shows is fetched
 * here and handed to `<img>` as a `blob:` URL.
 */

/** A Matrix error answer (`{"errcode","error"}`), or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    message: string,
  ) {
    super(message);
  }
}

export type Query = Record<string, string | number | boolean | undefined | null>;

/** `?a=1&b=2` of the defined values, or "". */
export function queryString(query: Query): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** One path segment, escaped (user ids, room ids and server names all contain `:`). */
export const seg = (value: string): string => encodeURIComponent(value);

/**
 * GET answers started before any view asked for them: at start-up the first
 * view's requests go out with the session check (console/src/app.tsx), one
 * round trip earlier than the view would send them. Keyed by token and path;
 * each is taken once, by the first `get` of the same path within
 * EARLY_TTL_MS, or dropped. At most MAX_EARLY are kept.
 */
const early = new Map<string, { at: number; answer: Promise<unknown> }>();
const MAX_EARLY = 4;
const EARLY_TTL_MS = 10_000;

export class Api {
  constructor(readonly token: string | undefined) {}

  withToken(token: string): Api {
    return new Api(token);
  }

  async json<T>(
    method: string,
    path: string,
    options: { body?: unknown; signal?: AbortSignal } = {},
  ): Promise<T> {
    const response = await this.#fetch(path, {
      method,
      signal: options.signal,
      headers: { "content-type": "application/json" },
      body:
        options.body === undefined
          ? method === "GET"
            ? undefined
            : "{}"
          : JSON.stringify(options.body),
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      throw new ApiError(response.status, "M_UNKNOWN", `Not JSON (HTTP ${response.status})`);
    }
    if (!response.ok) throw errorOf(response.status, body);
    return body as T;
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    const key = `${this.token} ${path}`;
    const started = early.get(key);
    if (started) {
      early.delete(key);
      if (performance.now() - started.at < EARLY_TTL_MS) {
        return abortable(started.answer as Promise<T>, signal);
      }
    }
    return this.json<T>("GET", path, { signal });
  }

  /** Starts `GET path` now for a later `get` of the same path (see `early`). */
  prefetch(path: string): void {
    if (early.size >= MAX_EARLY) return;
    const answer = this.json("GET", path);
    answer.catch(() => {}); // judged by the `get` that takes it, if any
    early.set(`${this.token} ${path}`, { at: performance.now(), answer });
  }

  /** Forgets every prefetched answer (a refused session's, a signed-out one's). */
  static dropPrefetched(): void {
    early.clear();
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.json<T>("POST", path, { body });
  }

  /**
   * The bytes at `path` (a download or thumbnail), as a Blob. With
   * `cacheable`, the browser's HTTP cache may answer and keep the answer as
   * the server's Cache-Control allows (a thumbnail: a day); otherwise, like
   * every other call, it bypasses the cache and is never stored.
   */
  async blob(path: string, signal?: AbortSignal, cacheable = false): Promise<Blob> {
    const init: RequestInit = { method: "GET", signal };
    if (cacheable) init.cache = "default";
    const response = await this.#fetch(path, init);
    if (!response.ok) {
      let body: unknown;
      try {
        body = await response.json();
      } catch {
        body = undefined;
      }
      throw errorOf(response.status, body);
    }
    return response.blob();
  }

  async #fetch(path: string, init: RequestInit): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.token) headers.set("authorization", `Bearer ${this.token}`);
    try {
      return await fetch(path, {
        cache: "no-store",
        ...init,
        headers,
        credentials: "omit",
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") throw error;
      throw new ApiError(0, "M_NETWORK", "The server could not be reached");
    }
  }
}

/** `answer`, or an AbortError as soon as `signal` aborts (the request itself runs on). */
function abortable<T>(answer: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return answer;
  return new Promise<T>((resolve, reject) => {
    const aborted = () => reject(new DOMException("The view was left", "AbortError"));
    if (signal.aborted) return aborted();
    signal.addEventListener("abort", aborted, { once: true });
    answer.then(resolve, reject).finally(() => signal.removeEventListener("abort", aborted));
  });
}

function errorOf(status: number, body: unknown): ApiError {
  const record = (body ?? {}) as { errcode?: unknown; error?: unknown };
  const errcode = typeof record.errcode === "string" ? record.errcode : "M_UNKNOWN";
  const message = typeof record.error === "string" ? record.error : `HTTP ${status}`;
  return new ApiError(status, errcode, message);
}

/** Whether `error` is an aborted fetch (a view was left): not worth showing. */
export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

/** A message for the user. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return `${error.message} (${error.errcode})`;
  return error instanceof Error ? error.message : String(error);
}
