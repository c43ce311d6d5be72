/**
 * A media item's picture. Fetched with the admin's token (thumbnail
 * endpoint; quarantined media through the download with the admin bypass,
 * which only admins get and only this console asks for), turned into a
 * `blob:` URL, revoked when the tile goes away. Images start blurred; a
 * click on the picture (or its button) unblurs it.
 *
 * Pictures load through one queue, at most MAX_LOADING at a time, in the
 * order tiles mount — the grid's order, so the first rows come first.
 * Chromium opens at most six HTTP/1.1 connections to a server; a page of 60
 * pictures asked all at once would hold all six, and an action taken
 * meanwhile (quarantine, the next page) would wait behind the rest of the
 * page. A tile that goes away leaves the queue (or aborts its fetch).
 */
import { useEffect, useState } from "preact/hooks";
import { type Api, isAbort, seg } from "./api";
import { describeMedia } from "./format";
import type { MediaKey, MediaRow } from "./media";

/** Pictures fetched at once: two of the browser's six connections stay free for the API. */
const MAX_LOADING = 4;

/** Waiting loads, first in first out; each starts when a slot is free. */
const waiting: (() => void)[] = [];
let loading = 0;

/** Runs `load` when a slot is free; the returned function cancels it if it has not started. */
function queued(load: () => Promise<unknown>): () => void {
  const start = () => {
    loading += 1;
    void load().finally(() => {
      loading -= 1;
      waiting.shift()?.();
    });
  };
  if (loading < MAX_LOADING) {
    start();
    return () => {};
  }
  waiting.push(start);
  return () => {
    const at = waiting.indexOf(start);
    if (at !== -1) waiting.splice(at, 1);
  };
}

/** Largest quarantined original fetched through the bypass for a tile. */
const MAX_BYPASS_BYTES = 8 * 1024 * 1024;

/**
 * The tile's thumbnail size: one that `thumbnail_sizes` pre-generates by
 * default (docs/configuration.md), so the server answers it from storage
 * (its fast path) instead of rendering one; 320×240 covers the tile's
 * picture (styles.css `.thumb`) at up to twice its CSS size.
 */
const TILE_THUMBNAIL = "width=320&height=240&method=scale";

/**
 * Where the tile's picture comes from, and whether the browser may cache it:
 * a thumbnail may (what any client of the server may fetch and keep); a
 * quarantined original through the bypass never is.
 */
function pictureOf(row: MediaRow, key: MediaKey): { url: string; cacheable: boolean } | undefined {
  const type = row.media_type ?? "";
  const at = `${seg(key.origin)}/${seg(key.mediaId)}`;
  if (row.quarantined_by) {
    if (!type.startsWith("image/") || (row.media_length ?? 0) > MAX_BYPASS_BYTES) return undefined;
    const url = `/_matrix/client/v1/media/download/${at}?admin_unsafely_bypass_quarantine=true`;
    return { url, cacheable: false };
  }
  if (!type.startsWith("image/") && !type.startsWith("video/")) return undefined;
  return { url: `/_matrix/client/v1/media/thumbnail/${at}?${TILE_THUMBNAIL}`, cacheable: true };
}

export function Thumb(props: {
  api: Api;
  row: MediaRow;
  mediaKey: MediaKey;
  blurred: boolean;
  onUnblur: () => void;
}) {
  const { api, row, mediaKey, blurred } = props;
  const picture = pictureOf(row, mediaKey);
  const url = picture?.url;
  const cacheable = picture?.cacheable ?? false;
  const [src, setSrc] = useState<string | undefined>();
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    if (!url) return;
    const abort = new AbortController();
    let objectUrl: string | undefined;
    setFailed(false);
    const cancel = queued(() =>
      api.blob(url, abort.signal, cacheable).then(
        (blob) => {
          if (abort.signal.aborted) return;
          objectUrl = URL.createObjectURL(blob);
          setSrc(objectUrl);
        },
        (error: unknown) => {
          if (!isAbort(error)) setFailed(true);
        },
      ),
    );
    return () => {
      cancel();
      abort.abort();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      setSrc(undefined);
    };
  }, [api, url, cacheable]);

  const type = row.media_type ?? "unknown type";
  if (!url || failed || !src) {
    return (
      <div class="thumb thumb-empty" aria-hidden="true">
        <span>{url && !failed ? "loading…" : type}</span>
      </div>
    );
  }
  return (
    <button
      type="button"
      class={blurred ? "thumb blurred" : "thumb"}
      aria-label={`Show the picture of ${describeMedia(row)}`}
      aria-pressed={!blurred}
      tabIndex={-1}
      onClick={props.onUnblur}
    >
      <img src={src} alt={describeMedia(row)} draggable={false} />
    </button>
  );
}
