/**
 * Global profiles (client-server API "Profiles"): anyone authenticated may
 * read a local user's profile; only the user may change it. A change is
 * copied into the member events of the user's rooms; the avatar's entry in
 * the media-reference index is kept by UserRepository.setAvatarUrl.
 */
import type { AccountService } from "../accounts/account-service.js";
import { MatrixError } from "../domain/matrix-error.js";
import type { MembershipService } from "./membership-service.js";

/** The profile fields the client API reads and writes. */
export type ProfileField = "displayname" | "avatar_url";

/** Longest accepted values (Synapse's limits). */
const MAX_LENGTH: Record<ProfileField, number> = { displayname: 256, avatar_url: 1000 };

/** Reads and changes global profiles; errors are MatrixErrors. */
export class ProfileService {
  constructor(
    private readonly accounts: AccountService,
    private readonly memberships: MembershipService,
  ) {}

  /** `{displayname?, avatar_url?}` (unset fields left out); 404 M_NOT_FOUND for unknown users. */
  async profile(userId: string): Promise<{ displayname?: string; avatar_url?: string }> {
    const user = await this.accounts.getUser(userId);
    if (!user) throw new MatrixError("M_NOT_FOUND", "Profile was not found");
    return {
      ...(user.displayname !== null && { displayname: user.displayname }),
      ...(user.avatarUrl !== null && { avatar_url: user.avatarUrl }),
    };
  }

  /**
   * Sets one field of the requester's own profile: 403 M_FORBIDDEN for anyone
   * else's, 400 M_INVALID_PARAM when too long. An empty string clears it.
   */
  async set(requester: string, userId: string, field: ProfileField, value: string) {
    if (requester !== userId) {
      throw new MatrixError("M_FORBIDDEN", `Cannot set another user's ${field}`);
    }
    if (value.length > MAX_LENGTH[field]) {
      throw new MatrixError("M_INVALID_PARAM", `${field} is too long (max ${MAX_LENGTH[field]})`);
    }
    if (!(await this.accounts.getUser(userId))) {
      throw new MatrixError("M_NOT_FOUND", "Profile was not found");
    }
    const stored = value === "" ? null : value;
    if (field === "displayname") await this.accounts.setDisplayname(userId, stored);
    else await this.accounts.setAvatarUrl(userId, stored);
    await this.memberships.refreshProfile(userId);
  }
}
