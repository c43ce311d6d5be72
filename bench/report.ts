/**
 * The results as Markdown: machine, settings, a summary table with each
 * figure, the reference measured in the same run, the ratio and the target
 * where an issue gives one; then one section per figure. The same text is
 * printed and written to bench/RESULTS.md.
 */
import { type AdminResult, adminTable } from "./admin-bench.js";
import { type AttachedResult, attachedSection, attachedSummaryRows } from "./attached-bench.js";
import type { ClusterResult } from "./cluster-bench.js";
import type { DownloadResult, DownloadsResult, Throughput } from "./download-bench.js";
import type { TtfbResult } from "./federation-ttfb-bench.js";
import { ttfbTable } from "./federation-ttfb-bench.js";
import { type FeedResult, feedTable } from "./quarantine-feed-bench.js";
import { type RoomMediaRun, roomMediaTable } from "./room-media-bench.js";
import type { MachineDescription } from "./support/machine.js";
import { count, duration, markdownTable, mib, type Table, times } from "./support/markdown.js";
import type { ThumbnailResult } from "./thumbnail-bench.js";
import type { UploadResult } from "./upload-bench.js";

/** How one part of the run ended. */
export type Outcome<T> =
  | { readonly status: "ok"; readonly value: T; readonly seconds: number }
  | { readonly status: "failed"; readonly error: string }
  | { readonly status: "skipped"; readonly reason: string };

/** Each part's outcome; absent when MXCD_BENCH_ONLY left it out. */
export interface SectionResults {
  downloads?: Outcome<DownloadsResult> | undefined;
  attached?: Outcome<AttachedResult> | undefined;
  upload?: Outcome<UploadResult> | undefined;
  thumbnails?: Outcome<ThumbnailResult> | undefined;
  cluster?: Outcome<ClusterResult> | undefined;
  admin?: Outcome<AdminResult[]> | undefined;
  feed?: Outcome<FeedResult[]> | undefined;
  roomMedia?: Outcome<RoomMediaRun> | undefined;
  federation?: Outcome<TtfbResult> | undefined;
}

/** Everything one run measured, and how. */
export interface BenchReport {
  readonly date: Date;
  /** Wall-clock seconds of the whole run. */
  readonly totalSeconds: number;
  readonly machine: MachineDescription;
  readonly settings: readonly string[];
  readonly results: SectionResults;
}

/** Targets from the issues (3 and 8). */
export const TARGETS = {
  /** mxcd ÷ nginx payload throughput, per download size label. */
  download: { "1 MiB": 0.5, "64 MiB": 0.5 } as Record<string, number>,
  /** sha256sum seconds ÷ upload seconds. */
  upload: 0.7,
  /** Peak − baseline RSS during the upload, bytes. */
  rssGrowth: 64 * 1024 ** 2,
};

type Row = readonly string[];

const SUMMARY_HEADER = ["Figure", "mxcd", "Reference (same run)", "Ratio", "Target", "Met"];

/** The full report as Markdown. */
export function renderReport(report: BenchReport): string {
  const { results } = report;
  const minutes = report.totalSeconds / 60;
  return [
    "# mxcd benchmark results",
    "",
    `Measured ${report.date.toISOString()} with \`npm run bench\` (see bench/README.md); the run took ${minutes.toFixed(1)} minutes.`,
    "",
    "## Machine",
    "",
    ...report.machine.map(([name, value]) => `- ${name}: ${value}`),
    "",
    "## Settings",
    "",
    ...report.settings.map((line) => `- ${line}`),
    "",
    "## Summary",
    "",
    ...markdownTable({ header: SUMMARY_HEADER, rows: summaryRows(results) }),
    "",
    "Ratios are mxcd ÷ reference for rates (higher is better) and reference time ÷ mxcd time for",
    "the upload; for the size-scaling rows, time at the large size ÷ time at the small size",
    "(1.00× = independent of size). MiB = 2^20 bytes. Details and the remaining figures below.",
    "",
    ...section("Downloads vs nginx", results.downloads, downloadsSection),
    ...section(
      "Attached mode: warm-token downloads vs standalone and nginx",
      results.attached,
      attachedSection,
    ),
    ...section("Upload vs sha256sum", results.upload, uploadSection),
    ...section("Thumbnails per second vs vipsthumbnail", results.thumbnails, thumbnailSection),
    ...section(
      "Three processes vs one (PostgreSQL, behind nginx)",
      results.cluster,
      clusterSection,
    ),
    ...section("Media admin API at scale", results.admin, adminSection),
    ...section("Quarantine feed: page latency vs feed size", results.feed, (r) => [
      ...markdownTable(feedTable(r)),
      "",
      "Random pages of `GET /_synapse/admin/v1/media/quarantine_changes?from=…`; start-up is",
      "createApp to listening on the filled database. Expected: the same within noise at both sizes.",
    ]),
    ...section("Room media: query time vs database size", results.roomMedia, roomMediaSection),
    ...section("Remote media: time to first byte", results.federation, (r) => [
      ...markdownTable(ttfbTable(r)),
      "",
      "Server A fetches the file from server B over federation while streaming it to the client",
      "and into its cache: the first bytes arrive long before the transfer ends.",
    ]),
  ].join("\n");
}

