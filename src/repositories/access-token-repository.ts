/**
 * Access tokens, stored by hash (see accounts/access-token.ts). Every
 * deletion publishes a TokenChanges after its commit, so the token caches of
 * every process forget the token (cache/token-cache.ts).
 */
import type { TokenChanges } from "../cache/token-changes.js";
import type { Database } from "../db/database.js";
import { CompiledSelect } from "./compiled-select.js";

export interface TokenOwner {
  readonly userId: string;
  readonly deviceId: string | null;
  readonly admin: boolean;
  readonly deactivated: boolean;
  readonly validUntilTs: number | null;
}

export class AccessTokenRepository {
  /** findOwner's query, compiled once (the hot path's cache misses). */
  readonly #owner = new CompiledSelect(
    () => this.database.db,
    (tokenHash: string) =>
      this.database.db
        .selectFrom("access_tokens")
        .innerJoin("users", "users.name", "access_tokens.user_id")
        .select([
          "access_tokens.user_id",
          "access_tokens.device_id",
          "access_tokens.valid_until_ts",
          "users.admin",
          "users.deactivated",
        ])
        .where("access_tokens.token_hash", "=", tokenHash),
  );

  constructor(
    private readonly database: Database,
    private readonly changes: TokenChanges,
  ) {}

  async insert(token: {
    tokenHash: string;
    userId: string;
    deviceId: string | null;
    createdTs: number;
    validUntilTs: number | null;
  }): Promise<void> {
    await this.database.db
      .insertInto("access_tokens")
      .values({
        token_hash: token.tokenHash,
        user_id: token.userId,
        device_id: token.deviceId,
        created_ts: token.createdTs,
        valid_until_ts: token.validUntilTs,
      })
      .execute();
  }

  /** The token's user with the flags auth needs, in one indexed lookup. */
  async findOwner(tokenHash: string): Promise<TokenOwner | undefined> {
    const [row] = await this.#owner.execute(tokenHash);
    if (!row) return undefined;
    return {
      userId: row.user_id,
      deviceId: row.device_id,
      admin: Boolean(row.admin),
      deactivated: Boolean(row.deactivated),
      validUntilTs: row.valid_until_ts === null ? null : Number(row.valid_until_ts),
    };
  }

  async delete(tokenHash: string): Promise<void> {
    await this.database.db
      .deleteFrom("access_tokens")
      .where("token_hash", "=", tokenHash)
      .execute();
    this.changes.publish({ kind: "token", tokenHash });
  }

  /** Logs a user out everywhere; keeps `exceptHash` when given. */
  async deleteAllForUser(userId: string, exceptHash?: string): Promise<void> {
    let query = this.database.db.deleteFrom("access_tokens").where("user_id", "=", userId);
    if (exceptHash) query = query.where("token_hash", "!=", exceptHash);
    await query.execute();
    // The whole user: `exceptHash` is simply read again on its next use.
    this.changes.publish({ kind: "user", userId });
  }
}
