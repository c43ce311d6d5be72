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

/** Path patterns (§6) of the routes served in attached mode, with why. */
export const ATTACHED_ROUTE_TABLE: readonly { readonly pattern: RegExp; readonly what: string }[] =
  [
    { pattern: /^\/_matrix\/media\//, what: "legacy client media (r0, v1, v3)" },
    { pattern: /^\/_matrix\/client\/v1\/media\//, what: "authenticated client media" },
    { pattern: /^\/_matrix\/federation\/v1\/media\//, what: "federation media" },
    { pattern: /^\/_synapse\/admin\/v1\/purge_media_cache$/, what: "media admin" },
    { pattern: /^\/_synapse\/admin\/v1\/room\/.*\/media.*$/, what: "room media admin" },
    { pattern: /^\/_synapse\/admin\/v1\/user\/.*\/media.*$/, what: "user media admin" },
    { pattern: /^\/_synapse\/admin\/v1\/media\/.*$/, what: "media admin, quarantine_changes" },
    { pattern: /^\/_synapse\/admin\/v1\/quarantine_media\/.*$/, what: "legacy room quarantine" },
    { pattern: /^\/_synapse\/admin\/v1\/users\/.*\/media$/, what: "user media admin" },
    { pattern: /^\/_synapse\/admin\/v1\/statistics\/users\/media$/, what: "media statistics" },
    { pattern: /^\/_matrix\/app\//, what: "application-service API (the homeserver's pushes)" },
    { pattern: /^\/health$/, what: "mxcd's health check (not proxied)" },
    { pattern: /^\/metrics$/, what: "mxcd's metrics (not proxied)" },
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
