/**
 * Remote media streaming: time to first byte vs. time of the whole transfer
 * for a 64 MiB file fetched over federation (two in-process mxcd servers on
 * loopback), showing that the first client gets bytes while the file is
 * still being fetched and cached. Also the same file from the cache afterwards.
 *
 * Run on its own: npx tsx bench/federation-ttfb-bench.ts   (`npm run bench` runs it too)
 * MXCD_BENCH_REMOTE_MIB changes the size (default 64).
 */
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { type App, createApp } from "../src/app.js";
import { validateConfig } from "../src/config/load-config.js";
import { createLogger } from "../src/logging/logger.js";
import type { Cleanup } from "./support/cleanup.js";
import { tempDir } from "./support/files.js";
import { isMainModule, runMain } from "./support/main.js";
import { markdownTable, type Table } from "./support/markdown.js";
import { freePort } from "./support/network.js";

export interface TtfbBenchOptions {
  /** Size of the remote file, MiB. */
  readonly mib: number;
  /** An empty folder for both servers' databases, stores and keys. */
  readonly dir: string;
}

/** One download's timings, milliseconds. */
export interface TimedDownload {
  readonly ttfb: number;
  readonly total: number;
  readonly bytes: number;
}

export interface TtfbResult {
  readonly mib: number;
  /** The first request: fetched over federation while it streams to the client and the cache. */
  readonly first: TimedDownload;
  /** The second: from the cache. */
  readonly cached: TimedDownload;
}

/** MXCD_BENCH_REMOTE_MIB, default 64. */
export function remoteMibFromEnv(env: NodeJS.ProcessEnv): number {
  const mib = Number(env.MXCD_BENCH_REMOTE_MIB ?? 64);
  if (!Number.isFinite(mib) || mib <= 0) throw new Error("MXCD_BENCH_REMOTE_MIB must be > 0");
  return mib;
}

/** Uploads a random file to server B, then downloads it twice from server A. */
export async function benchFederationTtfb(
  options: TtfbBenchOptions,
  cleanup: Cleanup,
): Promise<TtfbResult> {
  const bytes = Math.round(options.mib * 1024 * 1024);
  const [portA, portB] = [await freePort(), await freePort()];
  const resolvers = {
    "a.bench": `http://127.0.0.1:${portA}`,
    "b.bench": `http://127.0.0.1:${portB}`,
  };
  const server = (name: string, port: number) =>
    startServer(options.dir, name, port, resolvers, bytes, cleanup);
  const b = await server("b.bench", portB);
  const a = await server("a.bench", portA);
  const uploader = await b.accounts.register({ localpart: "up", password: "x", admin: false });
  const upToken = (await b.accounts.issueToken(uploader, null)).accessToken;
  const body = randomBytes(bytes);
  const up = await fetch(`http://127.0.0.1:${portB}/_matrix/media/v3/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${upToken}`, "content-type": "application/octet-stream" },
    body,
  });
  if (up.status !== 200) throw new Error(`upload: ${up.status} ${await up.text()}`);
  const mediaId = ((await up.json()) as { content_uri: string }).content_uri.split("/").pop()!;
  const reader = await a.accounts.register({ localpart: "reader", password: "x", admin: false });
  const token = (await a.accounts.issueToken(reader, null)).accessToken;
  const url = `http://127.0.0.1:${portA}/_matrix/client/v1/media/download/b.bench/${mediaId}`;
  const first = await timedGet(url, token);
  const cached = await timedGet(url, token);
  if (first.bytes !== bytes || cached.bytes !== bytes) throw new Error("size mismatch");
  await a.stop();
  await b.stop();
  return { mib: options.mib, first, cached };
}

/** The results as a Markdown table. */
export function ttfbTable(result: TtfbResult): Table {
  const row = (label: string, m: TimedDownload) => [
    label,
    `${m.ttfb.toFixed(1)} ms`,
    `${m.total.toFixed(0)} ms`,
    `${((m.ttfb / m.total) * 100).toFixed(1)} %`,
  ];
  return {
    header: [
      `transfer (${result.mib} MiB)`,
      "time to first byte",
      "whole transfer",
      "first byte ÷ whole",
    ],
    numeric: [1, 2, 3],
    rows: [
      row("first request: fetched over federation while cached", result.first),
      row("second request: from A's cache", result.cached),
    ],
  };
}

async function startServer(
  dir: string,
  name: string,
  port: number,
  resolvers: Record<string, string>,
  bytes: number,
  cleanup: Cleanup,
): Promise<App> {
  const config = validateConfig({
    server_name: name,
    listen: { host: "127.0.0.1", port },
    database: { engine: "sqlite", path: join(dir, `${name}.sqlite`) },
    media_store: { engine: "filesystem", path: join(dir, name) },
    signing_key_path: join(dir, `${name}.key`),
    max_upload_size: bytes + 1024 * 1024,
    ip_range_whitelist: ["127.0.0.0/8"],
    federation_custom_resolvers: resolvers,
    log_level: "silent",
  });
  const app = createApp(config, createLogger("silent"));
  cleanup.add(`stop ${name}`, () => app.stop());
  await app.start();
  return app;
}

/** GETs `url`; resolves with the time to the first body byte and to the end, in ms. */
function timedGet(url: string, token: string): Promise<TimedDownload> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let ttfb = 0;
    let bytes = 0;
    const req = request(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`GET ${url}: ${res.statusCode}`));
      res.on("data", (chunk: Buffer) => {
        if (bytes === 0) ttfb = performance.now() - start;
        bytes += chunk.length;
      });
      res.on("end", () => resolve({ ttfb, total: performance.now() - start, bytes }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup) => {
    const dir = tempDir(cleanup, "mxcd-ttfb-");
    const result = await benchFederationTtfb({ mib: remoteMibFromEnv(process.env), dir }, cleanup);
    console.log(markdownTable(ttfbTable(result)).join("\n"));
  });
}
