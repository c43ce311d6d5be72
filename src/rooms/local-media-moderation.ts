/**
 * The seam between room redactions and the media service: what the redaction
 * policy (`media_redaction_policy`, docs/rooms.md) needs to know about a
 * local media item and may do to it. The media service implements it; the
 * room services only hold this interface.
 */

export interface LocalMediaModeration {
  /**
   * The local user who uploaded `mediaId`, or undefined when the media is
   * unknown or has no recorded uploader (the policy then leaves it alone).
   */
  uploaderOf(mediaId: string): Promise<string | undefined>;
  /**
   * Quarantines local media `mediaId` with `quarantined_by = by`, recording
   * the transition in the quarantine change feed; a no-op for media that is
   * already quarantined, protected, or unknown.
   */
  quarantineLocalMedia(mediaId: string, by: "system"): Promise<void>;
  /** Deletes local media `mediaId`: bytes, thumbnails and row; a no-op when unknown. */
  deleteLocalMedia(mediaId: string): Promise<void>;
}
