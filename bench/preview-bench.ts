/**
 * URL previews per second (issue 13), against nginx serving the very same
 * 200 KB page in the same run:
 * - cached: one URL previewed again and again (a cache-table read);
 * - fresh, with og:image: every request a distinct URL (`?r=<run>-<n>`, made
 *   by wrk's Lua `request` hook), so each one fetches the 200 KB page from
 *   nginx, parses its first 1 MiB, fetches and stores its og:image (a small
 *   JPEG, thumbnails pre-generated as for uploads) and writes the cache row;
 * - fresh, without image: the same page without og:image;
 * - nginx serving the page itself (the physical reference: what it costs to
 *   move the 200 KB once; a fresh preview moves it once more, from nginx to
 *   mxcd, and does everything else besides).
 * mxcd runs from `dist/` (SQLite, filesystem store, defaults but for the
 * preview keys); nginx is both the origin mxcd fetches from and the
 * reference. Rounds rotate the order so drift in the machine's load hits all
 * alike; the figures are each round's requests/s, their mean, and the ratio
 * to nginx with its spread (min–max over the rounds). No targets.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import {
  type LoadContext,
  measureThroughput,
  type Target,
  type Throughput,
} from "./download-bench.js";
import type { Cleanup } from "./support/cleanup.js";
import { envSeconds } from "./support/env-seconds.js";
import { tempDir } from "./support/files.js";
import { isMainModule, runMain } from "./support/main.js";
import { count, markdownTable, mib, times } from "./support/markdown.js";
import { type MxcdServer, startMxcd } from "./support/mxcd-server.js";
import { type NginxServer, startNginx } from "./support/nginx-server.js";
import { RssSampler, readRss } from "./support/rss-sampler.js";
import { findTools, type Tools } from "./support/tools.js";
import { writeWrkScript } from "./support/wrk.js";

const PAGE_BYTES = 200 * 1024;

/** Previews on, the usual private ranges refused, the loopback origin let through. */
const PREVIEW_CONFIG = {
  url_preview_enabled: true,
  url_preview_ip_range_blacklist: ["127.0.0.0/8", "10.0.0.0/8", "::1/128", "fe80::/10"],
  url_preview_ip_range_whitelist: ["127.0.0.1/32"],
};
const KINDS = ["cached", "fresh", "freshNoImage", "nginx"] as const;
type Kind = (typeof KINDS)[number];

const LABELS: Record<Kind, string> = {
  cached: "mxcd, cached URL",
  fresh: "mxcd, fresh 200 KB page + og:image",
  freshNoImage: "mxcd, fresh 200 KB page, no image",
  nginx: "nginx, the 200 KB page itself",
};

export interface PreviewBenchContext {
  readonly tools: Tools;
  readonly cli: string;
  readonly dir: string;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly rounds: number;
  readonly nginxWorkers: string;
  /** Distinct image URLs previewed at once in the memory figure. */
  readonly floodRequests: number;
}

export interface PreviewRound {
  readonly order: readonly Kind[];
  readonly results: Readonly<Record<Kind, Throughput>>;
}

export interface PreviewBenchResult {
  readonly rounds: readonly PreviewRound[];
  readonly flood: readonly PreviewFloodResult[];
  readonly imageBytes: number;
  readonly rssBaseline: number;
  readonly rssPeak: number;
  readonly connections: number;
  readonly seconds: number;
}

