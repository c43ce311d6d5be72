/**
 * Kysely table types: one schema for SQLite and PostgreSQL.
 *
 * Flags are `boolean` columns on PostgreSQL and integers on SQLite; writes take
 * booleans (the SQLite dialect turns them into 0/1) and reads may see either,
 * so repositories convert with `Boolean()` at their boundary.
 */
import type { ColumnType, Generated } from "kysely";

/** A boolean column as read (SQLite gives 0/1) and as written. */
export type Flag = ColumnType<boolean | number, boolean | undefined, boolean>;

export interface UsersTable {
  /** Full user id, `@localpart:server_name`. */
  name: string;
  /** scrypt hash (see password-hash.ts), null for accounts without a password. */
  password_hash: string | null;
  admin: Flag;
  deactivated: Flag;
  /** Milliseconds since the epoch. */
  creation_ts: number;
  user_type: string | null;
}

export interface ProfilesTable {
  user_id: string;
  displayname: string | null;
  avatar_url: string | null;
}

export interface AccessTokensTable {
  id: Generated<number>;
  /** SHA-256 (hex) of the token; the token itself is never stored. */
  token_hash: string;
  user_id: string;
  device_id: string | null;
  created_ts: number;
  /** Milliseconds since the epoch after which the token is refused; null = never. */
  valid_until_ts: number | null;
}

export interface RegistrationNoncesTable {
  nonce: string;
  created_ts: number;
}

/** One local upload (or pending `/create`d id, or URL-preview download). Synapse's columns. */
export interface LocalMediaTable {
  media_id: string;
  /** Null while an async upload is pending. */
  media_type: string | null;
  /** Null while an async upload is pending. */
  media_length: number | null;
  created_ts: number;
  upload_name: string | null;
  user_id: string | null;
  /** Null = not quarantined; an admin's user id, or `system`. */
  quarantined_by: string | null;
  url_cache: string | null;
  last_access_ts: number | null;
  safe_from_quarantine: Flag;
  /** Stored while `enable_authenticated_media` was on: hidden from the legacy endpoints. */
  authenticated: Flag;
  /** Lowercase hex SHA-256 of the bytes; null while pending. */
  sha256: string | null;
  /** Lowercase hex MD5 of the bytes; null until computed (migration 0010-media-hashes). */
  md5: string | null;
  /** PDQ hash, 64 lowercase hex; null unless `pdq_status` is `hashed`. */
  pdq: string | null;
  /** PDQ quality (0-100); null when not computed or not decodable. */
  pdq_quality: number | null;
  /** Null = not computed yet; `hashed` or `none` (see `pdq_reason`). */
  pdq_status: string | null;
  /** Why there is no PDQ hash (`pdq_status` = `none`). */
  pdq_reason: string | null;
  /**
   * A tiny blurred WebP as a data: URL; null until made (migration
   * 0018-media-blur-previews); `none` when none can be made (domain/blur-preview-value.ts).
   */
  blur_preview: string | null;
}

/** One cached remote media item, keyed by its origin and remote media id. */
export interface RemoteMediaTable {
  media_origin: string;
  media_id: string;
  media_type: string | null;
  media_length: number | null;
  created_ts: number;
  upload_name: string | null;
  filesystem_id: string;
  last_access_ts: number;
  quarantined_by: string | null;
  authenticated: Flag;
  sha256: string | null;
  /** Lowercase hex MD5 of the bytes; null until computed (migration 0010-media-hashes). */
  md5: string | null;
  /** PDQ hash, 64 lowercase hex; null unless `pdq_status` is `hashed`. */
  pdq: string | null;
  /** PDQ quality (0-100); null when not computed or not decodable. */
  pdq_quality: number | null;
  /** Null = not computed yet; `hashed` or `none` (see `pdq_reason`). */
  pdq_status: string | null;
  /** Why there is no PDQ hash (`pdq_status` = `none`). */
  pdq_reason: string | null;
}

export interface LocalThumbnailsTable {
  media_id: string;
  thumbnail_width: number;
  thumbnail_height: number;
  thumbnail_type: string;
  thumbnail_method: string;
  thumbnail_length: number;
}

export interface RemoteThumbnailsTable {
  media_origin: string;
  media_id: string;
  thumbnail_width: number;
  thumbnail_height: number;
  thumbnail_method: string;
  thumbnail_type: string;
  thumbnail_length: number;
  filesystem_id: string;
}

