/**
 * The seam between room redactions and the media service: what the redaction
 * policy (`media_redaction_policy`, docs/rooms.md) may do to a local media
 * item once a redaction has removed its last reference. The media service
 * implements it; the room services only hold this interface.
 */

export interface LocalMediaModeration {
  /**
   * Quarantines local media `mediaId` with `quarantined_by = by`, recording
   * the transition in the quarantine change feed; a no-op for media that is
   * already quarantined, protected, or unknown.
   */
  quarantineLocalMedia(mediaId: string, by: "system"): Promise<void>;
  /** Deletes local media `mediaId`: bytes, thumbnails and row; a no-op when unknown. */
  deleteLocalMedia(mediaId: string): Promise<void>;
}
