/**
 * Local accounts: registration, password login, access tokens and the
 * checks behind every authenticated request. Knows nothing of HTTP; errors
 * are `MatrixError`s with the spec's (or Synapse's) errcodes.
 *
 * Password login follows Synapse: rate limits by address, failed attempts
 * and account (login-rate-limits.ts); one KDF run whether or not the user
 * exists (password-hash.ts), so timing does not tell them apart.
 *
 * `authenticate` reads token owners through the token cache
 * (cache/token-cache.ts); the repositories announce every deletion and user
 * change, and expiry and deactivation are checked again on every hit.
 */

import type { TokenCache } from "../cache/token-cache.js";
import { MatrixError } from "../domain/matrix-error.js";
import { assertValidNewLocalpart, formatUserId } from "../identifiers/user-id.js";
import type { AccessTokenRepository, TokenOwner } from "../repositories/access-token-repository.js";
import {
  type User,
  type UserChanges,
  UserExistsError,
  type UserRepository,
} from "../repositories/user-repository.js";
import { hashAccessToken, newAccessToken, newDeviceId } from "./access-token.js";
import type { LoginRateLimits } from "./login-rate-limits.js";
import type { PasswordHasher } from "./password-hash.js";

/** Who made an authenticated request (from mxcd's accounts, or the homeserver's word). */
export interface Requester {
  readonly userId: string;
  readonly deviceId: string | null;
  /**
   * The account's admin flag in standalone mode. Always false in attached
   * mode, where admins are the homeserver's: ask `Auth.isAdmin` (http/auth.ts).
   */
  readonly admin: boolean;
  /** A guest (the homeserver's `is_guest`); mxcd's own accounts never are. */
  readonly isGuest: boolean;
  /** Hash of the token used, so logout can remove exactly it. */
  readonly tokenHash: string;
}

export interface Session {
  readonly userId: string;
  readonly accessToken: string;
  readonly deviceId: string | null;
}

export interface RegisterOptions {
  localpart: string;
  password: string | null;
  admin: boolean;
  displayname?: string | null;
  userType?: string | null;
}

export class AccountService {
  constructor(
    private readonly serverName: string,
    private readonly users: UserRepository,
    private readonly tokens: AccessTokenRepository,
    private readonly passwords: PasswordHasher,
    private readonly loginLimits: LoginRateLimits,
    /** Token owners, through the token cache. */
    private readonly owners: Pick<TokenCache, "findOwner" | "cachedOwner">,
    private readonly now: () => number = Date.now,
  ) {}

  /** Creates a local user; 400 M_INVALID_USERNAME / M_USER_IN_USE as Synapse. */
  async register(options: RegisterOptions): Promise<string> {
    assertValidNewLocalpart(options.localpart, this.serverName);
    const userId = formatUserId(options.localpart, this.serverName);
    const passwordHash =
      options.password === null ? null : await this.passwords.hash(options.password);
    try {
      await this.users.create({
        userId,
        passwordHash,
        admin: options.admin,
        userType: options.userType ?? null,
        displayname: options.displayname ?? options.localpart,
        creationTs: this.now(),
      });
    } catch (error) {
      if (error instanceof UserExistsError) {
        throw new MatrixError("M_USER_IN_USE", "User ID already taken.");
      }
      throw error;
    }
    return userId;
  }

  /**
   * Counts a login request from a client address, before its fields are checked
   * (Synapse's `rc_login.address`); 429 M_LIMIT_EXCEEDED when over.
   */
  admitLoginFrom(address: string): void {
    this.loginLimits.checkAddress(address);
  }

  /**
   * Checks a password login: 429 M_LIMIT_EXCEEDED when the user has failed
   * too often or logged in too often, 403 M_FORBIDDEN for any unknown user
   * or wrong password (one KDF run either way), then M_USER_DEACTIVATED.
   */
  async loginWithPassword(
    userId: string,
    password: string,
    deviceId: string | null,
  ): Promise<Session> {
    this.loginLimits.checkFailedAttempts(userId);
    const user = await this.users.get(userId);
    const ok = await this.passwords.verify(password, user?.passwordHash ?? null);
    if (!user || !ok) {
      this.loginLimits.recordFailure(userId);
      throw new MatrixError("M_FORBIDDEN", "Invalid username or password");
    }
    if (user.deactivated) {
      throw new MatrixError("M_USER_DEACTIVATED", "This account has been deactivated");
    }
    this.loginLimits.checkAccount(user.userId);
    return this.issueToken(user.userId, deviceId ?? newDeviceId());
  }