/** `## title`, then the body, or what happened instead. */
function section<T>(
  title: string,
  outcome: Outcome<T> | undefined,
  body: (value: T) => string[],
): string[] {
  if (!outcome) return [];
  const text =
    outcome.status === "ok"
      ? [...body(outcome.value), "", `(${outcome.seconds.toFixed(0)} s)`]
      : outcome.status === "failed"
        ? [`**Failed**: ${outcome.error}`]
        : [`Skipped: ${outcome.reason}`];
  return [`## ${title}`, "", ...text, ""];
}

function summaryRows(results: SectionResults): Row[] {
  const rows: Row[] = [];
  const unavailable = (figure: string, outcome: Outcome<unknown> | undefined) => {
    if (outcome && outcome.status !== "ok") {
      rows.push([
        figure,
        outcome.status === "failed" ? "**failed**" : "skipped",
        "—",
        "—",
        "—",
        "—",
      ]);
    }
  };
  const ok = <T>(outcome: Outcome<T> | undefined): T | undefined =>
    outcome?.status === "ok" ? outcome.value : undefined;

  const downloads = ok(results.downloads);
  if (downloads) rows.push(...downloads.sizes.map(downloadRow), rssUnderLoadRow(downloads));
  else unavailable("Downloads", results.downloads);
  const attached = ok(results.attached);
  if (attached) rows.push(...attachedSummaryRows(attached));
  else unavailable("Attached mode", results.attached);
  const upload = ok(results.upload);
  if (upload) rows.push(uploadRow(upload), uploadRssRow(upload));
  else unavailable("Upload", results.upload);
  const thumbnails = ok(results.thumbnails);
  if (thumbnails) rows.push(thumbnailRow(thumbnails));
  else unavailable("Thumbnails", results.thumbnails);
  const cluster = ok(results.cluster);
  if (cluster) rows.push(clusterRow(cluster));
  else unavailable("Three processes vs one", results.cluster);
  const admin = ok(results.admin);
  if (admin) rows.push(...adminRows(admin));
  else unavailable("Media admin API", results.admin);
  const feed = ok(results.feed);
  if (feed) rows.push(...scalingRows(feed, "Quarantine feed page", "records", feedPoint));
  else unavailable("Quarantine feed", results.feed);
  const roomMedia = ok(results.roomMedia);
  if (roomMedia) {
    const large = roomMedia.results.filter((r) => r.room === "large");
    rows.push(...scalingRows(large, "Room media list (large room)", "events", roomPoint));
  } else unavailable("Room media", results.roomMedia);
  const federation = ok(results.federation);
  if (federation) rows.push(ttfbRow(federation));
  else unavailable("Remote media time to first byte", results.federation);
  return rows;
}

// Downloads and upload.

function downloadRow(result: DownloadResult): Row {
  const ratio = result.mxcd.bytesPerSecond / result.nginx.bytesPerSecond;
  const target = TARGETS.download[result.label];
  return [
    `Download ${result.label}`,
    throughput(result.mxcd),
    `nginx ${throughput(result.nginx)}`,
    times(ratio),
    target === undefined ? "—" : `≥ ${times(target)}`,
    target === undefined ? "—" : met(ratio >= target),
  ];
}

