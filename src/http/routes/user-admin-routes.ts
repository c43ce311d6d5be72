/**
 * The user admin basics admin tools need to find and manage users
 * (Synapse's user admin API): list (`GET /_synapse/admin/v2/users`), query and
 * create-or-modify (`GET`/`PUT /_synapse/admin/v2/users/<user_id>`), and
 * log in as a user (`POST /_synapse/admin/v1/users/<user_id>/login`).
 * `creation_ts` is in seconds, as Synapse reports it and its UIs expect.
 */
import type { FastifyInstance } from "fastify";
import type { AccountService } from "../../accounts/account-service.js";
import { MatrixError } from "../../domain/matrix-error.js";
import { parseUserId } from "../../identifiers/user-id.js";
import type { User, UserOrderBy, UserRepository } from "../../repositories/user-repository.js";
import type { Auth } from "../auth.js";
import { type JsonObject, jsonObject } from "../json-body.js";
import { booleanParam, enumParam, firstParam, integerParam, type Query } from "../query-params.js";

export interface UserAdminRouteDeps {
  serverName: string;
  auth: Auth;
  accounts: AccountService;
  users: UserRepository;
}

const ORDER_BY: readonly UserOrderBy[] = [
  "name",
  "admin",
  "deactivated",
  "user_type",
  "displayname",
  "avatar_url",
  "creation_ts",
];

export function registerUserAdminRoutes(app: FastifyInstance, deps: UserAdminRouteDeps): void {
  const localUser = (raw: string, message: string): string => {
    const { domain } = parseUserId(raw);
    if (domain !== deps.serverName) throw new MatrixError("M_INVALID_PARAM", message);
    return raw;
  };

  app.get("/_synapse/admin/v2/users", async (request) => {
    await deps.auth.requireAdmin(request);
    const query = request.query as Query;
    const from = integerParam(query, "from", 0);
    const limit = integerParam(query, "limit", 100);
    const orderBy = enumParam(query, "order_by", ORDER_BY) ?? "name";
    const direction = enumParam(query, "dir", ["f", "b"] as const) ?? "f";
    const { users, total } = await deps.users.list({
      from,
      limit,
      userId: firstParam(query, "user_id"),
      name: firstParam(query, "name"),
      deactivated: booleanParam(query, "deactivated", false),
      admins: booleanParam(query, "admins"),
      orderBy,
      direction,
    });
    return {
      users: users.map(listEntry),
      total,
      ...(from + users.length < total && { next_token: String(from + users.length) }),
    };
  });

  app.get<{ Params: { userId: string } }>("/_synapse/admin/v2/users/:userId", async (request) => {
    await deps.auth.requireAdmin(request);
    const userId = localUser(request.params.userId, "Can only look up local users");
    const user = await deps.accounts.getUser(userId);
    if (!user) throw new MatrixError("M_NOT_FOUND", "User not found");
    return details(user);
  });

  app.put<{ Params: { userId: string } }>(
    "/_synapse/admin/v2/users/:userId",
    async (request, reply) => {
      const requester = await deps.auth.requireAdmin(request);
      const userId = localUser(
        request.params.userId,
        "This endpoint can only be used with local users",
      );
      const body = jsonObject(request.body);
      const changes = readChanges(body);
      const existing = await deps.accounts.getUser(userId);
      if (existing) {
        if (userId === requester.userId && changes.admin === false) {
          throw new MatrixError("M_UNKNOWN", "You may not demote yourself.");
        }
        if (existing.deactivated && changes.deactivated === false && !changes.password) {
          throw new MatrixError("M_UNKNOWN", "Must provide a password to re-activate an account.");
        }
        await deps.accounts.updateUser(userId, changes, body.logout_devices === false);
      } else {
        await deps.accounts.register({
          localpart: parseUserId(userId).localpart,
          password: changes.password ?? null,
          admin: changes.admin ?? false,
          userType: changes.userType ?? null,
        });
        if (changes.deactivated) await deps.accounts.updateUser(userId, { deactivated: true });
      }
      if (changes.displayname !== undefined) {
        await deps.accounts.setDisplayname(userId, changes.displayname);
      }
      if (changes.avatarUrl !== undefined) {
        await deps.accounts.setAvatarUrl(userId, changes.avatarUrl);
      }
      const user = await deps.accounts.getUser(userId);
      return reply.code(existing ? 200 : 201).send(details(user!));
    },
  );

  app.post<{ Params: { userId: string } }>(
    "/_synapse/admin/v1/users/:userId/login",
    async (request) => {
      const requester = await deps.auth.requireAdmin(request);
      const userId = localUser(request.params.userId, "Only local users can be logged in as");
      if (userId === requester.userId) {
        throw new MatrixError("M_UNKNOWN", "Cannot use admin API to login as self");
      }
      const body = jsonObject(request.body);
      const validUntil = body.valid_until_ms;
      if (validUntil !== undefined && validUntil !== null && !Number.isSafeInteger(validUntil)) {
        throw new MatrixError("M_INVALID_PARAM", "'valid_until_ms' parameter must be an int");
      }
      const user = await deps.accounts.getUser(userId);
      if (!user) throw new MatrixError("M_NOT_FOUND", "User not found");
      const session = await deps.accounts.issueToken(
        userId,
        null,
        (validUntil as number | undefined | null) ?? null,
      );
      return { access_token: session.accessToken };
    },
  );
}

interface Changes {
  password?: string;
  admin?: boolean;
  deactivated?: boolean;
  userType?: string | null;
  displayname?: string | null;
  avatarUrl?: string | null;
}

/** Validates the PUT body with Synapse's messages. */
function readChanges(body: JsonObject): Changes {
  const changes: Changes = {};
  if (body.password !== undefined && body.password !== null) {
    if (typeof body.password !== "string" || body.password.length > 512) {
      throw new MatrixError("M_INVALID_PARAM", "Invalid password");
    }
    changes.password = body.password;
  }
  for (const flag of ["admin", "deactivated"] as const) {
    if (body[flag] === undefined) continue;
    if (typeof body[flag] !== "boolean") {
      throw new MatrixError("M_INVALID_PARAM", `'${flag}' parameter is not of type boolean`);
    }
    changes[flag] = body[flag];
  }
  for (const [field, key] of [
    ["displayname", "displayname"],
    ["avatar_url", "avatarUrl"],
    ["user_type", "userType"],
  ] as const) {
    const value = body[field];
    if (value === undefined) continue;
    if (value !== null && typeof value !== "string") {
      throw new MatrixError("M_INVALID_PARAM", `'${field}' must be a string or null`);
    }
    changes[key] = value;
  }
  return changes;
}

function listEntry(user: User) {
  return {
    name: user.userId,
    user_type: user.userType,
    is_guest: false,
    admin: user.admin,
    deactivated: user.deactivated,
    shadow_banned: false,
    locked: false,
    erased: false,
    displayname: user.displayname,
    avatar_url: user.avatarUrl,
    creation_ts: Math.floor(user.creationTs / 1000),
    last_seen_ts: null,
  };
}

function details(user: User) {
  return {
    ...listEntry(user),
    threepids: [],
    external_ids: [],
    appservice_id: null,
    consent_server_notice_sent: null,
    consent_version: null,
    consent_ts: null,
  };
}
