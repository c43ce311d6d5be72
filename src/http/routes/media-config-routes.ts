/** `GET /_matrix/client/v1/media/config` and the legacy `/_matrix/media/{v3,r0,v1}/config`. */
import type { FastifyInstance } from "fastify";
import type { Auth } from "../auth.js";

export function registerMediaConfigRoutes(
  app: FastifyInstance,
  deps: { auth: Auth; maxUploadSize: number },
): void {
  const paths = ["/_matrix/client/v1/media/config", "/_matrix/media/v3/config"];
  for (const path of [...paths, "/_matrix/media/r0/config", "/_matrix/media/v1/config"]) {
    app.get(path, async (request) => {
      await deps.auth.requireUser(request);
      return { "m.upload.size": deps.maxUploadSize };
    });
  }
}
