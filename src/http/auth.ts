/**
 * Access-token authentication for routes. The token comes from
 * `Authorization: Bearer` or, as a legacy fallback (sytest, old tools), the
 * `access_token` query parameter. Admin endpoints check the token first, then
 * the admin flag (Synapse's order).
 */
import type { FastifyRequest } from "fastify";
import type { AccountService, Requester } from "../accounts/account-service.js";
import { MatrixError } from "../domain/matrix-error.js";
import { firstParam, type Query } from "./query-params.js";

/** The access token a request carries, if any. */
export function accessTokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match) return match[1];
  }
  return firstParam(request.query as Query, "access_token") || undefined;
}

export class Auth {
  constructor(private readonly accounts: AccountService) {}

  /** The requester, or 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN. */
  async requireUser(request: FastifyRequest): Promise<Requester> {
    const token = accessTokenOf(request);
    if (!token) throw new MatrixError("M_MISSING_TOKEN", "Missing access token");
    return this.accounts.authenticate(token);
  }

  /** An admin requester, or 401 as above, or 403 M_FORBIDDEN. */
  async requireAdmin(request: FastifyRequest): Promise<Requester> {
    const requester = await this.requireUser(request);
    if (!requester.admin) throw new MatrixError("M_FORBIDDEN", "You are not a server admin");
    return requester;
  }
}
