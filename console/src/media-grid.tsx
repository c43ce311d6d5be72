/**
 * The media grid with keyboard triage (docs/console.md "Review grid").
 *
 * Keys (focus on a tile): j / → / ↓ next, k / ← / ↑ previous, Home / End,
 * x or Space select, a select all loaded, Escape clear the selection,
 * Enter open the detail, b blur / unblur, q quarantine, u unquarantine,
 * p protect, d delete (asks first). Actions apply to the selection, or to
 * the focused tile when nothing is selected; the toolbar does the same.
 *
 * Tiles use a roving tabindex: one tile (the focused one) is in the tab
 * order, so Tab leaves the grid instead of walking every tile.
 */
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { isAbort, messageOf } from "./api";
import { useConfirm } from "./confirm";
import { useConsole } from "./context";
import { formatBytes, formatTime } from "./format";
import { keyOf, type MediaAction, type MediaRow, mediaInfo, originOf, runAction } from "./media";
import { hrefOf, linkClick, navigate } from "./router";
import { Thumb } from "./thumb";

/** One page of a grid's source. */
export interface MediaPage {
  media: MediaRow[];
  next_batch?: string | number;
}

export type MediaSource = (from: string | undefined, signal: AbortSignal) => Promise<MediaPage>;

const ACTION_KEYS: Record<string, MediaAction> = {
  q: "quarantine",
  u: "unquarantine",
  p: "protect",
  d: "delete",
};

const PAST: Record<MediaAction, string> = {
  quarantine: "Quarantined",
  unquarantine: "Released",
  protect: "Protected",
  unprotect: "Unprotected",
  delete: "Deleted",
};

