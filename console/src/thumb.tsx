/**
 * A media item's picture. Fetched with the admin's token (thumbnail
 * endpoint; quarantined media through the download with the admin bypass,
 * which only admins get and only this console asks for), turned into a
 * `blob:` URL, revoked when the tile goes away. Images start blurred; a
 * click on the picture (or its button) unblurs it.
 *
 * A picture is asked for only once its tile is on the screen or within
 * half a screen of it (NEAR_MARGIN): what the moderator sees loads first,
 * and a tile never scrolled to is never fetched. A tile scrolled away before
 * its turn leaves the queue again (a jump to the end of a long grid does
 * not fetch every tile on the way).
 *
 * Blur previews. A listing row may carry `blur_preview`: a tiny WebP the
 * server made once, already blurred (src/thumbnails/blur-preview.ts). While
 * such a tile is blurred it shows that preview, scaled to the tile, and
 * fetches nothing: a page of 60 blurred tiles costs no picture request and
 * no CSS blur filter. The picture itself is fetched when the tile is
 * unblurred (the preview stays until it has loaded). Rows without one
 * (older media, remote or quarantined media, other views' rows) fetch their
 * picture as below and blur it with CSS.
 *
 * Pictures load through one queue, at most MAX_LOADING at a time, in the
 * order tiles come near — the grid's order, so the first rows come first.
 * Chromium opens at most six HTTP/1.1 connections to a server; a page of 60
 * pictures asked all at once would hold all six, and an action taken
 * meanwhile (quarantine, the next page) would wait behind the rest of the
 * page. A tile that goes away leaves the queue (or aborts its fetch).
 */
import type { Ref } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
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

/**
 * How far outside the viewport a tile already counts as near: half the
 * viewport's height above and below (IntersectionObserver's `rootMargin`),
 * so the next rows are usually loaded before a scroll or `j` reaches them.
 */
const NEAR_MARGIN = "50% 0px";

/** Called with true when an element comes near the viewport, false when it leaves. */
const nearWatchers = new Map<Element, (near: boolean) => void>();
let nearObserver: IntersectionObserver | undefined;

/** Watches `element` coming near the viewport (one observer for every tile); returns the unwatch. */
function watchNear(element: Element, onChange: (near: boolean) => void): () => void {
  nearObserver ??= new IntersectionObserver(
    (entries) => {
      for (const entry of entries) nearWatchers.get(entry.target)?.(entry.isIntersecting);
    },
    { rootMargin: NEAR_MARGIN },
  );
  nearWatchers.set(element, onChange);
  nearObserver.observe(element);
  return () => {
    if (nearWatchers.get(element) !== onChange) return;
    nearWatchers.delete(element);
    nearObserver?.unobserve(element);
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

/** A blur preview as the listing sends it: a base64 WebP data: URL, nothing else. */
const BLUR_PREVIEW = /^data:image\/webp;base64,([A-Za-z0-9+/]+={0,2})$/;

/** The base64 of the row's blur preview, if it has a well-formed one. */
function previewOf(row: MediaRow): string | undefined {
  const preview = row.blur_preview;
  return typeof preview === "string" ? BLUR_PREVIEW.exec(preview)?.[1] : undefined;
}

/**
 * A blur preview's bytes as a `blob:` URL: the console's CSP allows no
 * `data:` images. A hundred bytes: decoded synchronously, with the tile.
 */
function previewUrl(base64: string): string {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return URL.createObjectURL(new Blob([bytes], { type: "image/webp" }));
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
  const previewData = picture && !row.quarantined_by ? previewOf(row) : undefined;
  const preview = useMemo(() => previewData && previewUrl(previewData), [previewData]);
  useEffect(() => () => preview && URL.revokeObjectURL(preview), [preview]);
  // Blurred with a preview: the picture is not needed (yet).
  const url = blurred && preview ? undefined : picture?.url;
  const cacheable = picture?.cacheable ?? false;
  const [src, setSrc] = useState<string | undefined>();
  const [failed, setFailed] = useState(false);
  const root = useRef<HTMLElement>(null);
  // A layout effect: the tile is watched before the grid's first paint, so
  // the observer's first answer (and the first fetches) come with that
  // frame, not one frame after it.
  useLayoutEffect(() => {
    // The tile (or detail panel) holding the picture: it stays while the
    // picture's own element changes from the placeholder to the button.
    const container = root.current?.parentElement;
    if (!url || !container) return;
    const abort = new AbortController();
    let objectUrl: string | undefined;
    let started = false;
    let cancel: (() => void) | undefined;
    setFailed(false);
    const load = () => {
      started = true;
      unwatch();
      return api.blob(url, abort.signal, cacheable).then(
        (blob) => {
          if (abort.signal.aborted) return;
          objectUrl = URL.createObjectURL(blob);
          setSrc(objectUrl);
        },
        (error: unknown) => {
          if (!isAbort(error)) setFailed(true);
        },
      );
    };
    const unwatch = watchNear(container, (near) => {
      if (near && !cancel) cancel = queued(load);
      else if (!near && cancel && !started) {
        cancel();
        cancel = undefined;
      }
    });
    return () => {
      unwatch();
      cancel?.();
      abort.abort();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      setSrc(undefined);
    };
  }, [api, url, cacheable]);

  const type = row.media_type ?? "unknown type";
  const shown = src ?? (failed ? undefined : preview);
  if (!shown) {
    return (
      <div class="thumb thumb-empty" aria-hidden="true" ref={root as Ref<HTMLDivElement>}>
        <span>{url && !failed ? "loading…" : type}</span>
      </div>
    );
  }
  return (
    <button
      type="button"
      class={blurred ? "thumb blurred" : "thumb"}
      ref={root as Ref<HTMLButtonElement>}
      aria-label={`Show the picture of ${describeMedia(row)}`}
      aria-pressed={!blurred}
      tabIndex={-1}
      onClick={props.onUnblur}
    >
      <img
        src={shown}
        class={src ? undefined : "preview"}
        alt={describeMedia(row)}
        draggable={false}
      />
    </button>
  );
}
