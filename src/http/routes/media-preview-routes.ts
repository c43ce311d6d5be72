/**
 * `GET /_matrix/client/v1/media/preview_url` and the legacy
 * `/_matrix/media/{v3,r0,v1}/preview_url` (docs/previews.md). Registered
 * always: with `url_preview_enabled: false` they answer 404 M_UNRECOGNIZED,
 * as Synapse does. Authenticated; guests are refused, as for uploads.
 */
import type { FastifyInstance } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import type { UrlPreviewService } from "../../previews/url-preview-service.js";
import type { Auth } from "../auth.js";
import { integerParam, type Query } from "../query-params.js";
import { strictQueryParam } from "../raw-query.js";

export interface MediaPreviewRouteDeps {
  auth: Auth;
  /** Undefined when previews are off. */
  previews: UrlPreviewService | undefined;
}

export const PREVIEW_URL_PATHS = [
  "/_matrix/client/v1/media/preview_url",
  "/_matrix/media/v3/preview_url",
  "/_matrix/media/r0/preview_url",
  "/_matrix/media/v1/preview_url",
] as const;

export function registerMediaPreviewRoutes(
  app: FastifyInstance,
  deps: MediaPreviewRouteDeps,
): void {
  for (const path of PREVIEW_URL_PATHS) {
    app.get(path, async (request) => {
      const previews = deps.previews;
      if (!previews) throw new MatrixError("M_UNRECOGNIZED", "Unrecognized request");
      const requester = await deps.auth.requireNonGuest(request);
      const url = strictQueryParam(request.url, "url");
      if (url === undefined) {
        throw new MatrixError("M_MISSING_PARAM", "Missing string query parameter url");
      }
      // Validated as Synapse does; a past ts may pick an older cached preview.
      const ts = integerParam(request.query as Query, "ts");
      return previews.preview(url, requester.userId, ts);
    });
  }
}
