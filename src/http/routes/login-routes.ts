/**
 * Password login, logout and whoami (client-server API "Login",
 * "Logout", "whoami"), on the v3 and legacy r0 prefixes.
 *
 * Optional login fields sent as JSON `null` count as absent, as Synapse
 * treats them: web clients such as Ketesa send `"device_id": null` from a
 * fresh browser.
 */
import type { FastifyInstance } from "fastify";
import type { AccountService } from "../../accounts/account-service.js";
import { MatrixError } from "../../domain/matrix-error.js";
import { qualifyUserId } from "../../identifiers/user-id.js";
import type { Auth } from "../auth.js";
import { jsonObject, optionalField } from "../json-body.js";

export interface LoginRouteDeps {
  serverName: string;
  accounts: AccountService;
  auth: Auth;
}

const PREFIXES = ["/_matrix/client/v3", "/_matrix/client/r0"] as const;

export function registerLoginRoutes(app: FastifyInstance, deps: LoginRouteDeps): void {
  for (const prefix of PREFIXES) {
    app.get(`${prefix}/login`, async () => ({ flows: [{ type: "m.login.password" }] }));

    app.post(`${prefix}/login`, async (request) => {
      // Synapse counts every request against rc_login.address first.
      deps.accounts.admitLoginFrom(request.ip);
      const body = jsonObject(request.body);
      if (body.type !== "m.login.password") {
        throw new MatrixError("M_UNKNOWN", "Unknown login type");
      }
      const user = loginUser(body);
      const password = optional(body, "password", "string");
      if (password === undefined) throw new MatrixError("M_BAD_JSON", "Missing password");
      const deviceId = optional(body, "device_id", "string") ?? null;
      // Checked for type only: mxcd keeps no device list to name.
      optional(body, "initial_device_display_name", "string");
      optional(body, "refresh_token", "boolean");
      const session = await deps.accounts.loginWithPassword(
        qualifyUserId(user, deps.serverName),
        password,
        deviceId,
      );
      return {
        user_id: session.userId,
        access_token: session.accessToken,
        home_server: deps.serverName,
        device_id: session.deviceId,
      };
    });

    app.post(`${prefix}/logout`, async (request) => {
      const requester = await deps.auth.requireUser(request);
      await deps.accounts.logout(requester);
      return {};
    });

    app.post(`${prefix}/logout/all`, async (request) => {
      const requester = await deps.auth.requireUser(request);
      await deps.accounts.logoutAll(requester.userId);
      return {};
    });

    app.get(`${prefix}/account/whoami`, async (request) => {
      const requester = await deps.auth.requireUser(request);
      return { user_id: requester.userId, device_id: requester.deviceId, is_guest: false };
    });
  }
}

/** The user named by `identifier` (`m.id.user`) or the legacy top-level `user`. */
function loginUser(body: Record<string, unknown>): string {
  const identifier = body.identifier;
  if (identifier !== undefined && identifier !== null) {
    if (typeof identifier !== "object" || identifier === null || Array.isArray(identifier)) {
      throw new MatrixError("M_BAD_JSON", "'identifier' must be an object");
    }
    const { type, user } = identifier as Record<string, unknown>;
    if (type !== "m.id.user") {
      throw new MatrixError("M_UNKNOWN", "Unknown login identifier type");
    }
    if (typeof user !== "string") throw new MatrixError("M_BAD_JSON", "'user' must be a string");
    return user;
  }
  const user = optional(body, "user", "string");
  if (user === undefined) throw new MatrixError("M_BAD_JSON", "Missing identifier");
  return user;
}

/** An optional body field of `type`; absent and `null` are both undefined. */
function optional<T extends "string" | "boolean">(
  body: Record<string, unknown>,
  name: string,
  type: T,
): ReturnType<typeof optionalField<T>> {
  return body[name] === null ? undefined : optionalField(body, name, type);
}
