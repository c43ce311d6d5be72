/**
 * Builds the `media-retention` job from the config (docs/media.md
 * "Retention"), for the server (src/app.ts), `mxcd jobs` and `mxcd media
 * retention`, so all three run the same rules.
 */
import type { Config } from "../config/config-schema.js";
import type { Logger } from "../logging/logger.js";
import { MediaRetentionRepository } from "../repositories/media-retention-repository.js";
import {
  MediaRetentionJob,
  type RetentionDeletion,
  type RetentionSettings,
  retentionEnabled,
} from "./media-retention-job.js";

/** `media_retention` as the job reads it. */
export function retentionSettingsOf(config: Pick<Config, "media_retention">): RetentionSettings {
  const { media_retention: r } = config;
  return {
    localMediaLifetime: r.local_media_lifetime,
    remoteMediaLifetime: r.remote_media_lifetime,
    localMediaMaxAge: r.local_media_max_age,
    checkIntervalMs: r.check_interval,
  };
}

/** The job, or undefined when every rule is off (then it is not registered). */
export function createMediaRetention(
  config: Pick<Config, "media_retention" | "server_name">,
  deps: { deletion: RetentionDeletion; logger: Pick<Logger, "info">; now?: () => number },
): MediaRetentionJob | undefined {
  const settings = retentionSettingsOf(config);
  if (!retentionEnabled(settings)) return undefined;
  return new MediaRetentionJob({
    settings,
    repository: new MediaRetentionRepository(config.server_name),
    deletion: deps.deletion,
    logger: deps.logger,
    now: deps.now ?? Date.now,
  });
}
