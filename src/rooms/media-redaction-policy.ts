/**
 * Applies `media_redaction_policy` to local media whose last reference a
 * redaction removed. Runs after the redaction has committed: a failure here
 * is logged and never undoes or fails the redaction.
 *
 * Known race: media that gains a new reference between the redaction's commit
 * and this call is still acted on; and on PostgreSQL two concurrent
 * redactions of the last two references may each see the other's reference
 * and leave the media alone. Both are rare and err on the side of the
 * configured action or of keeping media, respectively.
 */
import type { Config } from "../config/config-schema.js";
import type { Logger } from "../logging/logger.js";
import type { LocalMediaModeration } from "./local-media-moderation.js";

/** `none`, `quarantine` or `delete` (config `media_redaction_policy`). */
export type RedactionPolicySetting = Config["media_redaction_policy"];

/** Acts on orphaned local media as configured; never throws. */
export class MediaRedactionPolicy {
  constructor(
    private readonly setting: RedactionPolicySetting,
    private readonly moderation: LocalMediaModeration | undefined,
    private readonly logger: Logger,
  ) {}

  /** Quarantines or deletes each of `mediaIds` as configured; `none` does nothing. */
  async apply(mediaIds: readonly string[]): Promise<void> {
    if (this.setting === "none" || mediaIds.length === 0) return;
    if (!this.moderation) {
      this.logger.warn(
        { policy: this.setting, media_ids: mediaIds },
        "media_redaction_policy is set but no media service is wired: media left alone",
      );
      return;
    }
    for (const mediaId of mediaIds) {
      try {
        if (this.setting === "quarantine") {
          await this.moderation.quarantineLocalMedia(mediaId, "system");
        } else {
          await this.moderation.deleteLocalMedia(mediaId);
        }
      } catch (error) {
        this.logger.error(
          { err: error, media_id: mediaId, policy: this.setting },
          "media redaction policy failed; the redaction stands",
        );
      }
    }
  }
}
