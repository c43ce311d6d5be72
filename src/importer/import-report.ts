/**
 * The counts and problem list of a Synapse import, kept in the job's stored
 * progress (so a stopped and resumed import still reports everything) and
 * printed as the final table. The problem list is bounded: the first
 * MAX_LISTED problems are listed, the rest only counted.
 */

/** The kinds of item an import walks. */
export const IMPORT_KINDS = [
  "local",
  "local_thumbnail",
  "remote",
  "remote_thumbnail",
  // URL-preview media (`url_cache` set), its thumbnails, and the preview cache table.
  "url_cache",
  "url_cache_thumbnail",
  "preview_cache",
] as const;
export type ImportKind = (typeof IMPORT_KINDS)[number];

/**
 * imported: now in mxcd; present: was already there (an earlier run);
 * skipped: deliberately not imported (a `/create`d id without bytes, URL
 * preview media and cache with `--skip-url-cache`, a preview-cache row that
 * cannot be mapped, thumbnails of media not imported); missing: a missing,
 * truncated or unreadable file, or an id that is not a safe path.
 */
export interface ImportCounts {
  imported: number;
  present: number;
  skipped: number;
  missing: number;
  /**
   * `--copy` only: the bytes disagree with the row (SHA-256 or length); the
   * item is not imported. Absent until the first one, so reference-mode
   * tallies (and progress stored before this field) keep their shape.
   */
  mismatched?: number;
}

export type ImportOutcome = keyof ImportCounts;

/** One listed problem: which item and what is wrong with its file. */
export interface ImportProblem {
  readonly kind: ImportKind;
  readonly item: string;
  readonly problem: string;
  /** Which column counted it; absent means "missing". */
  readonly outcome?: "missing" | "mismatched";
}

export interface ImportTally {
  counts: Record<ImportKind, ImportCounts>;
  problems: ImportProblem[];
  /** Problems beyond the listed ones. */
  problemsNotListed: number;
}

/** Problems listed one by one in the stored progress and the report. */
export const MAX_LISTED = 1000;

const zero = (): ImportCounts => ({ imported: 0, present: 0, skipped: 0, missing: 0 });

export function emptyTally(): ImportTally {
  return {
    counts: {
      local: zero(),
      local_thumbnail: zero(),
      remote: zero(),
      remote_thumbnail: zero(),
      url_cache: zero(),
      url_cache_thumbnail: zero(),
      preview_cache: zero(),
    },
    problems: [],
    problemsNotListed: 0,
  };
}

/** Counts one outcome (in place). */
export function count(tally: ImportTally, kind: ImportKind, outcome: ImportOutcome): void {
  // A tally stored by an older mxcd may lack the newer kinds (and `mismatched`).
  tally.counts[kind] ??= zero();
  tally.counts[kind][outcome] = (tally.counts[kind][outcome] ?? 0) + 1;
}

/** Counts a missing item and lists its problem (in place). */
export function missing(tally: ImportTally, kind: ImportKind, item: string, problem: string): void {
  count(tally, kind, "missing");
  if (tally.problems.length < MAX_LISTED) tally.problems.push({ kind, item, problem });
  else tally.problemsNotListed += 1;
}

/** Counts a mismatched item (`--copy`: not imported) and lists its problem (in place). */
export function mismatched(
  tally: ImportTally,
  kind: ImportKind,
  item: string,
  problem: string,
): void {
  count(tally, kind, "mismatched");
  if (tally.problems.length < MAX_LISTED) {
    tally.problems.push({ kind, item, problem, outcome: "mismatched" });
  } else tally.problemsNotListed += 1;
}

/** Total mismatched over every kind (the command exits non-zero when > 0). */
export function totalMismatched(tally: ImportTally): number {
  return Object.values(tally.counts).reduce((sum, c) => sum + (c.mismatched ?? 0), 0);
}

/** Total missing over every kind (the command exits non-zero when > 0). */
export function totalMissing(tally: ImportTally): number {
  return IMPORT_KINDS.reduce((sum, kind) => sum + (tally.counts[kind]?.missing ?? 0), 0);
}

/**
 * The report: one row per kind, then every listed problem. `copy` adds the
 * "mismatched" column (only `--copy` reads the bytes and can see one).
 */
export function formatReport(tally: ImportTally, dryRun: boolean, copy = false): string {
  const head = [
    "kind",
    dryRun ? "would import" : "imported",
    "already present",
    "skipped",
    "missing",
    ...(copy ? ["mismatched"] : []),
  ];
  const rows = IMPORT_KINDS.map((kind) => {
    const c = tally.counts[kind] ?? zero();
    const extra = copy ? [c.mismatched ?? 0] : [];
    return [kind, c.imported, c.present, c.skipped, c.missing, ...extra].map(String);
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  const out = [line(head), ...rows.map(line)];
  for (const p of tally.problems) {
    out.push(`${p.outcome ?? "missing"} ${p.kind} ${p.item}: ${p.problem}`);
  }
  if (tally.problemsNotListed > 0) out.push(`... and ${tally.problemsNotListed} more not listed`);
  return out.join("\n");
}
