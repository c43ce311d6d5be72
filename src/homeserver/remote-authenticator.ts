/**
 * Identity from the homeserver, for the attached shape (attached-mode.md §1,
 * §8.3 items 2–3): an access token is whoever the homeserver's
 * `GET /_matrix/client/v3/account/whoami` says it is, and an admin is whoever
 * its admin API (or the `admins` list) says is one.
 *
 * Better than MMR on every point the reference lists:
 * - Cached by a SHA-256 of the token (plus the masqueraded `user_id`), never
 *   the raw token; bounded (`max_entries`, least recently used first) and
 *   expiring (`ttl`).
 * - Concurrent checks of one token share one homeserver request.
 * - Only "this token is unknown" (401 `M_UNKNOWN_TOKEN`/`M_MISSING_TOKEN`) is
 *   cached as a refusal, for `negative_ttl`; transport errors, time-outs, 5xx
 *   and garbage are never cached.
 * - A 401 reaches the client with the homeserver's errcode, error and
 *   `soft_logout` (MMR drops `soft_logout`). An unreachable or broken
 *   homeserver is 502/504 `M_UNKNOWN`, never `M_UNKNOWN_TOKEN`, which would
 *   log users out (MMR #86).
 */
import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { type Errcode, MatrixError } from "../domain/matrix-error.js";
import { MAX_USER_ID_LENGTH, parseUserId } from "../identifiers/user-id.js";
import { SingleFlight } from "../util/single-flight.js";
import { type HomeserverClient, HomeserverUnavailableError } from "./homeserver-client.js";

/** How admins are recognised (`homeserver.admin_api`). */
export type AdminApi = "synapse" | "matrix" | "none";

export interface RemoteAuthenticatorOptions {
  readonly serverName: string;
  readonly homeserver: Pick<HomeserverClient, "get">;
  readonly adminApi: AdminApi;
  /** `admins`: always admins, whatever the homeserver says. */
  readonly admins: readonly string[];
  readonly ttlMs: number;
  readonly negativeTtlMs: number;
  readonly adminTtlMs: number;
  readonly maxEntries: number;
  /** Clock of the cache's expiry, in milliseconds (a test seam); default performance.now. */
  readonly now?: () => number;
}

/** Who made a request, as the homeserver vouches. */
export interface RemoteRequester {
  readonly userId: string;
  readonly deviceId: string | null;
  readonly isGuest: boolean;
  /** Hash of the token (and masqueraded user): the cache key, safe to log. */
  readonly tokenHash: string;
}

/** Per-request facts an authenticator may use (the Auth seam, src/http/auth.ts, passes them). */
export interface AuthContext {
  /** An application service's `user_id` query parameter (masquerading). */
  readonly masqueradeAs?: string;
  /** The client's address, sent as X-Forwarded-For. */
  readonly clientAddress?: string;
}

type Verdict =
  | { readonly ok: true; readonly requester: RemoteRequester }
  | { readonly ok: false; readonly error: MatrixError };

/** Longest access token sent to the homeserver (Synapse's are under 100 characters). */
const MAX_TOKEN_LENGTH = 4096;
/**
 * Visible ASCII only (tokens, and `user_id` below): what every homeserver issues (Synapse `syt_…`, MAS
 * `mat_…`, Conduit's random letters) and what a `Bearer` header can carry
 * unchanged; no spaces, control characters or non-ASCII.
 */
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;
/** The made-up user the `matrix` whois probe asks about (only admins may whois others). */
const WHOIS_PROBE_LOCALPART = "mxcd.admin.check";
/** 401 errcodes passed through as they are; any other 401 reads as an unknown token. */
const PASSED_401: ReadonlySet<string> = new Set([
  "M_UNKNOWN_TOKEN",
  "M_MISSING_TOKEN",
  "M_USER_LOCKED",
]);
/** 403 errcodes of a refused masquerade or a suspended/deactivated account. */
const PASSED_403: ReadonlySet<string> = new Set([
  "M_FORBIDDEN",
  "M_EXCLUSIVE",
  "M_USER_DEACTIVATED",
]);

