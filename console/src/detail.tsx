/**
 * One media item (docs/console.md "Media detail"): its picture, metadata,
 * every hash, where it is referenced, exact duplicates (same SHA-256) and
 * near duplicates (PDQ, with the distance), and "quarantine all of these".
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { isAbort, messageOf, queryString, seg } from "./api";
import { Caption } from "./caption";
import { useConfirm } from "./confirm";
import { useConsole } from "./context";
import { formatBytes, formatTime } from "./format";
import { type MediaAction, type MediaRow, mediaInfo, originOf, runAction } from "./media";
import { MediaGrid, type MediaPage } from "./media-grid";
import { hrefOf, linkClick, navigate } from "./router";
import { Thumb } from "./thumb";

interface Reference {
  kind: string;
  room_id?: string | null;
  event_id?: string | null;
  user_id?: string | null;
}

const MXCD = "/_mxcd/admin/v1/media";
/** Events whose text (caption or body) the references table reads, at most. */
const MAX_CAPTIONS = 20;

export function Detail(props: { origin: string; mediaId: string }) {
  const { api, announce, serverName } = useConsole();
  const key = { origin: props.origin, mediaId: props.mediaId };
  const at = `${seg(props.origin)}/${seg(props.mediaId)}`;
  const [row, setRow] = useState<MediaRow | null | undefined>();
  const [error, setError] = useState<string | undefined>();
  const [refs, setRefs] = useState<{ references: Reference[]; truncated: boolean } | string>();
  const [unblurred, setUnblurred] = useState(false);
  const [version, setVersion] = useState(0);
  const [near, setNear] = useState<MediaRow[]>([]);
  const confirm = useConfirm();
  // Opening a detail (Enter on a tile, a link) removes what had focus: the
  // title takes it once, so keyboard users start at the top of the new view.
  const titleRef = useRef<HTMLHeadingElement>(null);
  const titled = useRef(false);
  useEffect(() => {
    if (row && !titled.current && titleRef.current) {
      titled.current = true;
      titleRef.current.focus();
    }
  }, [row]);

  useEffect(() => {
    const abort = new AbortController();
    mediaInfo(api, key).then(
      (info) => setRow(info ?? null),
      (e) => setError(messageOf(e)),
    );
    api
      .get<{ references: Reference[]; truncated: boolean }>(
        `${MXCD}/${at}/references`,
        abort.signal,
      )
      .then(setRefs, (e) => isAbort(e) || setRefs(messageOf(e)));
    return () => abort.abort();
  }, [at, version]);

  if (error)
    return (
      <p class="error" role="alert">
        {error}
      </p>
    );
  if (row === undefined) return <p aria-live="polite">Loading…</p>;
  if (row === null)
    return (
      <p class="error" role="alert">
        No such media: {props.origin}/{props.mediaId}
      </p>
    );

  const local = props.origin === serverName;
  const act = async (action: MediaAction) => {
    if (action === "delete") {
      const yes = await confirm.ask(
        "Delete this media?",
        <p>Its bytes, thumbnails and record are removed for good.</p>,
        "Delete",
        true,
      );
      if (!yes) return;
    }
    try {
      await runAction(api, action, key);
      announce(`${action} done`);
      if (action === "delete") navigate(hrefOf({ name: "grid", query: new URLSearchParams() }));
      else setVersion((v) => v + 1);
    } catch (e) {
      announce(messageOf(e), "error");
    }
  };

  const quarantineAll = async (rows: MediaRow[], what: string) => {
    const free = rows.filter((r) => !r.quarantined_by && !r.safe_from_quarantine);
    if (free.length === 0) {
      announce(`Every one of the ${what} is already quarantined or protected`);
      return;
    }
    const yes = await confirm.ask(
      `Quarantine ${free.length} ${what}?`,
      <p>
        {free.length} media ({formatBytes(free.reduce((t, r) => t + (r.media_length ?? 0), 0))})
        will stop being served; protected media is left alone.
      </p>,
      "Quarantine all",
      true,
    );
    if (!yes) return;
    let done = 0;
    for (const r of free) {
      try {
        await runAction(api, "quarantine", {
          origin: originOf(r, serverName),
          mediaId: r.media_id,
        });
        done += 1;
      } catch (e) {
        announce(`${r.media_id}: ${messageOf(e)}`, "error");
      }
    }
    announce(`Quarantined ${done} ${what}`);
    setVersion((v) => v + 1);
  };

  const exactSource = async (from: string | undefined, signal: AbortSignal): Promise<MediaPage> => {
    if (!row.sha256) return { media: [] };
    const page = await api.get<MediaPage>(
      `${MXCD}/lookup${queryString({ sha256: row.sha256, from })}`,
      signal,
    );
    return {
      ...page,
      media: page.media.filter(
        (r) => !(originOf(r, serverName) === props.origin && r.media_id === props.mediaId),
      ),
    };
  };
  const nearSource = async (from: string | undefined, signal: AbortSignal): Promise<MediaPage> => {
    const page = await api.get<MediaPage & { reason?: string }>(
      `${MXCD}/${at}/similar${queryString({ from })}`,
      signal,
    );
    setNear((old) => (from ? [...old, ...page.media] : page.media));
    return page;
  };

  const name = row.upload_name || row.media_id;
  return (
    <article class="detail">
      <h1 ref={titleRef} tabIndex={-1}>
        {name}
      </h1>
      <div class="detail-top">
        <div class="detail-picture">
          <Thumb
            api={api}
            row={row}
            mediaKey={key}
            blurred={!unblurred}
            onUnblur={() => setUnblurred(!unblurred)}
          />
          <div class="detail-actions">
            <button type="button" onClick={() => act("quarantine")} disabled={!!row.quarantined_by}>
              Quarantine
            </button>
            <button
              type="button"
              onClick={() => act("unquarantine")}
              disabled={!row.quarantined_by}
            >
              Unquarantine
            </button>
            {local && (
              <button
                type="button"
                onClick={() => act(row.safe_from_quarantine ? "unprotect" : "protect")}
              >
                {row.safe_from_quarantine ? "Unprotect" : "Protect"}
              </button>
            )}
            {local && (
              <button type="button" class="danger" onClick={() => act("delete")}>
                Delete
              </button>
            )}
          </div>
        </div>
        <dl class="meta">
          <dt>Media</dt>
          <dd>
            <code>
              mxc://{props.origin}/{props.mediaId}
            </code>
          </dd>
          <dt>File name</dt>
          <dd>{row.upload_name ?? "—"}</dd>
          <dt>Type</dt>
          <dd>{row.media_type ?? "—"}</dd>
          <dt>Size</dt>
          <dd>
            {formatBytes(row.media_length)} ({row.media_length ?? "?"} bytes)
          </dd>
          <dt>Uploader</dt>
          <dd>
            {row.user_id ? (
              <a href={hrefOf({ name: "user", userId: row.user_id })} onClick={linkClick}>
                {row.user_id}
              </a>
            ) : (
              "—"
            )}
          </dd>
          <dt>Uploaded</dt>
          <dd>{formatTime(row.created_ts)}</dd>
          <dt>Last access</dt>
          <dd>{formatTime(row.last_access_ts)}</dd>
          <dt>Quarantine</dt>
          <dd>{row.quarantined_by ? `quarantined by ${row.quarantined_by}` : "not quarantined"}</dd>
          <dt>Protected</dt>
          <dd>{row.safe_from_quarantine ? "yes" : "no"}</dd>
          <dt>SHA-256</dt>
          <dd>
            <code class="hash">{row.sha256 ?? "—"}</code>
          </dd>
          <dt>MD5</dt>
          <dd>
            <code class="hash">{row.md5 ?? "not computed"}</code>
          </dd>
          <dt>PDQ</dt>
          <dd>
            <code class="hash">{row.pdq ?? "none"}</code>
            {row.pdq_quality !== null &&
              row.pdq_quality !== undefined &&
              ` (quality ${row.pdq_quality})`}
          </dd>
        </dl>
      </div>

      <h2>References</h2>
      {refs === undefined && <p>Loading…</p>}
      {typeof refs === "string" && <p class="error">{refs}</p>}
      {typeof refs === "object" &&
        (refs.references.length === 0 ? (
          <p>Not referenced by any room event or profile.</p>
        ) : (
          <table class="refs">
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">Room</th>
                <th scope="col">Event</th>
                <th scope="col">User</th>
                <th scope="col">Caption or body</th>
              </tr>
            </thead>
            <tbody>
              {refs.references.map((r, i) => (
                <tr key={`${r.kind}${r.event_id ?? ""}${r.user_id ?? ""}${i}`}>
                  <td>{r.kind}</td>
                  <td>
                    {r.room_id ? (
                      <a href={hrefOf({ name: "room", roomId: r.room_id })} onClick={linkClick}>
                        {r.room_id}
                      </a>
                    ) : (
                      "—"
                    )}
                  </td>
                  <td>
                    <code>{r.event_id ?? "—"}</code>
                  </td>
                  <td>
                    {r.user_id ? (
                      <a href={hrefOf({ name: "user", userId: r.user_id })} onClick={linkClick}>
                        {r.user_id}
                      </a>
                    ) : (
                      "—"
                    )}
                  </td>
                  <td>
                    {r.room_id && r.event_id && i < MAX_CAPTIONS ? (
                      <Caption roomId={r.room_id} eventId={r.event_id} />
                    ) : (
                      "—"
                    )}
                  </td>
                </tr>
              ))}
              {refs.truncated && (
                <tr>
                  <td colSpan={5}>… more references not shown</td>
                </tr>
              )}
            </tbody>
          </table>
        ))}

      <h2>Exact duplicates (same SHA-256)</h2>
      <MediaGrid
        source={exactSource}
        sourceKey={`exact ${at} ${version}`}
        label="Exact duplicates"
        compact
        empty="No other copy."
      />

      <h2>Near duplicates (PDQ)</h2>
      <button
        type="button"
        class="danger"
        disabled={near.length === 0}
        onClick={() => quarantineAll(near, "near duplicates")}
      >
        Quarantine all of these near duplicates
      </button>
      <MediaGrid
        source={nearSource}
        sourceKey={`near ${at} ${version}`}
        label="Near duplicates"
        compact
        empty="No near duplicate (or no PDQ hash)."
      />
      {confirm.dialog}
    </article>
  );
}