export async function benchPreviews(
  context: PreviewBenchContext,
  cleanup: Cleanup,
): Promise<PreviewBenchResult> {
  const { dir, tools } = context;
  const root = join(dir, "www");
  const image = await writeSite(root);
  const nginx = await startNginx(
    {
      nginx: tools.nginx,
      dir: tempDir(cleanup, "mxcd-preview-nginx-"),
      workers: context.nginxWorkers,
      root,
      types: { html: "text/html", jpg: "image/jpeg" },
    },
    cleanup,
  );
  const mxcd = await startMxcd(
    {
      cli: context.cli,
      dir: tempDir(cleanup, "mxcd-preview-mxcd-"),
      extraConfig: PREVIEW_CONFIG,
    },
    cleanup,
  );
  const load = { threads: 2, connections: 32, seconds: context.seconds };
  const contexts = await loadContexts(context, load, mxcd, nginx);
  await checkPreview(mxcd, `${nginx.baseUrl}/page.html?check`, true);
  await checkPreview(mxcd, `${nginx.baseUrl}/page-noimage.html?check`, false);

  const rssBaseline = readRss(mxcd.pid);
  const sampler = new RssSampler(mxcd.pid);
  sampler.markStart();
  const rounds: PreviewRound[] = [];
  try {
    for (let round = 0; round < context.rounds; round++) {
      const order = KINDS.map((_, i) => KINDS[(i + round) % KINDS.length]!);
      const results: Partial<Record<Kind, Throughput>> = {};
      for (const kind of order) {
        console.error(`  previews round ${round + 1}: ${LABELS[kind]}`);
        const { load: ctx, target } = contexts[kind];
        results[kind] = await measureThroughput(ctx, target);
      }
      rounds.push({ order, results: results as Record<Kind, Throughput> });
    }
  } finally {
    sampler.stop();
  }
  const rss = sampler.stop();
  await mxcd.stop();
  const flood: PreviewFloodResult[] = [];
  for (const maxConcurrent of [1, 10, context.floodRequests]) {
    console.error(
      `  previews flood: ${context.floodRequests} at once, ${maxConcurrent} fetches at a time`,
    );
    flood.push(
      await benchPreviewFlood(context, nginx, maxConcurrent, context.floodRequests, cleanup),
    );
  }
  return {
    flood,
    rounds,
    imageBytes: image,
    rssBaseline,
    rssPeak: rss.peak,
    connections: load.connections,
    seconds: context.seconds,
  };
}

/** The 200 KB pages (with and without og:image) and the image; returns the image's size. */
async function writeSite(root: string): Promise<number> {
  mkdirSync(root, { recursive: true });
  const paragraph =
    "<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor " +
    "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud " +
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.</p>\n";
  const page = (withImage: boolean) => {
    const head = `<!doctype html><html><head><meta charset="utf-8"><title>A bench page</title>
<meta property="og:title" content="A page of 200 KB">
<meta property="og:description" content="What a news article or a forum thread weighs.">
<meta property="og:site_name" content="bench">
${withImage ? '<meta property="og:image" content="/image.jpg">' : ""}
<link rel="stylesheet" href="/s.css"><script>var x = 1;</script></head><body><nav>menu</nav>\n`;
    let body = head;
    while (body.length < PAGE_BYTES - 20) body += paragraph;
    return `${body.slice(0, PAGE_BYTES - 15)}</body></html>\n`;
  };
  writeFileSync(join(root, "page.html"), page(true));
  writeFileSync(join(root, "page-noimage.html"), page(false));
  // A modest photo-like JPEG: 640×480 of noise over a gradient.
  const width = 640;
  const height = 480;
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) {
    pixels[i] = ((i % (width * 3)) / 6 + (i % 251)) & 0xff;
  }
  const jpeg = await sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 80 })
    .toBuffer();
  writeFileSync(join(root, "image.jpg"), jpeg);
  writeFileSync(join(root, "flood.jpg"), randomBytes(FLOOD_IMAGE_BYTES));
  return jpeg.length;
}

/**
 * Each kind's wrk context and target. The fresh kinds use a Lua `request`
 * hook that appends `<run uuid>-<thread>-<n>` to the page URL, so no two
 * requests — in one run or across warm-up and measured runs — share a URL.
 */
