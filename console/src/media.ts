/**
 * Media rows as the admin APIs return them, and the actions the console
 * takes on one item (Synapse's media admin API: docs/admin-api.md).
 */
import { type Api, seg } from "./api";

/** A media row: the listing's fields, or Synapse's `media_info` (lookup, similar). */
export interface MediaRow {
  media_id: string;
  /** The listing's origin (our server name for local media). */
  origin?: string;
  /** `media_info`'s: null for local media. */
  media_origin?: string | null;
  user_id?: string | null;
  media_type?: string | null;
  media_length?: number | null;
  upload_name?: string | null;
  created_ts?: number | null;
  last_access_ts?: number | null;
  quarantined_by?: string | null;
  safe_from_quarantine?: boolean | null;
  sha256?: string | null;
  md5?: string | null;
  pdq?: string | null;
  pdq_quality?: number | null;
  /** The listing's blur preview: a tiny blurred WebP as a data: URL (console/src/thumb.tsx). */
  blur_preview?: string;
  /** PDQ distance (similar / lookup answers). */
  distance?: number;
}

/** Where a media item lives: its origin server and id. */
export interface MediaKey {
  origin: string;
  mediaId: string;
}

/** The server the row's media belongs to. */
export function originOf(row: MediaRow, serverName: string): string {
  return row.origin ?? row.media_origin ?? serverName;
}

export function keyOf(row: MediaRow, serverName: string): string {
  return `${originOf(row, serverName)}/${row.media_id}`;
}

const ADMIN = "/_synapse/admin/v1";

export type MediaAction = "quarantine" | "unquarantine" | "protect" | "unprotect" | "delete";

/** Runs one action on one media item through Synapse's admin API. */
export async function runAction(api: Api, action: MediaAction, key: MediaKey): Promise<void> {
  const at = `${seg(key.origin)}/${seg(key.mediaId)}`;
  switch (action) {
    case "quarantine":
    case "unquarantine":
      await api.post(`${ADMIN}/media/${action}/${at}`);
      return;
    case "protect":
    case "unprotect":
      await api.post(`${ADMIN}/media/${action}/${seg(key.mediaId)}`);
      return;
    case "delete":
      await api.json("DELETE", `${ADMIN}/media/${at}`);
      return;
  }
}

/** The item's current `media_info`, or undefined when it is gone. */
export async function mediaInfo(api: Api, key: MediaKey): Promise<MediaRow | undefined> {
  try {
    const body = await api.get<{ media_info: MediaRow }>(
      `${ADMIN}/media/${seg(key.origin)}/${seg(key.mediaId)}`,
    );
    return body.media_info;
  } catch (error) {
    if ((error as { status?: number }).status === 404) return undefined;
    throw error;
  }
}
