/**
 * `GET /_matrix/client/v1/media/config` and the legacy `/_matrix/media/{v3,r0,v1}/config`.
 * `m.upload.size` is the requester's effective limit (docs/media.md "Upload limits").
 */
import type { FastifyInstance } from "fastify";
import type { UploadQuotaService } from "../../media/upload-quota-service.js";
import type { Auth } from "../auth.js";

export function registerMediaConfigRoutes(
  app: FastifyInstance,
  deps: { auth: Auth; limits: Pick<UploadQuotaService, "reportedUploadSize"> },
): void {
  const paths = ["/_matrix/client/v1/media/config", "/_matrix/media/v3/config"];
  for (const path of [...paths, "/_matrix/media/r0/config", "/_matrix/media/v1/config"]) {
    app.get(path, async (request) => {
      const requester = await deps.auth.requireUser(request);
      return { "m.upload.size": deps.limits.reportedUploadSize(requester.userId) };
    });
  }
}
