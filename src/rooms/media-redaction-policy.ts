/**
 * `media_redaction_policy`: what a redaction may do to the media the redacted
 * event referenced (docs/rooms.md "Redaction policy"). The rule, for each
 * `mxc://` URI in the redacted event's content:
 *
 * 1. Only local media (origin = our server name). Remote media was uploaded
 *    to another server by someone we cannot identify, so no redaction here
 *    acts on it; an admin quarantines it explicitly through the admin API.
 * 2. Only media that nothing references any more: no live event in any room,
 *    no profile. The caller must already have dropped the redacted event's
 *    own references from the index (the event writer does, in the
 *    redaction's transaction).
 * 3. Only when the redaction is the uploader taking back their own upload:
 *    the redacted event's sender, the redacting sender and the media's
 *    uploader are one user. A room moderator redacting someone else's event
 *    does not qualify (anyone can create a room and moderate it), nor does
 *    anyone redacting an event that merely points at another user's media.
 *    A server admin's redaction qualifies whoever uploaded the media, but
 *    rules 1 and 2 still hold for admins.
 *
 * The inputs are the redacted event as it was before censoring, the
 * redacting sender and whether they are a server admin, so the same service
 * serves the client API and an application-service intake. It runs after
 * the redaction has committed; a failure is logged and never undoes or fails
 * the redaction.
 *
 * Known race: media that gains a new reference between the check of rule 2
 * and the action is still acted on (the window is one indexed read).
 */
import type { Config } from "../config/config-schema.js";
import { extractMediaReferences } from "../domain/media-reference-extractor.js";
import type { StoredEvent } from "../domain/room-event.js";
import type { Logger } from "../logging/logger.js";
import type { LocalMediaModeration } from "./local-media-moderation.js";

/** `none`, `quarantine` or `delete` (config `media_redaction_policy`). */
export type RedactionPolicySetting = Config["media_redaction_policy"];

/** The smallest slice of the media-reference index the policy reads. */
export interface ReferenceCheck {
  isReferenced(origin: string, mediaId: string): Promise<boolean>;
}

/** One redaction, as the policy judges it. */
export interface RedactionFacts {
  /** The redacted event as it was before censoring (its content names the media). */
  readonly redactedEvent: Pick<StoredEvent, "type" | "stateKey" | "sender" | "content">;
  /** Who sent the redaction. */
  readonly redactingSender: string;
  /** Whether the redacting sender is a server admin (not a room moderator). */
  readonly redactingSenderIsAdmin: boolean;
}

/** Why a media item was left alone, or that it was acted on. */
export type PolicyDecision = "acted" | "remote" | "referenced" | "not_uploader" | "unknown";

/** Applies the rule above; never throws. */
export class MediaRedactionPolicy {
  constructor(
    private readonly setting: RedactionPolicySetting,
    private readonly serverName: string,
    private readonly references: ReferenceCheck,
    private readonly moderation: LocalMediaModeration | undefined,
    private readonly logger: Logger,
  ) {}

  /**
   * Judges and, where the rule allows, quarantines or deletes each media
   * item the redacted event referenced. Returns the decision per
   * `origin/mediaId` (empty for `none`), for logs and tests.
   */
  async apply(redaction: RedactionFacts): Promise<Map<string, PolicyDecision>> {
    const decisions = new Map<string, PolicyDecision>();
    if (this.setting === "none") return decisions;
    const { type, stateKey, content } = redaction.redactedEvent;
    const refs = extractMediaReferences(type, stateKey ?? undefined, content);
    for (const { origin, mediaId } of refs) {
      const key = `${origin}/${mediaId}`;
      if (decisions.has(key)) continue;
      try {
        decisions.set(key, await this.judgeAndAct(redaction, origin, mediaId));
      } catch (error) {
        this.logger.error(
          { err: error, media_id: mediaId, policy: this.setting },
          "media redaction policy failed; the redaction stands",
        );
      }
    }
    return decisions;
  }

  private async judgeAndAct(
    redaction: RedactionFacts,
    origin: string,
    mediaId: string,
  ): Promise<PolicyDecision> {
    if (origin !== this.serverName) return "remote";
    if (await this.references.isReferenced(origin, mediaId)) return "referenced";
    if (!this.moderation) {
      this.logger.warn(
        { policy: this.setting, media_id: mediaId },
        "media_redaction_policy is set but no media service is wired: media left alone",
      );
      return "unknown";
    }
    if (!redaction.redactingSenderIsAdmin) {
      const uploader = await this.moderation.uploaderOf(mediaId);
      if (uploader === undefined) return "unknown";
      if (!isSelfRedaction(redaction, uploader)) return "not_uploader";
    }
    if (this.setting === "quarantine") {
      await this.moderation.quarantineLocalMedia(mediaId, "system");
    } else {
      await this.moderation.deleteLocalMedia(mediaId);
    }
    this.logger.info(
      { policy: this.setting, media_id: mediaId, redacted_by: redaction.redactingSender },
      "media_redaction_policy acted on redacted media",
    );
    return "acted";
  }
}

/** The uploader redacted their own event. */
function isSelfRedaction(redaction: RedactionFacts, uploader: string): boolean {
  return redaction.redactedEvent.sender === uploader && redaction.redactingSender === uploader;
}