export function MediaGrid(props: {
  source: MediaSource;
  /** Changes when the source does (new filters): the grid starts over. */
  sourceKey: string;
  label: string;
  autoFocus?: boolean;
  /** Called after any action changed media (a view's summary refreshes). */
  onChanged?: () => void;
  /** Shown when the source has no media. */
  empty?: string;
  /** A secondary grid (detail's duplicates): no key help line. */
  compact?: boolean;
}) {
  const { api, serverName, announce } = useConsole();
  const [rows, setRows] = useState<MediaRow[]>([]);
  const [next, setNext] = useState<string | undefined>();
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | undefined>();
  const [focus, setFocus] = useState(0);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [unblurred, setUnblurred] = useState<ReadonlySet<string>>(new Set());
  const [busy, setBusy] = useState(false);
  const confirm = useConfirm();
  const listRef = useRef<HTMLUListElement>(null);
  const abortRef = useRef<AbortController | undefined>(undefined);
  const keyFor = (row: MediaRow) => keyOf(row, serverName);

  const load = async (from: string | undefined, reset: boolean) => {
    abortRef.current?.abort();
    const abort = new AbortController();
    abortRef.current = abort;
    setLoading(true);
    setError(undefined);
    try {
      const page = await props.source(from, abort.signal);
      setRows((old) => (reset ? page.media : [...old, ...page.media]));
      setNext(page.next_batch === undefined ? undefined : String(page.next_batch));
    } catch (e) {
      if (!isAbort(e)) setError(messageOf(e));
    } finally {
      if (!abort.signal.aborted) setLoading(false);
    }
  };

  useEffect(() => {
    setRows([]);
    setFocus(0);
    setSelected(new Set());
    void load(undefined, true);
    return () => abortRef.current?.abort();
  }, [props.sourceKey]);

  // Keep DOM focus on the focused tile once the grid has focus (or asked for it).
  // A layout effect: focus moves in the same task as the key press's render.
  const wantFocus = useRef(props.autoFocus ?? false);
  useLayoutEffect(() => {
    if (!wantFocus.current || rows.length === 0) return;
    const tile = listRef.current?.querySelector<HTMLElement>(`[data-index="${focus}"]`);
    tile?.focus();
  }, [focus, rows.length]);

  const targets = (): MediaRow[] => {
    if (selected.size > 0) return rows.filter((row) => selected.has(keyFor(row)));
    const row = rows[focus];
    return row ? [row] : [];
  };

  // Actions run one after another, each on the tiles chosen when its key was
  // pressed: a fast triager's keys are queued, never dropped.
  const queue = useRef<Promise<void>>(Promise.resolve());
  const act = (action: MediaAction) => {
    const chosen = targets();
    if (chosen.length === 0) return;
    queue.current = queue.current.then(() => perform(action, chosen)).catch(() => {});
  };

  const perform = async (action: MediaAction, chosen: MediaRow[]) => {
    if (action === "delete") {
      const names = chosen.slice(0, 5).map((r) => r.upload_name || r.media_id);
      const yes = await confirm.ask(
        chosen.length === 1 ? "Delete this media?" : `Delete ${chosen.length} media?`,
        <>
          <p>
            Its bytes, thumbnails and record are removed for good; this cannot be undone.
            {chosen.length > 1 && ` Total ${formatBytes(sum(chosen))}.`}
          </p>
          <ul>
            {names.map((name) => (
              <li key={name}>{name}</li>
            ))}
            {chosen.length > names.length && <li>and {chosen.length - names.length} more</li>}
          </ul>
        </>,
        "Delete",
        true,
      );
      if (!yes) return;
    }
    setBusy(true);
    let failed = 0;
    for (const row of chosen) {
      try {
        await runAction(api, action, { origin: originOf(row, serverName), mediaId: row.media_id });
      } catch (e) {
        failed += 1;
        announce(`${row.media_id}: ${messageOf(e)}`, "error");
      }
    }
    await refresh(chosen, action);
    setBusy(false);
    setSelected(new Set());
    if (failed < chosen.length) {
      announce(`${PAST[action]} ${chosen.length - failed} media`);
    }
    props.onChanged?.();
  };

  /** Reads back the rows an action touched (and their hash copies in the grid). */
  const refresh = async (touched: MediaRow[], action: MediaAction) => {
    const hashes = new Set(touched.map((r) => r.sha256).filter(Boolean));
    const keys = new Set(touched.map(keyFor));
    const affected = rows.filter(
      (row) =>
        keys.has(keyFor(row)) ||
        (action !== "delete" && action !== "protect" && row.sha256 && hashes.has(row.sha256)),
    );
    const fresh = new Map<string, MediaRow | undefined>();
    for (const row of affected) {
      const info = await mediaInfo(api, {
        origin: originOf(row, serverName),
        mediaId: row.media_id,
      });
      fresh.set(keyFor(row), info && { ...row, ...info, origin: originOf(row, serverName) });
    }
    setRows((old) => {
      const out: MediaRow[] = [];
      for (const row of old) {
        const key = keyFor(row);
        if (!fresh.has(key)) out.push(row);
        else if (fresh.get(key)) out.push(fresh.get(key)!);
      }
      return out;
    });
    setFocus((f) =>
      Math.min(f, Math.max(0, rows.length - 1 - (action === "delete" ? touched.length : 0))),
    );
  };

  const toggle = (key: string) =>
    setSelected((old) => {
      const out = new Set(old);
      if (out.has(key)) out.delete(key);
      else out.add(key);
      return out;
    });

  const toggleBlur = (key: string) =>
    setUnblurred((old) => {
      const out = new Set(old);
      if (out.has(key)) out.delete(key);
      else out.add(key);
      return out;
    });

  const move = (to: number) => {
    if (rows.length === 0) return;
    const target = Math.max(0, Math.min(rows.length - 1, to));
    wantFocus.current = true;
    setFocus(target);
    if (to >= rows.length - 1 && next && !loading) void load(next, false);
  };

  const onKeyDown = (event: KeyboardEvent) => {
    const target = event.target as HTMLElement;
    if (confirm.open || event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^(INPUT|SELECT|TEXTAREA)$/.test(target.tagName) && event.key !== "Escape") {
      if ((target as HTMLInputElement).type !== "checkbox") return;
    }
    const onTile = target.dataset.index !== undefined;
    const row = rows[focus];
    const key = event.key;
    let handled = true;
    if (key === "j" || key === "ArrowDown" || key === "ArrowRight") move(focus + 1);
    else if (key === "k" || key === "ArrowUp" || key === "ArrowLeft") move(focus - 1);
    else if (key === "Home") move(0);
    else if (key === "End") move(rows.length - 1);
    else if (key === "x" || (key === " " && onTile)) row && toggle(keyFor(row));
    else if (key === "a") setSelected(new Set(rows.map(keyFor)));
    else if (key === "Escape") setSelected(new Set());
    else if (key === "b") row && toggleBlur(keyFor(row));
    else if (key === "Enter" && onTile && row) {
      navigate(hrefOf({ name: "media", origin: originOf(row, serverName), mediaId: row.media_id }));
    } else if (ACTION_KEYS[key]) void act(ACTION_KEYS[key]);
    else handled = false;
    if (handled) event.preventDefault();
  };

  const count = selected.size > 0 ? `${selected.size} selected` : "focused media";
  return (
    <section class="grid-section" aria-label={props.label}>
      <div class="toolbar" role="toolbar" aria-label={`Actions on the ${count}`}>
        <span class="toolbar-target" aria-live="polite">
          {selected.size > 0 ? `${selected.size} selected` : "Acts on the focused media"}
        </span>
        <button type="button" disabled={busy} onClick={() => act("quarantine")}>
          Quarantine <kbd>q</kbd>
        </button>
        <button type="button" disabled={busy} onClick={() => act("unquarantine")}>
          Unquarantine <kbd>u</kbd>
        </button>
        <button type="button" disabled={busy} onClick={() => act("protect")}>
          Protect <kbd>p</kbd>
        </button>
        <button type="button" class="danger" disabled={busy} onClick={() => act("delete")}>
          Delete <kbd>d</kbd>
        </button>
        <button type="button" onClick={() => setSelected(new Set(rows.map(keyFor)))}>
          Select all <kbd>a</kbd>
        </button>
        {selected.size > 0 && (
          <button type="button" onClick={() => setSelected(new Set())}>
            Clear selection <kbd>Esc</kbd>
          </button>
        )}
      </div>
      {!props.compact && (
        <p id="grid-help" class="help">
          Keys: <kbd>j</kbd>/<kbd>k</kbd> or arrows move, <kbd>x</kbd> select, <kbd>Enter</kbd>{" "}
          details, <kbd>b</kbd> unblur, <kbd>q</kbd> quarantine, <kbd>u</kbd> unquarantine,{" "}
          <kbd>p</kbd> protect, <kbd>d</kbd> delete.
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <ul
        class="grid"
        ref={listRef}
        onKeyDown={onKeyDown}
        aria-describedby={props.compact ? undefined : "grid-help"}
      >
        {rows.map((row, index) => {
          const key = keyFor(row);
          const origin = originOf(row, serverName);
          const isFocused = index === focus;
          const isSelected = selected.has(key);
          const name = row.upload_name || row.media_id;
          const classes = ["tile"];
          if (isFocused) classes.push("focused");
          if (isSelected) classes.push("selected");
          if (row.quarantined_by) classes.push("quarantined");
          return (
            <li
              key={key}
              class={classes.join(" ")}
              tabIndex={isFocused ? 0 : -1}
              data-index={index}
              data-media-id={row.media_id}
              aria-label={`${name}, ${row.media_type ?? "unknown type"}${row.quarantined_by ? ", quarantined" : ""}${row.safe_from_quarantine ? ", protected" : ""}${isSelected ? ", selected" : ""}`}
              onFocus={(event) => {
                if (event.target === event.currentTarget) {
                  wantFocus.current = true;
                  setFocus(index);
                }
              }}
            >
              <Thumb
                api={api}
                row={row}
                mediaKey={{ origin, mediaId: row.media_id }}
                blurred={!unblurred.has(key)}
                onUnblur={() => {
                  setFocus(index);
                  toggleBlur(key);
                }}
              />
              <div class="tile-meta">
                <label class="tile-select">
                  <input
                    type="checkbox"
                    checked={isSelected}
                    tabIndex={isFocused ? 0 : -1}
                    onChange={() => toggle(key)}
                  />
                  <span class="sr-only">Select {name}</span>
                </label>
                <a
                  class="tile-name"
                  href={hrefOf({ name: "media", origin, mediaId: row.media_id })}
                  onClick={linkClick}
                  tabIndex={isFocused ? 0 : -1}
                  title={name}
                >
                  {name}
                </a>
                <div class="tile-line">
                  {row.media_type ?? "?"} · {formatBytes(row.media_length)}
                </div>
                <div class="tile-line" title={row.user_id ?? origin}>
                  {row.user_id ?? origin}
                </div>
                <div class="tile-line">{formatTime(row.created_ts)}</div>
                <div class="badges">
                  {row.quarantined_by && (
                    <span class="badge badge-q">quarantined by {row.quarantined_by}</span>
                  )}
                  {row.safe_from_quarantine && <span class="badge badge-p">protected</span>}
                  {row.distance !== undefined && <span class="badge">distance {row.distance}</span>}
                </div>
              </div>
            </li>
          );
        })}
      </ul>
      {!loading && rows.length === 0 && !error && <p class="empty">{props.empty ?? "No media."}</p>}
      <div class="more">
        {loading && <span aria-live="polite">Loading…</span>}
        {!loading && next && (
          <button type="button" onClick={() => load(next, false)}>
            Load more
          </button>
        )}
      </div>
      {confirm.dialog}
    </section>
  );
}

function sum(rows: MediaRow[]): number {
  return rows.reduce((total, row) => total + (row.media_length ?? 0), 0);
}