async function loadContexts(
  context: PreviewBenchContext,
  load: LoadContext["load"],
  mxcd: MxcdServer,
  nginx: NginxServer,
): Promise<Record<Kind, { load: LoadContext; target: Target }>> {
  const base = { tools: context.tools, load, warmupSeconds: context.warmupSeconds };
  const plain = writeWrkScript(context.dir);
  const previewPath = (page: string) =>
    `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(`${nginx.baseUrl}/${page}`)}`;
  const distinct = (page: string, name: string) =>
    writeWrkScript(context.dir, distinctUrlLua(previewPath(`${page}?r=`)), name);
  const mxcdTarget = (path: string): Target => ({
    url: `${mxcd.baseUrl}${path}`,
    headers: mxcd.authHeaders,
    pids: [mxcd.pid],
  });
  const cachedPath = previewPath("page.html?cached");
  return {
    cached: { load: { ...base, wrkScript: plain }, target: mxcdTarget(cachedPath) },
    fresh: {
      load: { ...base, wrkScript: distinct("page.html", "fresh.lua") },
      target: mxcdTarget(previewPath("page.html?r=probe")),
    },
    freshNoImage: {
      load: { ...base, wrkScript: distinct("page-noimage.html", "fresh-noimage.lua") },
      target: mxcdTarget(previewPath("page-noimage.html?r=probe")),
    },
    nginx: {
      load: { ...base, wrkScript: plain },
      target: { url: `${nginx.baseUrl}/page.html`, headers: {}, pids: [nginx.pid] },
    },
  };
}

/** wrk Lua: every request's path is `prefix` + a URL-safe tag unique to it. */
function distinctUrlLua(prefix: string): string {
  return `
local prefix = "${prefix}"
local started = 0
local run_id = nil
setup = function(thread)
  if run_id == nil then
    local f = io.open("/proc/sys/kernel/random/uuid", "r")
    run_id = f:read("*l")
    f:close()
  end
  started = started + 1
  thread:set("tag", run_id .. "-" .. started .. "-")
end
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, prefix .. tag .. n)
end
`;
}

