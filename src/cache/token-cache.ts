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
 *   all; a read that raced with one is not stored (generation, as in
 *   media-metadata-cache.ts).
 */
import { LRUCache } from "lru-cache";
import type { TokenOwner } from "../repositories/access-token-repository.js";
import { CacheStats } from "./cache-stats.js";
import type { ChangeSource } from "./change-signal.js";
import type { TokenChange, TokenChanges } from "./token-changes.js";

export interface TokenCacheOptions {
  /** Tokens kept at most; 0 turns the cache off. */
  readonly maxEntries: number;
  /** Lifetime of an entry, from its database read. */
  readonly ttlMs: number;
}

export class TokenCache {
  readonly stats = new CacheStats();
  readonly #owners: LRUCache<string, TokenOwner> | undefined;
  #generation = 0;

  constructor(
    private readonly find: (tokenHash: string) => Promise<TokenOwner | undefined>,
    changes: TokenChanges,
    options: TokenCacheOptions,
  ) {
    if (options.maxEntries > 0) {
      this.#owners = new LRUCache({ max: options.maxEntries, ttl: options.ttlMs });
    }
    changes.subscribe((change, source) => this.#forget(change, source));
  }

  /** The token's owner, from the cache or the database. */
  async findOwner(tokenHash: string): Promise<TokenOwner | undefined> {
    if (!this.#owners) return this.find(tokenHash);
    const hit = this.#owners.get(tokenHash);
    if (hit) {
      this.stats.hits += 1;
      return hit;
    }
    this.stats.misses += 1;
    const generation = this.#generation;
    const owner = await this.find(tokenHash);
    if (owner && generation === this.#generation) this.#owners.set(tokenHash, owner);
    return owner;
  }

  #forget(change: TokenChange, source: ChangeSource): void {
    this.#generation += 1;
    this.stats.invalidations[source] += 1;
    const owners = this.#owners;
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
