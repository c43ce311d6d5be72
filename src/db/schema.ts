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

export interface DatabaseSchema {
  users: UsersTable;
  profiles: ProfilesTable;
  access_tokens: AccessTokensTable;
  registration_nonces: RegistrationNoncesTable;
}
