/**
 * Remote media streaming: time to first byte vs. time of the whole transfer
 * for a 64 MiB file fetched over federation (two mxcd servers on loopback),
 * showing that the first client gets bytes while the file is still being
 * fetched and cached. Also the same file from the cache afterwards.
 *
 * Run: npx tsx bench/federation-ttfb-bench.ts   (MXCD_BENCH_REMOTE_MIB to change the size)
 */
import { randomBytes } from "node:crypto";
import { request } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { type App, createApp } from "../src/app.js";
import { validateConfig } from "../src/config/load-config.js";
import { createLogger } from "../src/logging/logger.js";
import { freePort } from "../test/support/postgres-cluster.js";

const MIB = Number(process.env.MXCD_BENCH_REMOTE_MIB ?? 64);

async function server(
  dir: string,
  name: string,
  port: number,
  resolvers: Record<string, string>,
): Promise<App> {
  const config = validateConfig({
    server_name: name,
    listen: { host: "127.0.0.1", port },
    database: { engine: "sqlite", path: join(dir, `${name}.sqlite`) },
    media_store: { engine: "filesystem", path: join(dir, name) },
    signing_key_path: join(dir, `${name}.key`),
    max_upload_size: (MIB + 1) * 1024 * 1024,
    ip_range_whitelist: ["127.0.0.0/8"],
    federation_custom_resolvers: resolvers,
    log_level: "silent",
  });
  const app = createApp(config, createLogger("silent"));
  await app.start();
  return app;
}

/** GETs `url`; resolves with the time to the first body byte and to the end, in ms. */
function timedGet(
  url: string,
  token: string,
): Promise<{ ttfb: number; total: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let ttfb = 0;
    let bytes = 0;
    const req = request(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
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

async function main() {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-ttfb-"));
  const [portA, portB] = [await freePort(), await freePort()];
  const resolvers = {
    "a.bench": `http://127.0.0.1:${portA}`,
    "b.bench": `http://127.0.0.1:${portB}`,
  };
  const b = await server(dir, "b.bench", portB, resolvers);
  const a = await server(dir, "a.bench", portA, resolvers);
  try {
    const uploader = await b.accounts.register({ localpart: "up", password: "x", admin: false });
    const upToken = (await b.accounts.issueToken(uploader, null)).accessToken;
    const body = randomBytes(MIB * 1024 * 1024);
    const up = await fetch(`http://127.0.0.1:${portB}/_matrix/media/v3/upload`, {
      method: "POST",
      headers: { authorization: `Bearer ${upToken}`, "content-type": "application/octet-stream" },
      body,
    });
    const mediaId = ((await up.json()) as { content_uri: string }).content_uri.split("/").pop()!;
    const reader = await a.accounts.register({ localpart: "reader", password: "x", admin: false });
    const token = (await a.accounts.issueToken(reader, null)).accessToken;
    const url = `http://127.0.0.1:${portA}/_matrix/client/v1/media/download/b.bench/${mediaId}`;
    const first = await timedGet(url, token);
    const cached = await timedGet(url, token);
    if (first.bytes !== body.length || cached.bytes !== body.length)
      throw new Error("size mismatch");
    console.log(
      `| transfer (${MIB} MiB) | time to first byte | whole transfer | first byte ÷ whole |`,
    );
    console.log("| --- | ---: | ---: | ---: |");
    for (const [label, m] of [
      ["first request: fetched over federation while cached", first],
      ["second request: from A's cache", cached],
    ] as const) {
      console.log(
        `| ${label} | ${m.ttfb.toFixed(1)} ms | ${m.total.toFixed(0)} ms | ${((m.ttfb / m.total) * 100).toFixed(1)} % |`,
      );
    }
  } finally {
    await a.stop();
    await b.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
