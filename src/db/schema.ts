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

export interface DatabaseSchema {
  users: UsersTable;
  profiles: ProfilesTable;
  access_tokens: AccessTokensTable;
  registration_nonces: RegistrationNoncesTable;
  local_media_repository: LocalMediaTable;
  remote_media_cache: RemoteMediaTable;
  local_media_repository_thumbnails: LocalThumbnailsTable;
  remote_media_cache_thumbnails: RemoteThumbnailsTable;
}
