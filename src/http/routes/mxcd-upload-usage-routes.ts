/**
 * Upload limits, mxcd's own routes (docs/media.md "Upload limits"; docs/api.md):
 *
 * - `GET /_mxcd/admin/v1/users/{userId}/media_usage` (admin token): a
 *   user's bytes per `media_upload_limits` window, the limit, what remains,
 *   and the bytes their uploads in flight hold reserved. As Synapse's
 *   per-user media admin API: 400 for a user of another server, 404 for a
 *   local user with no account (attached: every local user exists — the
 *   homeserver owns the accounts, docs/attached.md).
 * - `GET /_mxcd/media_upload_limit`: the page the default `info_uri` of 403
 *   M_USER_LIMIT_EXCEEDED points at (no token: a browser opens it).
 */
import type { FastifyInstance } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import { parseUserId } from "../../identifiers/user-id.js";
import type { MediaAdminService } from "../../media/media-admin-service.js";
import type { UploadQuotaService } from "../../media/upload-quota-service.js";
import type { Auth } from "../auth.js";

export interface UploadUsageRouteDeps {
  auth: Auth;
  serverName: string;
  quota: Pick<UploadQuotaService, "usage">;
  users: Pick<MediaAdminService, "userExists">;
}

/** The path of the default `info_uri` page. */
export const UPLOAD_LIMIT_PAGE = "/_mxcd/media_upload_limit";

const PAGE = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Media upload limit exceeded</title></head>
<body><h1>Media upload limit exceeded</h1>
<p>You have uploaded as much media as this server allows in a period of time.
Wait before uploading more, delete media you no longer need, or ask the server's
administrators for a higher limit.</p></body></html>
`;

export function registerUploadUsageRoutes(app: FastifyInstance, deps: UploadUsageRouteDeps): void {
  app.get<{ Params: { userId: string } }>(
    "/_mxcd/admin/v1/users/:userId/media_usage",
    async (request) => {
      await deps.auth.requireAdmin(request);
      const userId = request.params.userId;
      if (parseUserId(userId).domain !== deps.serverName) {
        throw new MatrixError("M_INVALID_PARAM", "Can only look up local users");
      }
      if (!(await deps.users.userExists(userId)))
        throw new MatrixError("M_NOT_FOUND", "Unknown user");
      const usage = await deps.quota.usage(userId);
      return {
        user_id: userId,
        max_upload_size: usage.limits.maxUploadSize,
        override: usage.limits.override,
        windows: usage.windows.map((w) => ({
          time_period_ms: w.window.periodMs,
          max_size: w.window.maxBytes,
          used: w.used,
          remaining: w.remaining,
        })),
        pending: { uploads: usage.reservations, bytes: usage.reservedBytes },
      };
    },
  );

  app.get(UPLOAD_LIMIT_PAGE, async (_request, reply) =>
    reply
      .type("text/html; charset=utf-8")
      .header("cache-control", "public, max-age=86400")
      .send(PAGE),
  );
}
