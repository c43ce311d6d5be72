/**
 * A media item's picture. Fetched with the admin's token (thumbnail
 * endpoint; quarantined media through the download with the admin bypass,
 * which only admins get and only this console asks for), turned into a
 * `blob:` URL, revoked when the tile goes away. Images start blurred; a
 * click on the picture (or its button) unblurs it.
 */
import { useEffect, useState } from "preact/hooks";
import { type Api, isAbort, seg } from "./api";
import { describeMedia } from "./format";
import type { MediaKey, MediaRow } from "./media";

/** Largest quarantined original fetched through the bypass for a tile. */
const MAX_BYPASS_BYTES = 8 * 1024 * 1024;

function pictureUrl(row: MediaRow, key: MediaKey): string | undefined {
  const type = row.media_type ?? "";
  const at = `${seg(key.origin)}/${seg(key.mediaId)}`;
  if (row.quarantined_by) {
    if (!type.startsWith("image/") || (row.media_length ?? 0) > MAX_BYPASS_BYTES) return undefined;
    return `/_matrix/client/v1/media/download/${at}?admin_unsafely_bypass_quarantine=true`;
  }
  if (!type.startsWith("image/") && !type.startsWith("video/")) return undefined;
  return `/_matrix/client/v1/media/thumbnail/${at}?width=320&height=240&method=scale`;
}

export function Thumb(props: {
  api: Api;
  row: MediaRow;
  mediaKey: MediaKey;
  blurred: boolean;
  onUnblur: () => void;
}) {
  const { api, row, mediaKey, blurred } = props;
  const url = pictureUrl(row, mediaKey);
  const [src, setSrc] = useState<string | undefined>();
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    if (!url) return;
    const abort = new AbortController();
    let objectUrl: string | undefined;
    setFailed(false);
    api.blob(url, abort.signal).then(
      (blob) => {
        objectUrl = URL.createObjectURL(blob);
        setSrc(objectUrl);
      },
      (error: unknown) => {
        if (!isAbort(error)) setFailed(true);
      },
    );
    return () => {
      abort.abort();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      setSrc(undefined);
    };
  }, [api, url]);

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