  /** A new access token for `userId` (login, registration, admin login-as-user). */
  async issueToken(
    userId: string,
    deviceId: string | null,
    validUntilTs: number | null = null,
  ): Promise<Session> {
    const accessToken = newAccessToken();
    await this.tokens.insert({
      tokenHash: hashAccessToken(accessToken),
      userId,
      deviceId,
      createdTs: this.now(),
      validUntilTs,
    });
    return { userId, accessToken, deviceId };
  }

  /**
   * The requester behind a token: 401 M_UNKNOWN_TOKEN (with `soft_logout`
   * false, as Synapse) for unknown, expired or deactivated tokens.
   */
  async authenticate(accessToken: string): Promise<Requester> {
    const requester = await this.requesterOf(hashAccessToken(accessToken));
    if (!requester) {
      throw new MatrixError("M_UNKNOWN_TOKEN", "Unrecognised access token", 401, {
        soft_logout: false,
      });
    }
    return requester;
  }

  /**
   * The requester behind a token whose owner is in the token cache and who
   * `authenticate` would accept (the same checks); undefined otherwise — a
   * cache miss or a refusal, which the caller leaves to `authenticate`. No
   * load, no count: the serving fast path (http/fast-path.ts) counts the
   * cache hit itself once it answers.
   */
  cachedRequester(tokenHash: string): Requester | undefined {
    const cached = this.owners.cachedOwner(tokenHash);
    return cached && this.#accept(tokenHash, cached);
  }

  /**
   * The requester behind a token hash as `authenticate` finds it (cache or
   * database), or undefined where it would refuse: for the serving fast
   * path's re-read of an expired cache entry.
   */
  async requesterOf(tokenHash: string): Promise<Requester | undefined> {
    return this.#accept(tokenHash, await this.owners.findOwner(tokenHash));
  }

  #accept(tokenHash: string, owner: TokenOwner | undefined): Requester | undefined {
    // Checked on every call, cached owner or not: expiry is a matter of time.
    const expired = owner?.validUntilTs != null && owner.validUntilTs <= this.now();
    if (!owner || owner.deactivated || expired) return undefined;
    return {
      userId: owner.userId,
      deviceId: owner.deviceId,
      admin: owner.admin,
      isGuest: false,
      tokenHash,
    };
  }

  /** Standalone admins are accounts with the admin flag (the `Authenticator` seam, http/auth.ts). */
  async isAdmin(requester: Requester): Promise<boolean> {
    return requester.admin;
  }

  async logout(requester: Requester): Promise<void> {
    await this.tokens.delete(requester.tokenHash);
  }

  async logoutAll(userId: string): Promise<void> {
    await this.tokens.deleteAllForUser(userId);
  }

  hasAdmin(): Promise<boolean> {
    return this.users.hasAdmin();
  }

  getUser(userId: string): Promise<User | undefined> {
    return this.users.get(userId);
  }

  /**
   * Changes an existing account. A new password or deactivation ends the
   * user's sessions (unless `keepSessions`), as in Synapse.
   */
  async updateUser(
    userId: string,
    changes: {
      password?: string;
      admin?: boolean;
      deactivated?: boolean;
      userType?: string | null;
    },
    keepSessions = false,
  ): Promise<void> {
    const update: UserChanges = {
      ...(changes.password !== undefined && {
        passwordHash: await this.passwords.hash(changes.password),
      }),
      ...(changes.admin !== undefined && { admin: changes.admin }),
      ...(changes.deactivated !== undefined && { deactivated: changes.deactivated }),
      ...(changes.userType !== undefined && { userType: changes.userType }),
    };
    await this.users.update(userId, update);
    if (changes.deactivated || (changes.password !== undefined && !keepSessions)) {
      await this.tokens.deleteAllForUser(userId);
    }
  }

  setDisplayname(userId: string, displayname: string | null): Promise<void> {
    return this.users.setDisplayname(userId, displayname);
  }

  setAvatarUrl(userId: string, avatarUrl: string | null): Promise<void> {
    return this.users.setAvatarUrl(userId, avatarUrl);
  }
}
