/** The review grid: recent media server-wide, newest first, filtered (docs/console.md). */
import { useEffect, useState } from "preact/hooks";
import { queryString } from "./api";
import { useConsole } from "./context";
import { Filters } from "./filters";
import { formatBytes } from "./format";
import { MediaGrid, type MediaPage } from "./media-grid";
import { hrefOf, navigate } from "./router";

const LISTING = "/_mxcd/admin/v1/media";
const PAGE = 60;

/** The listing's page after `from` (the first page without it). */
export const listingPath = (filters: Record<string, string>, from?: string) =>
  `${LISTING}${queryString({ ...filters, limit: PAGE, from })}`;

/** The count and bytes of what `filters` match. */
export const summaryPath = (filters: Record<string, string>) =>
  `${LISTING}/summary${queryString(filters)}`;

/** Count and bytes of what filters match (`/media/summary`). */
export function useSummary(filters: Record<string, string>, version: number) {
  const { api } = useConsole();
  const [summary, setSummary] = useState<{ count: number; total_bytes: number } | undefined>();
  const key = JSON.stringify(filters);
  useEffect(() => {
    const abort = new AbortController();
    setSummary(undefined);
    api
      .get<{ count: number; total_bytes: number }>(summaryPath(filters), abort.signal)
      .then(setSummary, () => {});
    return () => abort.abort();
  }, [key, version]);
  return summary;
}

/** A grid source over the listing API with these filters. */
export function useListingSource(filters: Record<string, string>) {
  const { api } = useConsole();
  return (from: string | undefined, signal: AbortSignal) =>
    api.get<MediaPage>(listingPath(filters, from), signal);
}

export function Review(props: { query: URLSearchParams }) {
  const filters = Object.fromEntries(props.query.entries());
  const [version, setVersion] = useState(0);
  const summary = useSummary(filters, version);
  const source = useListingSource(filters);
  const key = props.query.toString();
  return (
    <>
      <h1>Review</h1>
      <Filters
        key={key}
        query={props.query}
        onApply={(query) => navigate(hrefOf({ name: "grid", query }))}
      />
      <p class="summary" aria-live="polite">
        {summary ? `${summary.count} media, ${formatBytes(summary.total_bytes)}` : " "}
      </p>
      <MediaGrid
        source={source}
        sourceKey={key}
        label="Media, newest first"
        autoFocus
        onChanged={() => setVersion((v) => v + 1)}
      />
    </>
  );
}
