/**
 * The standalone access-token cache (docs/deployment.md "Caches"): token
 * hash → its owner and the owner's flags, so an authenticated request costs
 * no database query. Attached mode has its own cache of the homeserver's
 * answers (homeserver/remote-authenticator.ts, `access_token_cache`).
 *
 * Design note.
 * - Bounded: at most `maxEntries` tokens, least recently used evicted first;
 *   each entry expires `ttlMs` after its database read (the backstop for a
 *   lost invalidation).
 * - Unknown tokens are not cached (a flood of random tokens cannot evict the
 *   real ones, and a new login needs no invalidation).
 * - The caller still checks `valid_until_ts` and the deactivated flag on
 *   every hit: an expired token never authenticates from the cache.
 * - Invalidation (TokenChanges): one token by hash (logout, deletion), every
 *   token of a user (logout-all, deactivation, admin flag, password), or
 *   all; a read that raced with one is not stored (read-through-lru.ts).
 */
import type { TokenOwner } from "../repositories/access-token-repository.js";
import type { CacheStats } from "./cache-stats.js";
import type { ChangeSource } from "./change-signal.js";
import { ReadThroughLru, type ReadThroughLruOptions } from "./read-through-lru.js";
import type { TokenChange, TokenChanges } from "./token-changes.js";

export type TokenCacheOptions = ReadThroughLruOptions;

export class TokenCache {
  readonly #cache: ReadThroughLru<TokenOwner>;

  constructor(
    private readonly find: (tokenHash: string) => Promise<TokenOwner | undefined>,
    changes: TokenChanges,
    options: TokenCacheOptions,
  ) {
    this.#cache = new ReadThroughLru(options);
    changes.subscribe((change, source) => this.#forget(change, source));
  }

  get stats(): CacheStats {
    return this.#cache.stats;
  }

  /** The token's owner, from the cache or the database. */
  findOwner(tokenHash: string): Promise<TokenOwner | undefined> {
    return this.#cache.read(tokenHash, () => this.find(tokenHash));
  }

  /** The cached owner of a token hash, or undefined: no load, nothing counted (ReadThroughLru.cached). */
  cachedOwner(tokenHash: string): TokenOwner | undefined {
    return this.#cache.cached(tokenHash);
  }

  /** True when the token's owner was cached and its lifetime is over (ReadThroughLru.expired). */
  expiredOwner(tokenHash: string): boolean {
    return this.#cache.expired(tokenHash);
  }

  #forget(change: TokenChange, source: ChangeSource): void {
    const owners = this.#cache.invalidate(source);
    if (!owners) return;
    switch (change.kind) {
      case "token":
        owners.delete(change.tokenHash);
        return;
      case "user":
        // Rare (an admin action): a walk over at most maxEntries entries.
        for (const [hash, owner] of [...owners.entries()]) {
          if (owner.userId === change.userId) owners.delete(hash);
        }
        return;
      case "all":
        owners.clear();
        return;
      default: {
        const unknown: never = change;
        throw new Error(`unknown token change ${JSON.stringify(unknown)}`);
      }
    }
  }
}
