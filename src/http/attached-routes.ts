/**
 * The routes mxcd serves in the attached shape: the reference's proxy route
 * table (attached-mode.md §6, from Synapse's workers.md media_repository
 * list), which docs/attached.md shows to admins as it is. Everything else
 * stays on the homeserver, so mxcd answers it 404 `M_UNRECOGNIZED`: a proxy
 * that sends mxcd a login or a room fails loudly instead of reaching mxcd's
 * own (standalone) accounts.
 *
 * The composition root does not register the standalone-only route groups in
 * attached mode; `gateAttachedRoutes` is the net under that for route files
 * that mix both kinds (e.g. room media beside the room list) and for any
 * route added later: a registered route outside the table answers 404 before
 * its body is read or its token checked.
 */
import type { FastifyInstance, onRequestHookHandler } from "fastify";
import { MatrixError } from "../domain/matrix-error.js";

/** One row of the route table. */
export interface AttachedRoute {
  readonly pattern: RegExp;
  readonly what: string;
  /**
   * Who reaches the route: `proxy` routes are the public ones the reverse
   * proxy sends to mxcd (`mxcd proxy-config` writes them; docs/attached.md
   * shows them); `homeserver` routes are called by the homeserver at mxcd's
   * internal address (the registration's `url`), `operator` routes by the
   * operator's own tools. Neither of the last two goes through the proxy.
   */
  readonly via: "proxy" | "homeserver" | "operator";
}

/** Path patterns (§6) of the routes served in attached mode, with why. */
export const ATTACHED_ROUTE_TABLE: readonly AttachedRoute[] = [
  { pattern: /^\/_matrix\/media\//, what: "legacy client media (r0, v1, v3)", via: "proxy" },
  {
    pattern: /^\/_matrix\/client\/v1\/media\//,
    what: "authenticated client media",
    via: "proxy",
  },
  { pattern: /^\/_matrix\/federation\/v1\/media\//, what: "federation media", via: "proxy" },
  { pattern: /^\/_synapse\/admin\/v1\/purge_media_cache$/, what: "media admin", via: "proxy" },
  {
    pattern: /^\/_synapse\/admin\/v1\/room\/.*\/media.*$/,
    what: "room media admin",
    via: "proxy",
  },
  {
    pattern: /^\/_synapse\/admin\/v1\/user\/.*\/media.*$/,
    what: "user media admin",
    via: "proxy",
  },
  {
    pattern: /^\/_synapse\/admin\/v1\/media\/.*$/,
    what: "media admin, quarantine_changes",
    via: "proxy",
  },
  {
    pattern: /^\/_synapse\/admin\/v1\/quarantine_media\/.*$/,
    what: "legacy room quarantine",
    via: "proxy",
  },
  {
    pattern: /^\/_synapse\/admin\/v1\/users\/.*\/media$/,
    what: "user media admin",
    via: "proxy",
  },
  {
    pattern: /^\/_synapse\/admin\/v1\/statistics\/users\/media$/,
    what: "media statistics",
    via: "proxy",
  },
  {
    pattern: /^\/_mxcd\//,
    what: "mxcd's own admin API and the moderation console",
    via: "proxy",
  },
  {
    pattern: /^\/_matrix\/app\//,
    what: "application-service API (the homeserver's pushes)",
    via: "homeserver",
  },
  { pattern: /^\/health$/, what: "mxcd's health check (not proxied)", via: "operator" },
  { pattern: /^\/metrics$/, what: "mxcd's metrics (not proxied)", via: "operator" },
];

/** Whether a path (or route pattern such as `/room/:roomId/media`) is served in attached mode. */
export function isAttachedRoute(path: string): boolean {
  return ATTACHED_ROUTE_TABLE.some((route) => route.pattern.test(path));
}

const unrecognized: onRequestHookHandler = async () => {
  throw new MatrixError("M_UNRECOGNIZED", "Unrecognized request");
};

/**
 * Makes every route registered from now on whose path is outside the table
 * answer 404 `M_UNRECOGNIZED`, as an unknown path does. Call before
 * registering routes.
 */
export function gateAttachedRoutes(app: FastifyInstance): void {
  app.addHook("onRoute", (route) => {
    if (isAttachedRoute(route.url)) return;
    const own = route.onRequest;
    route.onRequest = [
      unrecognized,
      ...(own === undefined ? [] : Array.isArray(own) ? own : [own]),
    ];
  });
}
