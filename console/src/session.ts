/**
 * The admin's session: the access token lives in sessionStorage (this tab
 * only, gone when it closes), never in a URL or a cookie. A token is
 * accepted only when it belongs to a server admin: the check is a call to
 * an admin-only endpoint, answered 403 `M_FORBIDDEN` for anyone else.
 */
import { Api, ApiError } from "./api";

const TOKEN_KEY = "mxcd-console-token";
const OWNED_KEY = "mxcd-console-owned";

export interface Session {
  readonly api: Api;
  readonly userId: string;
  /** Made by the console's login form (so logout ends it), not pasted. */
  readonly owned: boolean;
}

/** What config.json says. */
export interface ConsoleSettings {
  mode: "standalone" | "attached";
  server_name: string;
}

/** A refusal with a message for the login screen. */
export class LoginRefused extends Error {}

const NO_HASH = "0".repeat(64);

/**
 * Checks `token`: whose it is, and that they are a server admin. Both
 * questions are asked at once (one round trip before the grid, not two).
 */
export async function openSession(token: string, owned: boolean): Promise<Session> {
  const api = new Api(token);
  const [who, admin] = await Promise.allSettled([
    api.get<{ user_id: string }>("/_matrix/client/v3/account/whoami"),
    api.get(`/_mxcd/admin/v1/media/lookup?sha256=${NO_HASH}&limit=1`),
  ]);
  if (who.status === "rejected") {
    const error = who.reason;
    if (error instanceof ApiError && error.status === 401) {
      throw new LoginRefused("This access token is not valid (unknown, expired or logged out).");
    }
    throw error;
  }
  const userId = who.value.user_id;
  if (admin.status === "rejected") {
    const error = admin.reason;
    if (error instanceof ApiError && error.status === 403) {
      throw new LoginRefused(
        `${userId} is not a server admin. The moderation console needs the access token of a server admin.`,
      );
    }
    throw error;
  }
  return { api, userId, owned };
}

/** Password login (standalone shape); the token is refused unless its user is an admin. */
export async function passwordLogin(user: string, password: string): Promise<Session> {
  let token: string;
  try {
    const reply = await new Api(undefined).post<{ access_token: string }>(
      "/_matrix/client/v3/login",
      {
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password,
        initial_device_display_name: "mxcd moderation console",
      },
    );
    token = reply.access_token;
  } catch (error) {
    if (error instanceof ApiError && error.errcode === "M_FORBIDDEN") {
      throw new LoginRefused("Wrong user name or password.");
    }
    throw error;
  }
  try {
    return await openSession(token, true);
  } catch (error) {
    // Not an admin: end the session just made rather than leave it behind.
    await new Api(token).post("/_matrix/client/v3/logout").catch(() => {});
    throw error;
  }
}

export function saveSession(token: string, owned: boolean): void {
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(OWNED_KEY, owned ? "1" : "0");
}

export function storedToken(): { token: string; owned: boolean } | undefined {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { token, owned: sessionStorage.getItem(OWNED_KEY) === "1" } : undefined;
}

/** Forgets the token; a token the login form made is also logged out on the server. */
export async function endSession(session: Session): Promise<void> {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(OWNED_KEY);
  if (session.owned) await session.api.post("/_matrix/client/v3/logout").catch(() => {});
}
