/** Every schema migration, in order. Append only. */
import * as accounts from "./0001-accounts.js";
import * as media from "./0002-media.js";
import type { SchemaMigration } from "./migration.js";

export const MIGRATIONS: readonly SchemaMigration[] = [
  { name: "0001-accounts", up: accounts.up },
  { name: "0002-media", up: media.up },
];
