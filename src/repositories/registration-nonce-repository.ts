/**
 * Single-use nonces of Synapse's shared-secret registration. Kept in the
 * database so that any process of a scaled-out deployment can take a nonce
 * another process handed out.
 */
import type { Database } from "../db/database.js";

export class RegistrationNonceRepository {
  constructor(private readonly database: Database) {}

  async insert(nonce: string, createdTs: number): Promise<void> {
    await this.database.db
      .insertInto("registration_nonces")
      .values({ nonce, created_ts: createdTs })
      .execute();
  }

  /**
   * Removes the nonce and reports whether it existed and was issued at or
   * after `notBeforeTs`. Atomic: of two concurrent takers, one wins.
   */
  async take(nonce: string, notBeforeTs: number): Promise<boolean> {
    const row = await this.database.db
      .deleteFrom("registration_nonces")
      .where("nonce", "=", nonce)
      .returning("created_ts")
      .executeTakeFirst();
    return row !== undefined && Number(row.created_ts) >= notBeforeTs;
  }

  /** Drops nonces issued before `beforeTs`. */
  async deleteOlderThan(beforeTs: number): Promise<void> {
    await this.database.db
      .deleteFrom("registration_nonces")
      .where("created_ts", "<", beforeTs)
      .execute();
  }
}
