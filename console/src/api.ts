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
    return this.json<T>("GET", path, { signal });
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.json<T>("POST", path, { body });
  }

  /** The bytes at `path` (a download or thumbnail), as a Blob. */
  async blob(path: string, signal?: AbortSignal): Promise<Blob> {
    const response = await this.#fetch(path, { method: "GET", signal });
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
      return await fetch(path, { ...init, headers, credentials: "omit", cache: "no-store" });
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") throw error;
      throw new ApiError(0, "M_NETWORK", "The server could not be reached");
    }
  }
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