/** One preview answered as expected, so a fast error page can never count. */
async function checkPreview(mxcd: MxcdServer, url: string, withImage: boolean): Promise<void> {
  const path = `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`;
  const response = await fetch(`${mxcd.baseUrl}${path}`, { headers: mxcd.authHeaders });
  const body = (await response.json()) as Record<string, unknown>;
  const hasImage = typeof body["og:image"] === "string";
  if (
    response.status !== 200 ||
    body["og:title"] !== "A page of 200 KB" ||
    hasImage !== withImage
  ) {
    throw new Error(`unexpected preview of ${url}: ${response.status} ${JSON.stringify(body)}`);
  }
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

/** Summary rows (Figure, mxcd, reference, ratio with spread). */
export function previewSummaryRows(result: PreviewBenchResult): string[][] {
  const rps = (kind: Kind) => result.rounds.map((r) => r.results[kind].requestsPerSecond);
  const nginx = mean(rps("nginx"));
  return (["cached", "fresh", "freshNoImage"] as const).map((kind) => {
    const ratios = result.rounds.map(
      (r) => r.results[kind].requestsPerSecond / r.results.nginx.requestsPerSecond,
    );
    return [
      LABELS[kind],
      `${count(mean(rps(kind)))} req/s`,
      `${count(nginx)} req/s (nginx, page)`,
      `${times(mean(rps(kind)) / nginx)} (${times(Math.min(...ratios))}–${times(Math.max(...ratios))})`,
    ];
  });
}

/** The report section: each round, the means, CPU per request and RSS. */
export function previewSection(result: PreviewBenchResult): string[] {
  const kinds = KINDS;
  const header = ["Round (order)", ...kinds.map((k) => LABELS[k])];
  const rows = result.rounds.map((round, i) => [
    `${i + 1} (${round.order.join(", ")})`,
    ...kinds.map((k) => `${count(round.results[k].requestsPerSecond)} req/s`),
  ]);
  rows.push([
    "mean",
    ...kinds.map(
      (k) => `${count(mean(result.rounds.map((r) => r.results[k].requestsPerSecond)))} req/s`,
    ),
  ]);
  rows.push([
    "server CPU per request",
    ...kinds.map((k) => {
      const perRequest = result.rounds.map(
        (r) => (r.results[k].cpuLoad / r.results[k].requestsPerSecond) * 1000,
      );
      return `${mean(perRequest).toFixed(2)} ms`;
    }),
  ]);
  return [
    "## URL previews per second vs nginx serving the page (`preview-bench.ts`)",
    "",
    ...markdownTable({
      header: ["Figure", "mxcd", "Reference (same run)", "Ratio (min–max over rounds)"],
      rows: previewSummaryRows(result),
    }),
    "",
    ...markdownTable({ header, rows }),
    "",
    `wrk -t 2 -c ${result.connections} -d ${result.seconds}s per figure after its own untimed warm-up;`,
    `${result.rounds.length} rounds in rotating order. The page is ${PAGE_BYTES / 1024} KiB of HTML;`,
    `the og:image a ${(result.imageBytes / 1024).toFixed(0)} KiB 640×480 JPEG (stored as url-cache media,`,
    "thumbnails pre-generated with the default `thumbnail_sizes`). Fresh figures preview a distinct URL",
    "per request, so each request is one page fetch (and one image fetch) from nginx on 127.0.0.1.",
    "mxcd: SQLite, filesystem store, default `url_preview_max_concurrent_fetches` (10).",
    `mxcd RSS: ${mib(result.rssBaseline)} before the rounds, peak ${mib(result.rssPeak)} during them.`,
    "",
    ...previewFloodSection(result.flood),
  ];
}

/** RSS of mxcd while `requests` distinct image URLs are previewed all at once. */
export interface PreviewFloodResult {
  readonly maxConcurrent: number;
  readonly requests: number;
  readonly imageBytes: number;
  readonly rssBaseline: number;
  readonly rssPeak: number;
  /** Largest `mxcd_nodejs_external_memory_bytes` (Buffers) seen on /metrics during the flood. */
  readonly externalPeak: number;
  readonly externalBaseline: number;
  readonly statuses: Readonly<Record<string, number>>;
}

const FLOOD_IMAGE_BYTES = 4 * 1024 * 1024;

/**
 * The memory bound at work: `requests` previews of distinct URLs of a
 * 4 MiB image, all sent at once, to an mxcd with
 * `url_preview_max_concurrent_fetches` = `maxConcurrent` (and a queue large
 * enough that none is refused). Each fetch keeps the whole image (it is
 * stored), so RSS growth should follow maxConcurrent × 4 MiB, not
 * requests × 4 MiB.
 */
export async function benchPreviewFlood(
  context: PreviewBenchContext,
  nginx: NginxServer,
  maxConcurrent: number,
  requests: number,
  cleanup: Cleanup,
): Promise<PreviewFloodResult> {
  const mxcd = await startMxcd(
    {
      cli: context.cli,
      dir: tempDir(cleanup, "mxcd-preview-flood-"),
      extraConfig: {
        ...PREVIEW_CONFIG,
        url_preview_max_concurrent_fetches: maxConcurrent,
        url_preview_fetch_queue_size: requests,
      },
    },
    cleanup,
  );
  const sampler = new RssSampler(mxcd.pid, 10);
  await new Promise((r) => setTimeout(r, 1000));
  const externalBaseline = await externalMemory(mxcd);
  let externalPeak = externalBaseline;
  let flooding = true;
  const watcher = (async () => {
    while (flooding) {
      externalPeak = Math.max(externalPeak, await externalMemory(mxcd));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  sampler.markStart();
  const statuses: Record<string, number> = {};
  try {
    const run = `${Date.now()}`;
    await Promise.all(
      Array.from({ length: requests }, async (_, i) => {
        const url = `${nginx.baseUrl}/flood.jpg?r=${run}-${i}`;
        const path = `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`;
        const response = await fetch(`${mxcd.baseUrl}${path}`, { headers: mxcd.authHeaders });
        await response.arrayBuffer();
        statuses[response.status] = (statuses[response.status] ?? 0) + 1;
      }),
    );
  } finally {
    flooding = false;
    await watcher;
    sampler.stop();
    await mxcd.stop();
  }
  const rss = sampler.stop();
  return {
    maxConcurrent,
    requests,
    imageBytes: FLOOD_IMAGE_BYTES,
    rssBaseline: rss.baseline,
    rssPeak: rss.peak,
    externalBaseline,
    externalPeak,
    statuses,
  };
}

/** mxcd's `mxcd_nodejs_external_memory_bytes` (memory of Buffers, live or not yet collected). */
async function externalMemory(mxcd: MxcdServer): Promise<number> {
  const text = await (await fetch(`${mxcd.baseUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("mxcd_nodejs_external_memory_bytes "));
  return line ? Number(line.split(" ")[1]) : Number.NaN;
}

/** The flood figures as a section. */
export function previewFloodSection(results: readonly PreviewFloodResult[]): string[] {
  return [
    "### Memory under a flood of distinct URLs",
    "",
    ...markdownTable({
      header: [
        "url_preview_max_concurrent_fetches",
        "requests at once",
        "answers",
        "RSS before",
        "RSS peak",
        "growth",
        "growth ÷ image size",
        "Buffers peak growth",
        "÷ image size",
      ],
      rows: results.map((r) => [
        String(r.maxConcurrent),
        String(r.requests),
        Object.entries(r.statuses)
          .map(([status, n]) => `${n}× ${status}`)
          .join(", "),
        mib(r.rssBaseline),
        mib(r.rssPeak),
        mib(r.rssPeak - r.rssBaseline),
        (Math.max(0, r.rssPeak - r.rssBaseline) / r.imageBytes).toFixed(1),
        mib(r.externalPeak - r.externalBaseline),
        ((r.externalPeak - r.externalBaseline) / r.imageBytes).toFixed(1),
      ]),
    }),
    "",
    `Each request previews a distinct URL of a ${FLOOD_IMAGE_BYTES / 1024 / 1024} MiB image (random bytes served`,
    "as `image/jpeg` by nginx, so nothing is thumbnailed); all are sent at once from the bench process.",
    "RSS of the mxcd process sampled every 10 ms; before = median over 1 s of rest. A fetch keeps the",
    "whole image (it is stored), so growth follows the number of fetches running at once. RSS and",
    "Buffers (`mxcd_nodejs_external_memory_bytes`, polled on /metrics every 20 ms) both include",
    "buffers the garbage collector has not reclaimed yet: upper bounds on what the fetches hold.",
  ];
}

/** `MXCD_BENCH_PREVIEW_ROUNDS` (3). */
function roundsFromEnv(env: NodeJS.ProcessEnv): number {
  const value = Number(env.MXCD_BENCH_PREVIEW_ROUNDS ?? 3);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error("MXCD_BENCH_PREVIEW_ROUNDS must be an integer >= 1");
  }
  return value;
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup) => {
    const cli = join(import.meta.dirname, "..", "dist", "src", "cli", "main.js");
    const result = await benchPreviews(
      {
        tools: findTools(),
        cli,
        dir: tempDir(cleanup, "mxcd-preview-bench-"),
        seconds: Math.max(
          1,
          Math.round(envSeconds("MXCD_BENCH_DURATION", process.env.MXCD_BENCH_DURATION, 10)),
        ),
        warmupSeconds: Math.round(
          envSeconds("MXCD_BENCH_WARMUP", process.env.MXCD_BENCH_WARMUP, 2),
        ),
        rounds: roundsFromEnv(process.env),
        nginxWorkers: process.env.MXCD_BENCH_NGINX_WORKERS ?? "1",
        floodRequests: Number(process.env.MXCD_BENCH_PREVIEW_FLOOD ?? 100),
      },
      cleanup,
    );
    console.log(previewSection(result).join("\n"));
  });
}
