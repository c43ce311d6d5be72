/** Builds the UploadQuotaService from the config (docs/media.md "Upload limits"). */
import type { Config } from "../config/config-schema.js";
import type { Database } from "../db/database.js";
import type { Logger } from "../logging/logger.js";
import { UploadQuotaRepository } from "../repositories/upload-quota-repository.js";
import { type UploadLimitSettings, UploadQuotaService } from "./upload-quota-service.js";

type LimitConfig = Config["media_upload_limits"][number];

/** The service's settings from the config's upload options. */
export function uploadLimitSettingsOf(config: Config): UploadLimitSettings {
  const windows = (limits: readonly LimitConfig[]) =>
    limits.map((l) => ({ periodMs: l.time_period, maxBytes: l.max_size }));
  return {
    maxUploadSize: config.max_upload_size,
    windows: windows(config.media_upload_limits),
    overrides: config.media_upload_limit_overrides.map((o) => ({
      userGlob: o.user_glob,
      ...(o.media_upload_limits !== undefined && {
        windows: o.media_upload_limits === null ? null : windows(o.media_upload_limits),
      }),
      ...(o.max_upload_size !== undefined && { maxUploadSize: o.max_upload_size }),
    })),
    infoUri:
      config.media_upload_limit_info_uri ??
      `https://${config.server_name}/_mxcd/media_upload_limit`,
  };
}

/** `now`: the clock of the windows and reservation leases (tests move it). */
export function createUploadQuota(
  config: Config,
  database: Database,
  logger: Logger,
  now: () => number = Date.now,
): UploadQuotaService {
  return new UploadQuotaService(
    uploadLimitSettingsOf(config),
    new UploadQuotaRepository(database),
    logger,
    now,
  );
}
