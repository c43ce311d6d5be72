/**
 * "These access tokens no longer say what they said": the invalidation
 * signal of the standalone access-token cache (token-cache.ts), within this
 * process and across processes (`mxcd_tokens_changed`). Published by
 * AccessTokenRepository (a token deleted, a user's tokens deleted) and
 * UserRepository (admin flag, deactivation, password changed) after their
 * statement committed. A lost notification is covered by the cache's TTL and
 * by the listener's reconnect (`{kind: "all"}`), as for media-changes.ts.
 */
import type { NotificationBus } from "../db/notification-bus.js";
import { type ChangeListener, ChangeSignal } from "./change-signal.js";

export type TokenChange =
  /** One token, by its hash (accounts/access-token.ts): never the token itself. */
  | { readonly kind: "token"; readonly tokenHash: string }
  /** Every token of one user. */
  | { readonly kind: "user"; readonly userId: string }
  | { readonly kind: "all" };

const CHANNEL = "mxcd_tokens_changed";

export class TokenChanges {
  readonly #signal: ChangeSignal<TokenChange>;

  constructor(bus: NotificationBus) {
    this.#signal = new ChangeSignal(bus, CHANNEL, (payload) => [decode(payload)], { kind: "all" });
  }

  /** Announces a committed change, here at once and to the other processes. */
  publish(change: TokenChange): void {
    this.#signal.send(JSON.stringify(change));
  }

  /** Calls `listener` with every change from now on; returns the unsubscribe function. */
  subscribe(listener: ChangeListener<TokenChange>): () => void {
    return this.#signal.subscribe(listener);
  }
}

/** A payload as a change; anything unreadable means "all" (never miss an invalidation). */
function decode(payload: string): TokenChange {
  try {
    const value = JSON.parse(payload) as Partial<Record<string, unknown>>;
    if (value.kind === "token" && typeof value.tokenHash === "string") {
      return { kind: "token", tokenHash: value.tokenHash };
    }
    if (value.kind === "user" && typeof value.userId === "string") {
      return { kind: "user", userId: value.userId };
    }
  } catch {
    // Fall through to "all".
  }
  return { kind: "all" };
}