function rssUnderLoadRow(downloads: DownloadsResult): Row {
  const peak = Math.max(...downloads.sizes.map((s) => s.mxcdRssPeak));
  return [
    "Server RSS under download load (32 connections)",
    `baseline ${mib(downloads.rssBaseline)}, peak ${mib(peak)} (${downloads.rssSamples} samples)`,
    "—",
    `growth ${mib(peak - downloads.rssBaseline)}`,
    "—",
    "—",
  ];
}

function uploadRow(upload: UploadResult): Row {
  const ratio = upload.sha256Seconds / upload.uploadSeconds;
  const rate = (seconds: number) => `${seconds.toFixed(2)} s (${mib(upload.bytes / seconds)}/s)`;
  return [
    `Upload ${sizeLabel(upload.bytes)}`,
    `${rate(upload.uploadSeconds)}, ${upload.uploadCpuSeconds.toFixed(2)} s CPU`,
    `sha256sum ${rate(upload.sha256Seconds)}`,
    times(ratio),
    `≥ ${times(TARGETS.upload)}`,
    met(ratio >= TARGETS.upload),
  ];
}

function uploadRssRow(upload: UploadResult): Row {
  const { baseline, peak, samples } = upload.rss;
  const growth = peak - baseline;
  return [
    `Server RSS during the ${sizeLabel(upload.bytes)} upload`,
    `baseline ${mib(baseline)}, peak ${mib(peak)} (${samples} samples)`,
    "—",
    `growth ${mib(growth)}`,
    `< ${mib(TARGETS.rssGrowth)}`,
    met(growth < TARGETS.rssGrowth),
  ];
}

function downloadsSection(downloads: DownloadsResult): string[] {
  const table: Table = {
    header: ["Size", "mxcd", "nginx", "mxcd ÷ nginx (MiB/s)", "mxcd RSS peak during the runs"],
    rows: downloads.sizes.map((s) => [
      s.label,
      throughput(s.mxcd),
      throughput(s.nginx),
      times(s.mxcd.bytesPerSecond / s.nginx.bytesPerSecond),
      mib(s.mxcdRssPeak),
    ]),
  };
  const cpu: Table = {
    header: [
      "Download",
      "mxcd CPU per file",
      "nginx CPU per file",
      "mxcd ÷ nginx",
      "Cores busy (mxcd / nginx)",
    ],
    rows: downloads.sizes.map(cpuRow),
  };
  return [
    ...markdownTable(table),
    "",
    `Targets: ≥ 0.50× nginx for 1 MiB and 64 MiB (payload MiB/s). mxcd's RSS at rest before the runs: ${mib(downloads.rssBaseline)}.`,
    "",
    "Server CPU during the measured runs:",
    "",
    ...markdownTable(cpu),
    "",
    "CPU (user + system, server process and its workers) per file's worth of payload served;",
    "less sensitive than throughput to other work on the machine.",
  ];
}

function cpuRow(result: DownloadResult): Row {
  const perFile = (t: Throughput) => (t.cpuLoad * result.bytes) / t.bytesPerSecond;
  const [mxcd, nginx] = [perFile(result.mxcd), perFile(result.nginx)];
  const cores = `${result.mxcd.cpuLoad.toFixed(2)} / ${result.nginx.cpuLoad.toFixed(2)}`;
  return [result.label, duration(mxcd), duration(nginx), times(mxcd / nginx), cores];
}

function uploadSection(upload: UploadResult): string[] {
  return [
    ...markdownTable({ header: SUMMARY_HEADER, rows: [uploadRow(upload), uploadRssRow(upload)] }),
    "",
    "Ratio: sha256sum time ÷ upload time (1.00× = as fast as hashing the file). mxcd hashes every",
    "upload with SHA-256 as it streams it to the store.",
  ];
}

// Thumbnails.

