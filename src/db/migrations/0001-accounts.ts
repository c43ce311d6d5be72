/** Accounts: users, profiles, access tokens and shared-secret registration nonces. */
import type { Kysely } from "kysely";
import type { MigrationContext } from "./migration.js";

export async function up(db: Kysely<unknown>, { flag, autoId }: MigrationContext): Promise<void> {
  await db.schema
    .createTable("users")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("password_hash", "text")
    .addColumn("admin", flag, (c) => c.notNull().defaultTo(false))
    .addColumn("deactivated", flag, (c) => c.notNull().defaultTo(false))
    .addColumn("creation_ts", "bigint", (c) => c.notNull())
    .addColumn("user_type", "text")
    .execute();

  await db.schema
    .createTable("profiles")
    .addColumn("user_id", "text", (c) => c.primaryKey())
    .addColumn("displayname", "text")
    .addColumn("avatar_url", "text")
    .execute();

  await db.schema
    .createTable("access_tokens")
    .addColumn("id", "integer", autoId)
    .addColumn("token_hash", "text", (c) => c.notNull().unique())
    .addColumn("user_id", "text", (c) => c.notNull())
    .addColumn("device_id", "text")
    .addColumn("created_ts", "bigint", (c) => c.notNull())
    .addColumn("valid_until_ts", "bigint")
    .execute();
  await db.schema
    .createIndex("access_tokens_user_id")
    .on("access_tokens")
    .column("user_id")
    .execute();

  await db.schema
    .createTable("registration_nonces")
    .addColumn("nonce", "text", (c) => c.primaryKey())
    .addColumn("created_ts", "bigint", (c) => c.notNull())
    .execute();
}