/** One room: fixed facts plus the statistics the admin room list reads (kept current per event). */
export interface RoomsTable {
  room_id: string;
  room_version: string;
  creator: string;
  /** Published in the room directory (`visibility: public` at creation). */
  is_public: Flag;
  created_ts: number;
  name: string | null;
  topic: string | null;
  /** The `url` of the current `m.room.avatar`. */
  avatar: string | null;
  canonical_alias: string | null;
  /** The `algorithm` of the current `m.room.encryption`; null = unencrypted. */
  encryption: string | null;
  join_rules: string | null;
  guest_access: string | null;
  history_visibility: string | null;
  federatable: Flag;
  room_type: string | null;
  joined_members: number;
  joined_local_members: number;
  state_events: number;
}

/** One stored event; `content` is JSON text, censored in place when redacted. */
export interface EventsTable {
  /** Monotonic position in the server's event stream (keyset pagination key). */
  stream_ordering: Generated<number>;
  event_id: string;
  room_id: string;
  type: string;
  /** Null for message events. */
  state_key: string | null;
  sender: string;
  content: string;
  origin_server_ts: number;
  /** The target of an `m.room.redaction`. */
  redacts: string | null;
  redacted: Flag;
  /** The redaction that censored this event. */
  redacted_by: string | null;
}

/** The current state of each room: (room, type, state key) → event. */
export interface CurrentStateTable {
  room_id: string;
  type: string;
  state_key: string;
  event_id: string;
  /** `content.membership` for `m.room.member`, else null. */
  membership: string | null;
}

/** Send/redact transaction ids, for idempotent retries (per access token). */
export interface EventTransactionsTable {
  token_hash: string;
  /** The endpoint and its path parameters the txn id belongs to. */
  scope: string;
  txn_id: string;
  event_id: string;
  created_ts: number;
}

/** One `mxc://` reference by an event or a profile (see src/rooms/media-reference-extractor.ts). */
export interface MediaReferencesTable {
  id: Generated<number>;
  /** `url`, `thumbnail`, `room_avatar`, `member_avatar` or `profile_avatar`. */
  kind: string;
  media_origin: string;
  media_id: string;
  /** Null for profile avatars. */
  room_id: string | null;
  event_id: string | null;
  stream_ordering: number | null;
  /** The profile owner, for profile avatars only. */
  user_id: string | null;
}

/** One quarantine transition of one media item: the change feed (docs/quarantine-feed.md). */
export interface QuarantinedMediaChangesTable {
  stream_id: number;
  /** Null for local media (Synapse's convention); the API substitutes our server name. */
  origin: string | null;
  media_id: string;
  quarantined: Flag;
  sha256: string | null;
  /** Who quarantined it (admin user id or `system`); null on unquarantine records. */
  quarantined_by: string | null;
  ts: number;
}

/** The feed's single position row (id 1): the highest allocated stream id. */
export interface QuarantineStreamTable {
  id: number;
  position: number;
}

/** Quarantine of remote media that is not cached yet. */
export interface QuarantineBlocksTable {
  media_origin: string;
  media_id: string;
  quarantined_by: string;
  created_ts: number;
}

/** A near-duplicate quarantine's provenance (migration 0012); origin `''` = local. */
export interface QuarantinePropagationsTable {
  target_origin: string;
  target_media_id: string;
  source_origin: string;
  source_media_id: string;
  created_ts: number;
}

/** One background job's persisted state (src/jobs/job-runner.ts, docs/jobs.md). */
export interface BackgroundJobsTable {
  name: string;
  /** `pending` (no batch yet), `running` (started, not finished) or `done`. */
  status: string;
  /** The job's own progress, as JSON text. */
  progress: string;
  /** Items processed so far, summed over every committed batch. */
  processed: Generated<number>;
  /** Estimated number of items, when the job can tell; null until estimated. */
  total: number | null;
  /** Time spent inside committed batches (not pauses), summed. */
  duration_ms: Generated<number>;
  started_ts: number | null;
  updated_ts: number;
  completed_ts: number | null;
  /** The most recent batch failure, kept for diagnosis. */
  last_error: string | null;
}

/** Transaction ids the homeserver pushed to the application service (replays are no-ops). */
export interface AppServiceTransactionsTable {
  /** The registration's `id`. */
  as_id: string;
  txn_id: string;
  received_ts: number;
}