function thumbnailRow(r: ThumbnailResult): Row {
  return [
    "Thumbnails 320×240 of 2000×1500 JPEGs",
    `${r.mxcd.perSecond.toFixed(1)}/s (${r.images} in ${r.mxcd.seconds.toFixed(2)} s)`,
    `vipsthumbnail ${r.vips.perSecond.toFixed(1)}/s (${r.images} in ${r.vips.seconds.toFixed(2)} s)`,
    times(r.mxcd.perSecond / r.vips.perSecond),
    "—",
    "—",
  ];
}

function thumbnailSection(r: ThumbnailResult): string[] {
  const table: Table = {
    header: ["", "thumbnails/s", "wall time", "CPU per thumbnail", "cores busy"],
    numeric: [1, 2, 3, 4],
    rows: [
      [
        "mxcd (2 requests in flight)",
        r.mxcd.perSecond.toFixed(1),
        `${r.mxcd.seconds.toFixed(2)} s`,
        duration(r.mxcd.cpuSeconds / r.images),
        (r.mxcd.cpuSeconds / r.mxcd.seconds).toFixed(2),
      ],
      [
        "vipsthumbnail (2 processes)",
        r.vips.perSecond.toFixed(1),
        `${r.vips.seconds.toFixed(2)} s (runs: ${r.vips.runs.map((s) => s.toFixed(2)).join(" s, ")} s)`,
        duration(r.vips.cpuSeconds / r.images),
        (r.vips.cpuSeconds / r.vips.seconds).toFixed(2),
      ],
    ],
  };
  return [
    ...markdownTable(table),
    "",
    `Ratio (mxcd ÷ vipsthumbnail thumbnails/s): **${times(r.mxcd.perSecond / r.vips.perSecond)}**. ${r.images} source images of ${r.width}×${r.height}, ${mib(r.meanSourceBytes)} on average.`,
    `mxcd's RSS while thumbnailing: baseline ${mib(r.mxcd.rssBaseline)}, peak ${mib(r.mxcd.rssPeak)}.`,
    "mxcd's time includes the whole request: authentication, media lookup, reading the source",
    "from the store, the thumbnail, storing it and recording it in the database, and the response.",
    "No target in the issues.",
  ];
}

// Three processes vs one.

function clusterRow(r: ClusterResult): Row {
  return [
    `${r.processes} mxcd processes vs 1, 1 MiB downloads through nginx (PostgreSQL)`,
    `${r.processes} processes: ${throughput(r.many)}`,
    `1 process: ${throughput(r.one)}`,
    times(r.many.requestsPerSecond / r.one.requestsPerSecond),
    "—",
    "—",
  ];
}

function clusterSection(r: ClusterResult): string[] {
  const cores = (t: Throughput) => {
    const [nginx = 0, ...mxcd] = t.cpuLoads;
    return `nginx ${nginx.toFixed(2)}; mxcd ${mxcd.map((c) => c.toFixed(2)).join(" + ")}`;
  };
  const table: Table = {
    header: [
      "Behind nginx",
      "req/s (mean)",
      "MiB/s (mean)",
      "req/s per round",
      "cores busy (mean)",
    ],
    numeric: [1, 2, 3],
    rows: [
      ["1 mxcd process", ...rates(r.one), perRound(r.oneRuns), cores(r.one)],
      [`${r.processes} mxcd processes`, ...rates(r.many), perRound(r.manyRuns), cores(r.many)],
      [
        "(context: 1 mxcd process, no nginx)",
        ...rates(r.direct),
        "—",
        `mxcd ${r.direct.cpuLoad.toFixed(2)}`,
      ],
    ],
  };
  return [
    ...markdownTable(table),
    "",
    `Ratio (${r.processes} processes ÷ 1, mean req/s): **${times(r.many.requestsPerSecond / r.one.requestsPerSecond)}**. The two setups alternate (one, ${r.processes}, one, ${r.processes}, …), each run after its own warm-up.`,
    "wrk, nginx and every mxcd process share the machine's cores (see Machine), so more processes",
    "only help as far as one process left cores idle; on a two-core machine the gain is limited",
    "by construction. No target in the issues.",
  ];
}

function perRound(runs: readonly Throughput[]): string {
  return runs.map((t) => count(Math.round(t.requestsPerSecond))).join(", ");
}

