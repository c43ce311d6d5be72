/**
 * The user admin basics admin tools need to find and manage users
 * (Synapse's user admin API): list (`GET /_synapse/admin/v2/users` and
 * `/v3/users`), query and create-or-modify (`GET`/`PUT
 * /_synapse/admin/v2/users/<user_id>`), and log in as a user
 * (`POST /_synapse/admin/v1/users/<user_id>/login`).
 *
 * As in Synapse, the list reports `creation_ts` in milliseconds and the
 * single-user query in seconds; v2 and v3 differ only in `deactivated`
 * (v2: `true` includes deactivated users; v3: `true` only them, `false`
 * none, absent all).
 */
import type { FastifyInstance } from "fastify";
import type {
  DeactivatedFilter,
  User,
  UserAdminChanges,
  UserAdminService,
  UserListQuery,
  UserOrderBy,
} from "../../accounts/user-admin-service.js";
import { MatrixError } from "../../domain/matrix-error.js";
import { parseUserId } from "../../identifiers/user-id.js";
import type { Auth } from "../auth.js";
import { type JsonObject, jsonObject } from "../json-body.js";
import { booleanParam, enumParam, firstParam, integerParam, type Query } from "../query-params.js";

export interface UserAdminRouteDeps {
  serverName: string;
  auth: Auth;
  userAdmin: UserAdminService;
}

const ORDER_BY: readonly UserOrderBy[] = [
  "name",
  "is_guest",
  "admin",
  "user_type",
  "deactivated",
  "shadow_banned",
  "displayname",
  "avatar_url",
  "creation_ts",
  "last_seen_ts",
];

export function registerUserAdminRoutes(app: FastifyInstance, deps: UserAdminRouteDeps): void {
  const localUser = (raw: string, message: string): string => {
    const { domain } = parseUserId(raw);
    if (domain !== deps.serverName) throw new MatrixError("M_INVALID_PARAM", message);
    return raw;
  };

  for (const version of ["v2", "v3"] as const) {
    app.get(`/_synapse/admin/${version}/users`, async (request) => {
      await deps.auth.requireAdmin(request);
      const query = readListQuery(request.query as Query, version);
      const { users, total } = await deps.userAdmin.list(query);
      const next = query.from + users.length;
      return {
        users: users.map(listEntry),
        total,
        ...(next < total && { next_token: String(next) }),
      };
    });
  }

  app.get<{ Params: { userId: string } }>("/_synapse/admin/v2/users/:userId", async (request) => {
    await deps.auth.requireAdmin(request);
    const userId = localUser(request.params.userId, "Can only look up local users");
    return details(await deps.userAdmin.get(userId));
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
      const { user, created } = await deps.userAdmin.createOrModify(
        requester,
        userId,
        readChanges(body),
        body.logout_devices !== false,
      );
      return reply.code(created ? 201 : 200).send(details(user));
    },
  );

  app.post<{ Params: { userId: string } }>(
    "/_synapse/admin/v1/users/:userId/login",
    async (request) => {
      const requester = await deps.auth.requireAdmin(request);
      const userId = localUser(request.params.userId, "Only local users can be logged in as");
      const validUntil = jsonObject(request.body).valid_until_ms;
      if (validUntil !== undefined && validUntil !== null && !Number.isSafeInteger(validUntil)) {
        throw new MatrixError("M_INVALID_PARAM", "'valid_until_ms' parameter must be an int");
      }
      const accessToken = await deps.userAdmin.loginAs(
        requester,
        userId,
        (validUntil as number | undefined | null) ?? null,
      );
      return { access_token: accessToken };
    },
  );
}

/** The list filters of v2 or v3, with Synapse's parameter errors. */
function readListQuery(query: Query, version: "v2" | "v3"): UserListQuery {
  // Accepted for Synapse's clients; mxcd has neither guests nor locked users.
  booleanParam(query, "guests");
  booleanParam(query, "locked");
  const deactivated = booleanParam(query, "deactivated");
  let filter: DeactivatedFilter;
  if (version === "v2") filter = deactivated ? "include" : "exclude";
  else filter = deactivated === undefined ? "include" : deactivated ? "only" : "exclude";
  const notUserTypes = query.not_user_type;
  return {
    from: integerParam(query, "from", 0),
    limit: integerParam(query, "limit", 100),
    userId: firstParam(query, "user_id"),
    name: firstParam(query, "name"),
    deactivated: filter,
    notUserTypes: notUserTypes === undefined ? [] : [notUserTypes].flat(),
    admins: booleanParam(query, "admins"),
    orderBy: enumParam(query, "order_by", ORDER_BY) ?? "name",
    direction: enumParam(query, "dir", ["f", "b"] as const) ?? "f",
  };
}

/** Validates the PUT body with Synapse's messages. */
function readChanges(body: JsonObject): UserAdminChanges {
  const changes: UserAdminChanges = {};
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

/** A list entry; `creation_ts` in milliseconds, as Synapse's list reports it. */
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
    creation_ts: user.creationTs,
    last_seen_ts: null,
  };
}

/** The single-user query; `creation_ts` in seconds, as Synapse's query reports it. */
function details(user: User) {
  return {
    ...listEntry(user),
    creation_ts: Math.floor(user.creationTs / 1000),
    threepids: [],
    external_ids: [],
    appservice_id: null,
    consent_server_notice_sent: null,
    consent_version: null,
    consent_ts: null,
  };
}
