/**
 * The results as Markdown: machine, settings, then one table with a ratio
 * and a target per figure. The same text is printed and written to
 * bench/RESULTS.md.
 */
import type { DownloadResult, Throughput } from "./download-bench.js";
import type { MachineDescription } from "./support/machine.js";
import type { UploadResult } from "./upload-bench.js";

/** Everything one run measured, and how. */
export interface BenchReport {
  readonly date: Date;
  readonly machine: MachineDescription;
  readonly settings: readonly string[];
  readonly downloads: readonly DownloadResult[];
  readonly upload: UploadResult;
}

/** Targets from issue 3. */
export const TARGETS = {
  /** mxcd ÷ nginx payload throughput, per download size label. */
  download: { "1 MiB": 0.5, "64 MiB": 0.5 } as Record<string, number>,
  /** sha256sum seconds ÷ upload seconds. */
  upload: 0.7,
  /** Peak − baseline RSS during the upload, bytes. */
  rssGrowth: 64 * 1024 ** 2,
};

type Row = readonly string[];

/** The full report as Markdown. */
export function renderReport(report: BenchReport): string {
  const machine = report.machine.map(([name, value]) => `- ${name}: ${value}`);
  const settings = report.settings.map((line) => `- ${line}`);
  return [
    "# mxcd media benchmark results",
    "",
    `Measured ${report.date.toISOString()} with \`npm run bench\` (see bench/README.md).`,
    "",
    "## Machine",
    "",
    ...machine,
    "",
    "## Settings",
    "",
    ...settings,
    "",
    "## Results",
    "",
    ...table([
      ["Figure", "mxcd", "Reference", "Ratio", "Target", "Met"],
      ...report.downloads.map(downloadRow),
      uploadRow(report.upload),
      rssRow(report.upload),
    ]),
    "",
    "Download ratio: mxcd ÷ nginx payload MiB/s. Upload ratio: sha256sum time ÷ upload time.",
    "MiB = 2^20 bytes.",
    "",
    "### Server CPU during the downloads",
    "",
    ...table([
      [
        "Download",
        "mxcd CPU per file",
        "nginx CPU per file",
        "mxcd ÷ nginx",
        "Cores busy (mxcd / nginx)",
      ],
      ...report.downloads.map(cpuRow),
    ]),
    "",
    "CPU (user + system, server process and its workers) per file's worth of payload served;",
    "less sensitive than throughput to other work on the machine.",
    "",
  ].join("\n");
}

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

function cpuRow(result: DownloadResult): Row {
  const perFile = (t: Throughput) => (t.cpuLoad * result.bytes) / t.bytesPerSecond;
  const [mxcd, nginx] = [perFile(result.mxcd), perFile(result.nginx)];
  const cores = `${result.mxcd.cpuLoad.toFixed(2)} / ${result.nginx.cpuLoad.toFixed(2)}`;
  return [result.label, duration(mxcd), duration(nginx), times(mxcd / nginx), cores];
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

function rssRow(upload: UploadResult): Row {
  const { baseline, peak, samples } = upload.rss;
  const growth = peak - baseline;
  return [
    "Server RSS during upload",
    `baseline ${mib(baseline)}, peak ${mib(peak)} (${samples} samples)`,
    "—",
    `growth ${mib(growth)}`,
    `< ${mib(TARGETS.rssGrowth)}`,
    met(growth < TARGETS.rssGrowth),
  ];
}

function table(rows: readonly Row[]): string[] {
  const [header, ...body] = rows;
  if (!header) return [];
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...body.map(line)];
}

function throughput(t: Throughput): string {
  return `${mib(t.bytesPerSecond)}/s · ${Math.round(t.requestsPerSecond).toLocaleString("en-US")} req/s`;
}

function duration(seconds: number): string {
  if (seconds >= 1) return `${seconds.toFixed(2)} s`;
  if (seconds >= 1e-3) return `${(seconds * 1e3).toFixed(1)} ms`;
  return `${(seconds * 1e6).toFixed(0)} µs`;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

function sizeLabel(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${bytes / 1024 ** 3} GiB` : `${bytes / 1024 ** 2} MiB`;
}

function times(ratio: number): string {
  return `${ratio.toFixed(2)}×`;
}

function met(ok: boolean): string {
  return ok ? "yes" : "**no**";
}