/** A pushed event that referenced media (migration 0006-app-service.ts). */
export interface AppServiceEventsTable {
  /** Local stream position in arrival order; `media_references.stream_ordering`. */
  position: Generated<number>;
  event_id: string;
  room_id: string;
  sender: string;
  type: string;
  state_key: string | null;
  /** JSON: only the content fields that carry `mxc://` URIs. */
  media_content: string;
  redacted: Flag;
}

/** How far the room-history backfill got in one room (migration 0007-room-history-backfill.ts). */
export interface RoomHistoryBackfillTable {
  room_id: string;
  /** `pending`, `complete` or `failed`. */
  status: string;
  /** The `end` token of the last page recorded: where the next page starts (null: the start). */
  token: string | null;
  pages: Generated<number>;
  /** Events read from the homeserver (valid ones). */
  events: Generated<number>;
  /** Events skipped as malformed. */
  skipped: Generated<number>;
  last_error: string | null;
  updated_ts: number;
  completed_ts: number | null;
}

/** One cached URL preview, or a cached failure (migration 0008). */
export interface UrlPreviewCacheTable {
  /** SHA-256 (hex) of `url`: the key (URLs may exceed index entry limits). */
  url_hash: string;
  url: string;
  /** The Accept-Language the page was fetched with. */
  language: string;
  /** Start of the hour the fetch was made in. */
  bucket_ts: number;
  download_ts: number;
  expires_ts: number;
  /** The preview's JSON; null for a failure. */
  og: string | null;
  /** 200, or the HTTP status of the cached failure. */
  status: number;
  errcode: string | null;
  error: string | null;
  /** The url-cache media of the preview's image. */
  media_id: string | null;
}

/** One PDQ hash as recorded (migration 0011-pdq-hash-log); append only. */
export interface PdqHashLogTable {
  stream_id: number;
  /** Null for local media. */
  media_origin: string | null;
  media_id: string;
  pdq: string;
}

/** The PDQ hash log's single position row (id 1): the highest allocated stream id. */
export interface PdqHashPositionTable {
  id: number;
  position: number;
}

/** Bytes reserved by one streaming upload against its user's quota (migration 0013). */
export interface MediaUploadReservationsTable {
  reservation_id: string;
  user_id: string;
  bytes: number;
  /** The process holding it; it renews `expires_ts` while the upload streams. */
  owner: string;
  expires_ts: number;
}

/**
 * A user's counted upload bytes in one time bucket (migration 0019; kept by
 * triggers on `local_media_repository`, read by the upload quota).
 */
export interface LocalMediaUploadTotalsTable {
  user_id: string;
  /** The bucket's length in ms: 60,000, 3,600,000 or 86,400,000. */
  span: number;
  /** The bucket's start: `created_ts` floored to a multiple of `span`. */
  bucket_ts: number;
  bytes: number;
}

/** A shared leaky bucket (migration 0014): when it will have leaked empty, in ms. */
export interface RateLimitBucketsTable {
  limiter: string;
  bucket_key: string;
  empty_at: number;
}

export interface DatabaseSchema {
  users: UsersTable;
  profiles: ProfilesTable;
  access_tokens: AccessTokensTable;
  registration_nonces: RegistrationNoncesTable;
  local_media_repository: LocalMediaTable;
  remote_media_cache: RemoteMediaTable;
  local_media_repository_thumbnails: LocalThumbnailsTable;
  remote_media_cache_thumbnails: RemoteThumbnailsTable;
  rooms: RoomsTable;
  events: EventsTable;
  current_state: CurrentStateTable;
  event_transactions: EventTransactionsTable;
  media_references: MediaReferencesTable;
  quarantined_media_changes: QuarantinedMediaChangesTable;
  quarantine_stream: QuarantineStreamTable;
  quarantine_blocks: QuarantineBlocksTable;
  quarantine_propagations: QuarantinePropagationsTable;
  background_jobs: BackgroundJobsTable;
  app_service_transactions: AppServiceTransactionsTable;
  app_service_events: AppServiceEventsTable;
  room_history_backfill: RoomHistoryBackfillTable;
  url_preview_cache: UrlPreviewCacheTable;
  pdq_hash_log: PdqHashLogTable;
  pdq_hash_position: PdqHashPositionTable;
  rate_limit_buckets: RateLimitBucketsTable;
  media_upload_reservations: MediaUploadReservationsTable;
  local_media_upload_totals: LocalMediaUploadTotalsTable;
}
