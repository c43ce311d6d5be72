/**
 * "These media rows (or their thumbnail rows) changed": the invalidation
 * signal of every media cache (metadata here, bytes elsewhere), within this
 * process and across processes over the notification bus
 * (`mxcd_media_changed`). docs/deployment.md "Caches".
 *
 * Design note.
 * - Publishers are the repositories that write `local_media_repository`,
 *   `remote_media_cache` and their thumbnail tables (one choke point), and
 *   they publish after the commit (db/after-commit.ts). In this process the
 *   bus delivers synchronously, so a cache has forgotten an item before the
 *   request that changed it is answered.
 * - A payload is lines of `l <mediaId>`, `r <origin> <mediaId>` or `*`
 *   ("all"), cut into notifications under PostgreSQL's 8000-byte limit.
 *   More than MAX_ITEMS changes at once become one `*`: cheaper than
 *   thousands of lines, and a bulk change (a room quarantine) is rare.
 * - A notification can be lost (a process died between commit and publish;
 *   the listening connection was down). So caches keep a TTL backstop, and
 *   when the PostgreSQL listener (re)connects every subscriber is told
 *   `{kind: "all"}` as if published here.
 */
import type { NotificationBus } from "../db/notification-bus.js";
import { type ChangeListener, ChangeSignal } from "./change-signal.js";

export type MediaChange =
  | { readonly kind: "local"; readonly mediaId: string }
  | { readonly kind: "remote"; readonly origin: string; readonly mediaId: string }
  | { readonly kind: "all" };

export type MediaChangeListener = ChangeListener<MediaChange>;

const CHANNEL = "mxcd_media_changed";
/** Bytes of payload per notification (PostgreSQL allows under 8000, with our sender prefix). */
const MAX_PAYLOAD = 7000;
/** Changes published one by one at most; more at once become `all`. */
const MAX_ITEMS = 1000;

export class MediaChanges {
  readonly #signal: ChangeSignal<MediaChange>;

  constructor(bus: NotificationBus) {
    this.#signal = new ChangeSignal(bus, CHANNEL, decode, { kind: "all" });
  }

  /** Announces a committed change, here at once and to the other processes. */
  publish(change: MediaChange): void {
    this.publishMany([change]);
  }

  /** Announces several committed changes (batched into as few notifications as fit). */
  publishMany(changes: readonly MediaChange[]): void {
    if (changes.length === 0) return;
    const lines =
      changes.length > MAX_ITEMS || changes.some((c) => c.kind === "all")
        ? ["*"]
        : [...new Set(changes.map(encode))];
    let payload = "";
    for (const line of lines) {
      if (payload.length > 0 && payload.length + line.length + 1 > MAX_PAYLOAD) {
        this.#signal.send(payload);
        payload = "";
      }
      payload = payload.length > 0 ? `${payload}\n${line}` : line;
    }
    this.#signal.send(payload);
  }

  /** Calls `listener` with every change from now on; returns the unsubscribe function. */
  subscribe(listener: MediaChangeListener): () => void {
    return this.#signal.subscribe(listener);
  }
}

function encode(change: MediaChange): string {
  switch (change.kind) {
    case "local":
      return `l ${change.mediaId}`;
    case "remote":
      return `r ${change.origin} ${change.mediaId}`;
    case "all":
      return "*";
    default: {
      const unknown: never = change;
      throw new Error(`unknown media change ${JSON.stringify(unknown)}`);
    }
  }
}

/** The changes of a payload; an unreadable line means "all" (never miss an invalidation). */
function decode(payload: string): MediaChange[] {
  return payload.split("\n").map((line): MediaChange => {
    const parts = line.split(" ");
    if (parts[0] === "l" && parts.length === 2) return { kind: "local", mediaId: parts[1]! };
    if (parts[0] === "r" && parts.length === 3) {
      return { kind: "remote", origin: parts[1]!, mediaId: parts[2]! };
    }
    return { kind: "all" };
  });
}
