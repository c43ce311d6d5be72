/**
 * Access-token authentication for routes. The token comes from
 * `Authorization: Bearer` or, as a legacy fallback (sytest, old tools), the
 * `access_token` query parameter. Admin endpoints check the token first, then
 * the admin flag (Synapse's order).
 *
 * Who a token belongs to is the `Authenticator`'s business: mxcd's own
 * accounts in standalone mode (AccountService), the homeserver's whoami in
 * attached mode (RemoteAuthenticator, adapted below). Routes see only `Auth`,
 * so they are the same in both modes.
 */
import type { FastifyRequest } from "fastify";
import type { Requester } from "../accounts/account-service.js";
import { MatrixError } from "../domain/matrix-error.js";
import type { AuthContext, RemoteAuthenticator } from "../homeserver/remote-authenticator.js";
import { firstParam, type Query } from "./query-params.js";

/** The seam between routes and the source of identity. */
export interface Authenticator {
  /** The requester behind a token, or a MatrixError (401 / 403 / 502 / 504). */
  authenticate(token: string, context: AuthContext): Promise<Requester>;
  /** Whether the requester (authenticated with `token`) is a server admin. */
  isAdmin(requester: Requester, token: string): Promise<boolean>;
}

/** The access token a request carries, if any. */
export function accessTokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match) return match[1];
  }
  return firstParam(request.query as Query, "access_token") || undefined;
}

export interface AuthOptions {
  /**
   * Pass the `user_id` query parameter on as `masqueradeAs` (attached mode:
   * the homeserver decides whether an application service may act as that
   * user). Standalone mxcd has no application services and ignores it.
   */
  readonly masquerade: boolean;
}

export class Auth {
  /**
   * `authenticatorFor` picks the authenticator of a request's tenant: the one
   * server name (and homeserver) the request is for. One tenant today; a
   * Host-based choice later needs no route to change.
   */
  constructor(
    private readonly authenticatorFor: (request: FastifyRequest) => Authenticator,
    private readonly options: AuthOptions = { masquerade: false },
  ) {}

  /** The requester, or 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN. */
  async requireUser(request: FastifyRequest): Promise<Requester> {
    return (await this.#authenticate(request)).requester;
  }

  /**
   * A requester who is not a guest, or 401 as above, or 403
   * M_GUEST_ACCESS_FORBIDDEN: guests may download and thumbnail but not
   * upload or create (Synapse's upload; MMR; attached-mode.md §1).
   */
  async requireNonGuest(request: FastifyRequest): Promise<Requester> {
    const requester = await this.requireUser(request);
    if (requester.isGuest) {
      throw new MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guest access not allowed");
    }
    return requester;
  }

  /** An admin requester, or 401 as above, or 403 M_FORBIDDEN. */
  async requireAdmin(request: FastifyRequest): Promise<Requester> {
    const { requester, token, authenticator } = await this.#authenticate(request);
    if (!(await authenticator.isAdmin(requester, token))) {
      throw new MatrixError("M_FORBIDDEN", "You are not a server admin");
    }
    return requester;
  }

  /** Whether an already authenticated requester of this request is a server admin. */
  async isAdmin(request: FastifyRequest, requester: Requester): Promise<boolean> {
    const token = accessTokenOf(request);
    if (!token) return false;
    return this.authenticatorFor(request).isAdmin(requester, token);
  }

  async #authenticate(request: FastifyRequest) {
    const token = accessTokenOf(request);
    if (!token) throw new MatrixError("M_MISSING_TOKEN", "Missing access token");
    const authenticator = this.authenticatorFor(request);
    const requester = await authenticator.authenticate(token, this.#contextOf(request));
    return { requester, token, authenticator };
  }

  #contextOf(request: FastifyRequest): AuthContext {
    const masqueradeAs = this.options.masquerade
      ? firstParam(request.query as Query, "user_id")
      : undefined;
    return {
      clientAddress: request.ip,
      ...(masqueradeAs !== undefined && { masqueradeAs }),
    };
  }
}

/**
 * The attached mode's authenticator: the homeserver vouches for tokens and
 * admins. `Requester.admin` is false here; admin checks go through
 * `isAdmin`, which asks the homeserver (cached) only when a route needs it.
 */
export function homeserverAuthenticator(remote: RemoteAuthenticator): Authenticator {
  return {
    async authenticate(token, context) {
      const found = await remote.authenticate(token, context);
      return { ...found, admin: false };
    },
    isAdmin: (requester, token) => remote.isAdmin(requester, token),
  };
}
