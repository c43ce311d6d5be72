/**
 * `GET /_matrix/key/v2/server` (also `/server/` and the deprecated
 * `/server/{keyId}`, whose key id is ignored, as in Synapse): this server's
 * signed key document (Matrix spec, server-server API "Publishing Keys";
 * reference §4.4). No authentication: other servers fetch it to verify our
 * X-Matrix requests.
 */
import type { FastifyInstance } from "fastify";
import type { ServerKeys } from "../../federation/server-keys.js";

export function registerKeyServerRoutes(
  app: FastifyInstance,
  deps: { serverKeys: ServerKeys },
): void {
  for (const path of [
    "/_matrix/key/v2/server",
    "/_matrix/key/v2/server/",
    "/_matrix/key/v2/server/:keyId",
  ]) {
    app.get(path, async () => deps.serverKeys.document());
  }
}