function rates(t: Throughput): [string, string] {
  return [count(Math.round(t.requestsPerSecond)), (t.bytesPerSecond / 1024 ** 2).toFixed(1)];
}

// Admin API and the size-scaling benches.

function adminRows(results: readonly AdminResult[]): Row[] {
  const postgres = results.find((r) => r.engine === "PostgreSQL") ?? results[0];
  if (!postgres) return [];
  const where = `${count(postgres.rows)} media rows, ${postgres.engine}`;
  const latency = (l: { median: number; p95: number }) =>
    `${l.median.toFixed(2)} ms median, ${l.p95.toFixed(2)} ms p95`;
  return [
    [`Admin API: query one media by id (${where})`, latency(postgres.byId), "—", "—", "—", "—"],
    [
      `Admin API: a page of a user's media (${where})`,
      latency(postgres.userPage),
      "—",
      "—",
      "—",
      "—",
    ],
    [
      `Admin API: quarantine a room of 10,000 media (${where})`,
      `${postgres.quarantineSeconds.toFixed(2)} s`,
      "—",
      "—",
      "—",
      "—",
    ],
  ];
}

function adminSection(results: AdminResult[]): string[] {
  return [
    ...markdownTable(adminTable(results)),
    "",
    `Fill times: ${results.map((r) => `${r.engine} ${r.fillSeconds.toFixed(1)} s`).join(", ")}.`,
    "One heavy user owns 10,000 of the media; the room references 10,000 of them. Random ids for",
    "the by-id query; the user's first page, newest first. No targets in the issues.",
  ];
}

/** A measurement at one size: its engine, size and median (ms). */
interface Point {
  readonly engine: string;
  readonly size: number;
  readonly median: number;
}

const feedPoint = (r: FeedResult): Point => ({
  engine: r.engine,
  size: r.records,
  median: r.page.median,
});

const roomPoint = (r: RoomMediaRun["results"][number]): Point => ({
  engine: r.engine,
  size: r.events,
  median: r.latency.median,
});

/** Per engine: the median at the largest size against the median at the smallest. */
function scalingRows<T>(
  results: readonly T[],
  figure: string,
  unit: string,
  point: (r: T) => Point,
): Row[] {
  const points = results.map(point);
  const engines = [...new Set(points.map((p) => p.engine))];
  return engines.flatMap((engine) => {
    const mine = points.filter((p) => p.engine === engine).sort((a, b) => a.size - b.size);
    const [small, large] = [mine[0], mine.at(-1)];
    if (!small || !large || small === large) return [];
    return [
      [
        `${figure}, ${count(large.size)} vs ${count(small.size)} ${unit} (${engine})`,
        `${large.median.toFixed(2)} ms median`,
        `${small.median.toFixed(2)} ms at ${count(small.size)}`,
        times(large.median / small.median),
        "—",
        "—",
      ],
    ];
  });
}

function roomMediaSection(run: RoomMediaRun): string[] {
  return [
    ...markdownTable(roomMediaTable(run.results)),
    "",
    "`MediaReferenceRepository.roomMedia` called directly. The two measured rooms hold the same",
    "events at both sizes, so equal times show the query does not depend on the total. Plans for",
    "the large room at the largest size:",
    "",
    ...run.plans.flatMap(({ engine, plan }) => [`${engine}:`, "", "```", plan, "```", ""]),
  ];
}

function ttfbRow(r: TtfbResult): Row {
  return [
    `Remote media ${r.mib} MiB over federation: time to first byte`,
    `${r.first.ttfb.toFixed(1)} ms`,
    `whole transfer ${r.first.total.toFixed(0)} ms`,
    `${((r.first.ttfb / r.first.total) * 100).toFixed(1)} %`,
    "—",
    "—",
  ];
}

// Formatting.

function throughput(t: Throughput): string {
  return `${mib(t.bytesPerSecond)}/s · ${count(Math.round(t.requestsPerSecond))} req/s`;
}

function sizeLabel(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${bytes / 1024 ** 3} GiB` : `${bytes / 1024 ** 2} MiB`;
}

function met(ok: boolean): string {
  return ok ? "yes" : "**no**";
}
