/**
 * A scripted homeserver for attached-mode tests, written from the Matrix
 * spec and shared/reference/attached-mode.md (§1, §3) — deliberately not
 * from mxcd's code, so the two sides cannot share one bug.
 *
 * What it serves (Synapse's behaviour):
 * - `GET /_matrix/client/v3/account/whoami`: token from `Authorization:
 *   Bearer` or `?access_token`; 401 `M_MISSING_TOKEN` / `M_UNKNOWN_TOKEN`
 *   (`soft_logout: true` for an expired token); `user_id` masquerading for
 *   application-service tokens only: the target must match the AS's user
 *   regex (start-anchored, like Python's `re.match`) and be registered, else
 *   403 `M_FORBIDDEN`; `is_guest`.
 * - `GET /_synapse/admin/v1/users/{userId}/admin`: admins only (403
 *   otherwise), `{"admin": bool}`.
 * - `GET /_synapse/admin/v1/whois/{userId}` and
 *   `/_matrix/client/v3/admin/whois/{userId}`: admins, or oneself.
 *
 * It can be told to fail (`failWith`): 500 JSON, an HTML 502 page, a reset
 * connection, or a stall until released. It counts requests per path so
 * tests can assert caching and single-flight.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ScriptedUser {
  readonly userId: string;
  readonly deviceId?: string;
  readonly admin?: boolean;
  readonly guest?: boolean;
}

export interface ScriptedAppService {
  /** The AS's own user (its sender). */
  readonly sender: string;
  /** Users it may masquerade as (start-anchored regexes). */
  readonly userRegexes: readonly string[];
  /** Users it has registered. */
  readonly registered: ReadonlySet<string>;
}

export type FailureMode = "500" | "html502" | "reset" | "stall";

export class ScriptedHomeserver {
  readonly #server: Server;
  readonly #tokens = new Map<string, ScriptedUser>();
  readonly #expired = new Set<string>();
  readonly #appServices = new Map<string, ScriptedAppService>();
  readonly #admins = new Set<string>();
  readonly #counts = new Map<string, number>();
  readonly #stalled: ServerResponse[] = [];
  /** When set, every request fails this way. */
  failWith: FailureMode | undefined;
  /** Every request's headers, newest last (for X-Forwarded-For and token checks). */
  readonly seen: IncomingMessage["headers"][] = [];

  private constructor() {
    this.#server = createServer((request, response) => this.#handle(request, response));
  }

  static async start(): Promise<ScriptedHomeserver> {
    const hs = new ScriptedHomeserver();
    hs.#server.listen(0, "127.0.0.1");
    await once(hs.#server, "listening");
    return hs;
  }

  get baseUrl(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  /** Issues `token` for a user (admins are remembered by user id). */
  addToken(token: string, user: ScriptedUser): void {
    this.#tokens.set(token, user);
    if (user.admin) this.#admins.add(user.userId);
  }

  /** The token stops working: whoami answers 401 with `soft_logout`. */
  expire(token: string): void {
    this.#expired.add(token);
  }

  /** The token is logged out: whoami answers 401 `M_UNKNOWN_TOKEN`. */
  logout(token: string): void {
    this.#tokens.delete(token);
  }

  addAppService(asToken: string, service: ScriptedAppService): void {
    this.#appServices.set(asToken, service);
    this.#tokens.set(asToken, { userId: service.sender });
  }

  /** Requests received on a path (without its query). */
  count(path: string): number {
    return this.#counts.get(path) ?? 0;
  }

  /** Requests received in all. */
  get total(): number {
    let sum = 0;
    for (const n of this.#counts.values()) sum += n;
    return sum;
  }

  /** Answers every stalled request with a 500 and stops stalling. */
  release(): void {
    this.failWith = undefined;
    for (const response of this.#stalled.splice(0)) json(response, 500, { errcode: "M_UNKNOWN" });
  }

  async stop(): Promise<void> {
    this.release();
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, "close");
  }

  #handle(request: IncomingMessage, response: ServerResponse) {
    const url = new URL(request.url ?? "/", "http://hs");
    this.#counts.set(url.pathname, this.count(url.pathname) + 1);
    this.seen.push(request.headers);
    switch (this.failWith) {
      case "500":
        return json(response, 500, { errcode: "M_UNKNOWN", error: "Internal server error" });
      case "html502":
        response.writeHead(502, { "content-type": "text/html" });
        response.end("<html><body><h1>502 Bad Gateway</h1></body></html>");
        return;
      case "reset":
        request.socket.destroy();
        return;
      case "stall":
        this.#stalled.push(response);
        return;
    }
    const token = tokenOf(request, url);
    if (token === undefined) {
      return json(response, 401, { errcode: "M_MISSING_TOKEN", error: "Missing access token" });
    }
    if (this.#expired.has(token)) {
      return json(response, 401, {
        errcode: "M_UNKNOWN_TOKEN",
        error: "Access token has expired",
        soft_logout: true,
      });
    }
    const user = this.#tokens.get(token);
    if (!user) {
      return json(response, 401, {
        errcode: "M_UNKNOWN_TOKEN",
        error: "Unrecognised access token",
        soft_logout: false,
      });
    }
    this.#route(url, token, user, response);
  }

  #route(url: URL, token: string, user: ScriptedUser, response: ServerResponse) {
    const path = url.pathname;
    if (path === "/_matrix/client/v3/account/whoami")
      return this.#whoami(url, token, user, response);
    const adminMatch = /^\/_synapse\/admin\/v1\/users\/([^/]+)\/admin$/.exec(path);
    if (adminMatch) {
      if (!this.#admins.has(user.userId)) return forbidden(response, "You are not a server admin");
      const target = decodeURIComponent(adminMatch[1]!);
      return json(response, 200, { admin: this.#admins.has(target) });
    }
    const whois = /^\/_(?:synapse\/admin\/v1|matrix\/client\/v3\/admin)\/whois\/([^/]+)$/.exec(
      path,
    );
    if (whois) {
      const target = decodeURIComponent(whois[1]!);
      if (!this.#admins.has(user.userId) && target !== user.userId) {
        return forbidden(response, "You are not a server admin");
      }
      return json(response, 200, { user_id: target, devices: {} });
    }
    json(response, 404, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
  }

  #whoami(url: URL, token: string, user: ScriptedUser, response: ServerResponse) {
    const service = this.#appServices.get(token);
    const masquerade = url.searchParams.get("user_id");
    if (service && masquerade !== null && masquerade !== service.sender) {
      const inNamespace = service.userRegexes.some((regex) =>
        new RegExp(`^(?:${regex})`).test(masquerade),
      );
      if (!inNamespace)
        return forbidden(response, "Application service cannot masquerade as this user");
      if (!service.registered.has(masquerade)) {
        return forbidden(response, "Application service has not registered this user");
      }
      return json(response, 200, { user_id: masquerade, is_guest: false });
    }
    json(response, 200, {
      user_id: user.userId,
      ...(user.deviceId !== undefined && { device_id: user.deviceId }),
      is_guest: user.guest === true,
    });
  }
}

function tokenOf(request: IncomingMessage, url: URL): string | undefined {
  const header = request.headers.authorization;
  const match = header === undefined ? null : /^Bearer (\S+)$/.exec(header);
  return match?.[1] ?? url.searchParams.get("access_token") ?? undefined;
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body));
}

function forbidden(response: ServerResponse, error: string): void {
  json(response, 403, { errcode: "M_FORBIDDEN", error });
}
