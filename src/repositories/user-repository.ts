/**
 * Local user accounts and their profiles. A change of the flags that access
 * tokens carry (admin, deactivated, password) publishes a TokenChanges for
 * the user after its commit (cache/token-cache.ts).
 */
import { sql } from "kysely";
import type { TokenChanges } from "../cache/token-changes.js";
import type { Database, Db } from "../db/database.js";
import { parseMxcUri } from "../identifiers/mxc-uri.js";
import { replaceProfileAvatarReference } from "./media-reference-repository.js";

export interface User {
  readonly userId: string;
  readonly passwordHash: string | null;
  readonly admin: boolean;
  readonly deactivated: boolean;
  readonly creationTs: number;
  readonly userType: string | null;
  readonly displayname: string | null;
  readonly avatarUrl: string | null;
}

export interface NewUser {
  userId: string;
  passwordHash: string | null;
  admin: boolean;
  userType?: string | null;
  displayname?: string | null;
  creationTs: number;
}

export interface UserChanges {
  passwordHash?: string | null;
  admin?: boolean;
  deactivated?: boolean;
  userType?: string | null;
}

export type UserOrderBy =
  | "name"
  | "is_guest"
  | "admin"
  | "user_type"
  | "deactivated"
  | "shadow_banned"
  | "displayname"
  | "avatar_url"
  | "creation_ts"
  | "last_seen_ts";

/**
 * Which users the deactivated flag lets through: Synapse's v2 list includes
 * deactivated users only when asked, its v3 list can also ask for only them.
 */
export type DeactivatedFilter = "exclude" | "include" | "only";

export interface UserListQuery {
  from: number;
  limit: number;
  /** Substring of the user id. */
  userId?: string;
  /** Substring of the user id or display name. */
  name?: string;
  deactivated: DeactivatedFilter;
  /** Leave out these user types; `""` leaves out users without a type. */
  notUserTypes?: readonly string[];
  /** Only admins (true), only non-admins (false), or everyone. */
  admins?: boolean;
  orderBy: UserOrderBy;
  direction: "f" | "b";
}

/**
 * mxcd has no guests, shadow bans or last-seen times: those orders are the
 * same for every user (null), so only Synapse's tie-break, ascending name, is left.
 */
const ORDER_COLUMN = {
  name: "users.name",
  is_guest: null,
  admin: "users.admin",
  user_type: "users.user_type",
  deactivated: "users.deactivated",
  shadow_banned: null,
  displayname: "profiles.displayname",
  avatar_url: "profiles.avatar_url",
  creation_ts: "users.creation_ts",
  last_seen_ts: null,
} as const;

/** Thrown by `create` when the user id is taken. */
export class UserExistsError extends Error {}

export class UserRepository {
  constructor(
    private readonly database: Database,
    private readonly tokenChanges: TokenChanges,
  ) {}

  private selectUsers(db: Db) {
    return db
      .selectFrom("users")
      .leftJoin("profiles", "profiles.user_id", "users.name")
      .select([
        "users.name",
        "users.password_hash",
        "users.admin",
        "users.deactivated",
        "users.creation_ts",
        "users.user_type",
        "profiles.displayname",
        "profiles.avatar_url",
      ]);
  }

  async get(userId: string): Promise<User | undefined> {
    const row = await this.selectUsers(this.database.db)
      .where("users.name", "=", userId)
      .executeTakeFirst();
    return row && toUser(row);
  }

  /** Creates the user and its profile row; throws UserExistsError when taken. */
  async create(user: NewUser): Promise<void> {
    await this.database.transaction(async (tx) => {
      const taken = await tx
        .selectFrom("users")
        .select("name")
        .where("name", "=", user.userId)
        .executeTakeFirst();
      if (taken) throw new UserExistsError(user.userId);
      await tx
        .insertInto("users")
        .values({
          name: user.userId,
          password_hash: user.passwordHash,
          admin: user.admin,
          deactivated: false,
          creation_ts: user.creationTs,
          user_type: user.userType ?? null,
        })
        .execute();
      await tx
        .insertInto("profiles")
        .values({ user_id: user.userId, displayname: user.displayname ?? null, avatar_url: null })
        .execute();
    });
  }