export class RemoteAuthenticator {
  readonly #options: RemoteAuthenticatorOptions;
  readonly #tokens: LRUCache<string, Verdict>;
  readonly #adminFlags: LRUCache<string, boolean>;
  readonly #whoami = new SingleFlight<string, Verdict>();
  readonly #adminProbe = new SingleFlight<string, boolean>();
  readonly #admins: ReadonlySet<string>;

  constructor(options: RemoteAuthenticatorOptions) {
    this.#options = options;
    // ttlResolution 0: read the clock on every look-up (no cached "now").
    const clock = { ttlResolution: 0, ...(options.now && { perf: { now: options.now } }) };
    this.#tokens = new LRUCache({ max: options.maxEntries, ttl: options.ttlMs, ...clock });
    this.#adminFlags = new LRUCache({ max: options.maxEntries, ttl: options.adminTtlMs, ...clock });
    this.#admins = new Set(options.admins);
  }

  /** How many verdicts are cached (for tests and metrics). */
  get cachedTokens(): number {
    return this.#tokens.size;
  }

  /**
   * The requester behind `accessToken`. Rejects with the homeserver's 401/403
   * (as a MatrixError), or 502/504 `M_UNKNOWN` when it cannot be asked.
   */
  async authenticate(accessToken: string, context: AuthContext = {}): Promise<RemoteRequester> {
    if (accessToken.length > MAX_TOKEN_LENGTH || !VISIBLE_ASCII.test(accessToken)) {
      // No homeserver issues such tokens; asking would only spend its time. A
      // character a request header cannot carry (from `?access_token=%E2%82%AC`)
      // would also fail the request before it is sent, and count as a
      // homeserver failure towards `failure_threshold` (docs/attached.md, "Hardening").
      throw new MatrixError("M_UNKNOWN_TOKEN", "Unrecognised access token", 401, {
        soft_logout: false,
      });
    }
    if (context.masqueradeAs !== undefined && !isUserId(context.masqueradeAs)) {
      throw new MatrixError("M_INVALID_PARAM", "Invalid user_id");
    }
    const key = cacheKey(accessToken, context.masqueradeAs);
    const verdict =
      this.#tokens.get(key) ??
      (await this.#whoami.run(key, () => this.#askWhoami(key, accessToken, context)));
    if (!verdict.ok) throw verdict.error;
    return verdict.requester;
  }

  /** Whether the requester is a server admin (cached per token for `admin_ttl`). */
  async isAdmin(requester: RemoteRequester, accessToken: string): Promise<boolean> {
    if (this.#admins.has(requester.userId)) return true;
    if (this.#options.adminApi === "none" || requester.isGuest) return false;
    const cached = this.#adminFlags.get(requester.tokenHash);
    if (cached !== undefined) return cached;
    return this.#adminProbe.run(requester.tokenHash, async () => {
      const admin = await this.#probeAdmin(requester.userId, accessToken);
      this.#adminFlags.set(requester.tokenHash, admin);
      return admin;
    });
  }

  async #askWhoami(key: string, accessToken: string, context: AuthContext): Promise<Verdict> {
    const query =
      context.masqueradeAs === undefined
        ? ""
        : `?user_id=${encodeURIComponent(context.masqueradeAs)}`;
    const answer = await this.#ask(
      `/_matrix/client/v3/account/whoami${query}`,
      accessToken,
      context,
    );
    const verdict = this.#verdictOf(answer.status, answer.json, key);
    if (verdict.ok) {
      this.#tokens.set(key, verdict);
    } else if (
      verdict.error.errcode === "M_UNKNOWN_TOKEN" ||
      verdict.error.errcode === "M_MISSING_TOKEN"
    ) {
      this.#tokens.set(key, verdict, { ttl: this.#options.negativeTtlMs });
    }
    return verdict;
  }

  #verdictOf(status: number, json: unknown, key: string): Verdict {
    const body = objectOf(json);
    if (status === 200) {
      const userId = body.user_id;
      if (typeof userId !== "string" || !this.#isLocalUser(userId)) {
        throw badAnswer(`whoami named no local user (${String(userId).slice(0, 100)})`);
      }
      const deviceId = typeof body.device_id === "string" ? body.device_id : null;
      const isGuest = body.is_guest === true || body["org.matrix.msc3069.is_guest"] === true;
      return { ok: true, requester: { userId, deviceId, isGuest, tokenHash: key } };
    }
    const errcode = typeof body.errcode === "string" ? body.errcode : "";
    const message =
      typeof body.error === "string" ? body.error.slice(0, 500) : "Access token refused";
    if (status === 401) {
      const code = (PASSED_401.has(errcode) ? errcode : "M_UNKNOWN_TOKEN") as Errcode;
      const extra = { soft_logout: body.soft_logout === true };
      return { ok: false, error: new MatrixError(code, message, 401, extra) };
    }
    if (status === 403 && PASSED_403.has(errcode)) {
      return { ok: false, error: new MatrixError(errcode as Errcode, message, 403) };
    }
    if (status === 429) {
      const retry =
        typeof body.retry_after_ms === "number" ? { retry_after_ms: body.retry_after_ms } : {};
      return { ok: false, error: new MatrixError("M_LIMIT_EXCEEDED", message, 429, retry) };
    }
    throw badAnswer(`whoami answered ${status} ${errcode}`.trim());
  }

  async #probeAdmin(userId: string, accessToken: string): Promise<boolean> {
    if (this.#options.adminApi === "synapse") {
      const path = `/_synapse/admin/v1/users/${encodeURIComponent(userId)}/admin`;
      const answer = await this.#ask(path, accessToken, {});
      return answer.status === 200 && objectOf(answer.json).admin === true;
    }
    // `matrix`: only an admin may whois a user other than themselves (MMR's probe).
    const probe = `@${WHOIS_PROBE_LOCALPART}:${this.#options.serverName}`;
    const answer = await this.#ask(
      `/_matrix/client/v3/admin/whois/${encodeURIComponent(probe)}`,
      accessToken,
      {},
    );
    return answer.status === 200;
  }

  async #ask(path: string, accessToken: string, context: AuthContext) {
    try {
      return await this.#options.homeserver.get(path, {
        accessToken,
        ...(context.clientAddress !== undefined && { forwardedFor: context.clientAddress }),
      });
    } catch (error) {
      if (error instanceof HomeserverUnavailableError) {
        const status = error.timedOut ? 504 : 502;
        throw new MatrixError(
          "M_UNKNOWN",
          "The homeserver could not check the access token",
          status,
        );
      }
      throw error;
    }
  }

  #isLocalUser(userId: string): boolean {
    try {
      return parseUserId(userId).domain === this.#options.serverName;
    } catch {
      return false;
    }
  }
}

/** SHA-256 of the token and masqueraded user: what the cache holds instead of the token. */
function cacheKey(accessToken: string, masqueradeAs: string | undefined): string {
  return createHash("sha256")
    .update(accessToken)
    .update("\0")
    .update(masqueradeAs ?? "")
    .digest("base64url");
}

function isUserId(value: string): boolean {
  // Even historical user ids are visible ASCII (spec appendices, "Historical
  // User IDs"); a control character is no one's id, so nobody is asked.
  if (value.length > MAX_USER_ID_LENGTH || !VISIBLE_ASCII.test(value)) return false;
  try {
    parseUserId(value);
    return true;
  } catch {
    return false;
  }
}

function objectOf(json: unknown): Record<string, unknown> {
  return typeof json === "object" && json !== null && !Array.isArray(json)
    ? (json as Record<string, unknown>)
    : {};
}

function badAnswer(detail: string): MatrixError {
  return new MatrixError("M_UNKNOWN", `Unexpected answer from the homeserver: ${detail}`, 502);
}
