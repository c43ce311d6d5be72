/**
 * The quarantine change feed as a live timeline (docs/console.md "Feed").
 *
 * The feed is read oldest first from a position (docs/quarantine-feed.md).
 * To show the most recent records first the console finds the current
 * position — `from` beyond it is refused with 400, so a doubling then a
 * halving search over `from` with `limit=1` finds it in about 2·log2(n)
 * small requests — reads the last 100 records, then long-polls
 * (`timeout=30000`) from there and prepends what arrives.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { type Api, ApiError, isAbort, messageOf } from "./api";
import { useConsole } from "./context";
import { formatTime } from "./format";
import { hrefOf, linkClick, navigate } from "./router";

const FEED = "/_synapse/admin/v1/media/quarantine_changes";
const HISTORY = 100;
/** Most records kept on screen. */
const KEEP = 1000;

interface Change {
  origin: string;
  media_id: string;
  quarantined: boolean;
  quarantined_by?: string | null;
  sha256?: string | null;
  ts?: number;
}
interface FeedPage {
  next_batch: number;
  changes: Change[];
}

async function valid(api: Api, from: number, signal: AbortSignal): Promise<boolean> {
  try {
    await api.get<FeedPage>(`${FEED}?from=${from}&limit=1`, signal);
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 400) return false;
    throw error;
  }
}

/** The feed's current position: the largest `from` it accepts. */
async function currentPosition(api: Api, signal: AbortSignal): Promise<number> {
  let low = 0;
  let high = 1;
  while (await valid(api, high, signal)) {
    low = high;
    high *= 2;
  }
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (await valid(api, mid, signal)) low = mid;
    else high = mid;
  }
  return low;
}

export function Feed(props: { query: URLSearchParams }) {
  const { api } = useConsole();
  const [changes, setChanges] = useState<(Change & { id: number })[]>([]);
  const [status, setStatus] = useState("Connecting…");
  const [error, setError] = useState<string | undefined>();
  const by = props.query.get("by") ?? "";
  const [byInput, setByInput] = useState(by);
  const live = useRef(true);

  useEffect(() => {
    const abort = new AbortController();
    const add = (page: FeedPage) => {
      const first = page.next_batch - page.changes.length + 1;
      const fresh = page.changes.map((c, i) => ({ ...c, id: first + i })).reverse();
      if (fresh.length > 0) setChanges((old) => [...fresh, ...old].slice(0, KEEP));
    };
    const run = async () => {
      const position = await currentPosition(api, abort.signal);
      const start = Math.max(0, position - HISTORY);
      const history = await api.get<FeedPage>(
        `${FEED}?from=${start}&limit=${HISTORY}`,
        abort.signal,
      );
      add(history);
      let from = history.next_batch;
      setStatus("Live: waiting for changes");
      while (!abort.signal.aborted) {
        try {
          const page = await api.get<FeedPage>(
            `${FEED}?from=${from}&limit=100&timeout=30000`,
            abort.signal,
          );
          add(page);
          from = page.next_batch;
          setError(undefined);
        } catch (e) {
          if (isAbort(e)) return;
          setError(`${messageOf(e)}; retrying`);
          await new Promise((resolve) => setTimeout(resolve, 5000));
        }
      }
    };
    run().catch((e) => isAbort(e) || setError(messageOf(e)));
    return () => {
      live.current = false;
      abort.abort();
    };
  }, [api]);

  const shown = changes.filter((c) => {
    if (by === "") return true;
    if (by === "release") return !c.quarantined;
    return c.quarantined_by === by;
  });

  return (
    <>
      <h1>Quarantine feed</h1>
      <form
        class="filters"
        aria-label="Feed filter"
        onSubmit={(event) => {
          event.preventDefault();
          const query = new URLSearchParams();
          if (byInput.trim()) query.set("by", byInput.trim());
          navigate(hrefOf({ name: "feed", query }), true);
        }}
      >
        <div class="field">
          <label for="feed-by">Quarantined by</label>
          <input
            id="feed-by"
            list="feed-by-options"
            value={byInput}
            placeholder="anyone; system; @admin:example.org; release"
            onInput={(e) => setByInput(e.currentTarget.value)}
          />
          <datalist id="feed-by-options">
            <option value="system" />
            <option value="release" />
          </datalist>
        </div>
        <div class="field field-buttons">
          <button type="submit" class="primary">
            Filter
          </button>
        </div>
      </form>
      <p class="summary" aria-live="polite">
        {status}
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <ol class="feed" aria-label="Quarantine changes, newest first">
        {shown.map((c) => (
          <li key={c.id} class={c.quarantined ? "feed-q" : "feed-r"} data-stream-id={c.id}>
            <span class="feed-what">{c.quarantined ? "quarantined" : "released"}</span>{" "}
            <a
              href={hrefOf({ name: "media", origin: c.origin, mediaId: c.media_id })}
              onClick={linkClick}
            >
              {c.origin}/{c.media_id}
            </a>{" "}
            {c.quarantined && <span class="feed-by">by {c.quarantined_by ?? "?"}</span>}{" "}
            <time class="feed-time">{formatTime(c.ts)}</time>
          </li>
        ))}
      </ol>
      {shown.length === 0 && <p class="empty">No changes{by ? " matching the filter" : ""} yet.</p>}
    </>
  );
}