  async update(userId: string, changes: UserChanges): Promise<void> {
    const values = {
      ...(changes.passwordHash !== undefined && { password_hash: changes.passwordHash }),
      ...(changes.admin !== undefined && { admin: changes.admin }),
      ...(changes.deactivated !== undefined && { deactivated: changes.deactivated }),
      ...(changes.userType !== undefined && { user_type: changes.userType }),
    };
    if (Object.keys(values).length === 0) return;
    await this.database.db.updateTable("users").set(values).where("name", "=", userId).execute();
    this.tokenChanges.publish({ kind: "user", userId });
  }

  async setDisplayname(userId: string, displayname: string | null): Promise<void> {
    await this.upsertProfile(userId, { displayname });
  }

  /**
   * Sets the avatar and, in the same transaction, the profile-avatar entry of
   * the media-reference index (every path that changes an avatar comes here).
   */
  async setAvatarUrl(userId: string, avatarUrl: string | null): Promise<void> {
    await this.database.transaction(async (tx) => {
      await this.upsertProfile(userId, { avatar_url: avatarUrl }, tx);
      await replaceProfileAvatarReference(tx, userId, parseMxcUri(avatarUrl));
    });
  }

  private async upsertProfile(
    userId: string,
    values: { displayname?: string | null; avatar_url?: string | null },
    db: Db = this.database.db,
  ): Promise<void> {
    await db
      .insertInto("profiles")
      .values({ user_id: userId, displayname: null, avatar_url: null, ...values })
      .onConflict((oc) => oc.column("user_id").doUpdateSet(values))
      .execute();
  }

  /** True when at least one active admin account exists. */
  async hasAdmin(): Promise<boolean> {
    const row = await this.database.db
      .selectFrom("users")
      .select("name")
      .where("admin", "=", true)
      .where("deactivated", "=", false)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** A page of users and the total matching the filters. */
  async list(query: UserListQuery): Promise<{ users: User[]; total: number }> {
    const filtered = this.selectUsers(this.database.db).where((eb) => {
      const conditions = [];
      if (query.deactivated !== "include") {
        conditions.push(eb("users.deactivated", "=", query.deactivated === "only"));
      }
      for (const type of query.notUserTypes ?? []) {
        conditions.push(
          type === ""
            ? eb("users.user_type", "is not", null)
            : eb.or([eb("users.user_type", "is", null), eb("users.user_type", "!=", type)]),
        );
      }
      if (query.admins !== undefined) conditions.push(eb("users.admin", "=", query.admins));
      const like = (column: "users.name" | "profiles.displayname", pattern: string) =>
        sql<boolean>`lower(${sql.ref(column)}) like lower(${pattern}) escape '\\'`;
      if (query.userId) conditions.push(like("users.name", likePattern(query.userId)));
      if (query.name) {
        const pattern = likePattern(query.name);
        conditions.push(
          eb.or([like("users.name", pattern), like("profiles.displayname", pattern)]),
        );
      }
      return eb.and(conditions);
    });
    const { total } = await filtered
      .clearSelect()
      .select((eb) => eb.fn.countAll<number>().as("total"))
      .executeTakeFirstOrThrow();
    const column = ORDER_COLUMN[query.orderBy];
    const ordered =
      column === null
        ? filtered
        : filtered.orderBy(column, (ob) =>
            query.direction === "b" ? ob.desc().nullsFirst() : ob.asc().nullsLast(),
          );
    const rows = await ordered
      .orderBy("users.name", "asc")
      .limit(query.limit)
      .offset(query.from)
      .execute();
    return { users: rows.map(toUser), total: Number(total) };
  }
}

function likePattern(substring: string): string {
  return `%${substring.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

function toUser(row: {
  name: string;
  password_hash: string | null;
  admin: boolean | number;
  deactivated: boolean | number;
  creation_ts: number;
  user_type: string | null;
  displayname: string | null;
  avatar_url: string | null;
}): User {
  return {
    userId: row.name,
    passwordHash: row.password_hash,
    admin: Boolean(row.admin),
    deactivated: Boolean(row.deactivated),
    creationTs: Number(row.creation_ts),
    userType: row.user_type,
    displayname: row.displayname,
    avatarUrl: row.avatar_url,
  };
}
