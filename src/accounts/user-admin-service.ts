/**
 * The server-admin side of accounts (Synapse's user admin API): list, look
 * up, create-or-modify, and log in as a user. The routes parse and shape
 * replies; the rules Synapse applies (no self-demotion, a password to
 * re-activate, no login as yourself) live here.
 */
import { MatrixError } from "../domain/matrix-error.js";
import { parseUserId } from "../identifiers/user-id.js";
import type { User, UserListQuery, UserRepository } from "../repositories/user-repository.js";
import type { AccountService, Requester } from "./account-service.js";

// The list's query and result types are this service's API too: routes
// take them from here and never import a repository.
export type {
  DeactivatedFilter,
  User,
  UserListQuery,
  UserOrderBy,
} from "../repositories/user-repository.js";

/** The fields `PUT /_synapse/admin/v2/users/<user_id>` may change. */
export interface UserAdminChanges {
  password?: string;
  admin?: boolean;
  deactivated?: boolean;
  userType?: string | null;
  displayname?: string | null;
  avatarUrl?: string | null;
}

export class UserAdminService {
  constructor(
    private readonly users: UserRepository,
    private readonly accounts: AccountService,
  ) {}

  /** A page of users and the total matching the filters. */
  list(query: UserListQuery): Promise<{ users: User[]; total: number }> {
    return this.users.list(query);
  }

  /** One user, or 404 M_NOT_FOUND. */
  async get(userId: string): Promise<User> {
    const user = await this.users.get(userId);
    if (!user) throw new MatrixError("M_NOT_FOUND", "User not found");
    return user;
  }

  /**
   * Creates the user or changes it, with Synapse's checks; `created` tells
   * the route whether to answer 201 or 200.
   */
  async createOrModify(
    requester: Requester,
    userId: string,
    changes: UserAdminChanges,
    logoutDevices: boolean,
  ): Promise<{ user: User; created: boolean }> {
    const existing = await this.users.get(userId);
    if (existing) {
      if (userId === requester.userId && changes.admin === false) {
        throw new MatrixError("M_UNKNOWN", "You may not demote yourself.");
      }
      if (existing.deactivated && changes.deactivated === false && !changes.password) {
        throw new MatrixError("M_UNKNOWN", "Must provide a password to re-activate an account.");
      }
      await this.accounts.updateUser(userId, changes, !logoutDevices);
    } else {
      await this.accounts.register({
        localpart: parseUserId(userId).localpart,
        password: changes.password ?? null,
        admin: changes.admin ?? false,
        userType: changes.userType ?? null,
      });
      if (changes.deactivated) await this.accounts.updateUser(userId, { deactivated: true });
    }
    if (changes.displayname !== undefined) {
      await this.accounts.setDisplayname(userId, changes.displayname);
    }
    if (changes.avatarUrl !== undefined) {
      await this.accounts.setAvatarUrl(userId, changes.avatarUrl);
    }
    return { user: await this.get(userId), created: !existing };
  }

  /** A token acting as `userId` (Synapse refuses admins logging in as themselves). */
  async loginAs(
    requester: Requester,
    userId: string,
    validUntilTs: number | null,
  ): Promise<string> {
    if (userId === requester.userId) {
      throw new MatrixError("M_UNKNOWN", "Cannot use admin API to login as self");
    }
    await this.get(userId);
    const session = await this.accounts.issueToken(userId, null, validUntilTs);
    return session.accessToken;
  }
}
