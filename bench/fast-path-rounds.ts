/**
 * Consecutive rounds on ONE mxcd (issue 15, "the first round is the
 * slowest"): the shipped config, a cached 4 KiB download and a pre-generated
 * 32×32 crop thumbnail, loaded in turn with the downloads' `wrk -t2 -c32`
 * load for `MXCD_BENCH_DURATION` (10 s) after `MXCD_BENCH_WARMUP` (2 s) of
 * untimed load, `MXCD_ROUNDS_N` (4) rounds each. Per round: server CPU per
 * request, req/s, and how many requests the fast path passed on to Fastify
 * (`mxcd_fast_path_requests_total{result="passed"}`), so a round that lost
 * its cache entries shows. `MXCD_ROUNDS_FLAGS`: node flags for the server
 * (space-separated, e.g. `--trace-gc`). `MXCD_ROUNDS_ROOT`: another build's root.
 * `MXCD_ROUNDS_CONFIG`: more config keys (JSON), e.g.
 * `{"media_cache":{"metadata_ttl":"1ms"}}` (every hit finds its entries expired).
 *
 * Run: `npm run build && npx tsx bench/fast-path-rounds.ts`. Nothing here asserts a time.
 */
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { Cleanup } from "./support/cleanup.js";
import { cpuSeconds } from "./support/cpu-time.js";
import { tempDir } from "./support/files.js";
import { downloadUrl, startMxcd, uploadFile } from "./support/mxcd-server.js";
import { findTools } from "./support/tools.js";
import { runWrk, writeWrkScript } from "./support/wrk.js";

const root = process.env.MXCD_ROUNDS_ROOT ?? fileURLToPath(new URL("..", import.meta.url));
const seconds = Number.parseFloat(process.env.MXCD_BENCH_DURATION ?? "10");
const warmup = Number.parseFloat(process.env.MXCD_BENCH_WARMUP ?? "2");
const rounds = Number(process.env.MXCD_ROUNDS_N ?? 4);
/** `MXCD_ROUNDS_IDLE`: seconds the server idles before each round (0). */
const idle = Number.parseFloat(process.env.MXCD_ROUNDS_IDLE ?? "0");
const flags = (process.env.MXCD_ROUNDS_FLAGS ?? "").split(" ").filter(Boolean);

const cleanup = new Cleanup();
try {
  const tools = findTools();
  const dir = tempDir(cleanup, "mxcd-fast-path-rounds-");
  const script = writeWrkScript(dir);
  const mxcd = await startMxcd(
    {
      cli: join(root, "dist", "src", "cli", "main.js"),
      dir,
      shippedDefaults: true,
      // As bench:hot: the shipped 50M would refuse the 64 MiB file of MXCD_ROUNDS_LARGE.
      maxUploadSize: "100M",
      nodeFlags: flags,
      extraConfig: JSON.parse(process.env.MXCD_ROUNDS_CONFIG ?? "{}") as Record<string, unknown>,
    },
    cleanup,
  );
  const small = join(dir, "small.bin");
  writeFileSync(small, Buffer.alloc(4096, 7));
  const download = downloadUrl(
    mxcd,
    (await uploadFile(mxcd, tools.curl, small, `${small}.r`)).mediaId,
  );
  const jpeg = join(dir, "avatar.jpg");
  const noise = Buffer.alloc(640 * 480 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919 + (i >> 5) * 104_729) % 251;
  writeFileSync(
    jpeg,
    await sharp(noise, { raw: { width: 640, height: 480, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
  const image = (await uploadFile(mxcd, tools.curl, jpeg, `${jpeg}.r`, "image/jpeg")).mediaId;
  const thumbnail =
    `${mxcd.baseUrl}/_matrix/client/v1/media/thumbnail/${mxcd.serverName}/${image}` +
    "?width=32&height=32&method=crop";
  // `MXCD_ROUNDS_LARGE=1`: first upload and download a 1 MiB and a 64 MiB file,
  // as `npm run bench:hot` does before its first round.
  const extra: string[] = [];
  if (process.env.MXCD_ROUNDS_LARGE === "1") {
    for (const bytes of [2 ** 20, 64 * 2 ** 20]) {
      const file = join(dir, `large-${bytes}.bin`);
      writeFileSync(file, Buffer.alloc(bytes, 3));
      extra.push(
        downloadUrl(mxcd, (await uploadFile(mxcd, tools.curl, file, `${file}.r`)).mediaId),
      );
    }
  }
  for (const url of [download, thumbnail, ...extra]) {
    const res = await fetch(url, { headers: mxcd.authHeaders });
    if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
    await res.arrayBuffer();
  }
  /** Requests passed to Fastify, scavenges so far, and the young generation's size (MiB). */
  const scrape = async () => {
    const text = await (await fetch(`${mxcd.baseUrl}/metrics`)).text();
    let passed = 0;
    for (const m of text.matchAll(
      /^mxcd_fast_path_requests_total\{[^}]*result="passed"[^}]*\} (\d+)/gm,
    ))
      passed += Number(m[1]);
    const minor = Number(
      /^mxcd_nodejs_gc_duration_seconds_count\{kind="minor"\} (\d+)/m.exec(text)?.[1] ?? 0,
    );
    const major = Number(
      /^mxcd_nodejs_gc_duration_seconds_count\{kind="major"\} (\d+)/m.exec(text)?.[1] ?? 0,
    );
    let gcSeconds = 0;
    for (const m of text.matchAll(/^mxcd_nodejs_gc_duration_seconds_sum\{[^}]*\} ([\d.e+-]+)/gm))
      gcSeconds += Number(m[1]);
    const incremental = Number(
      /^mxcd_nodejs_gc_duration_seconds_count\{kind="incremental"\} (\d+)/m.exec(text)?.[1] ?? 0,
    );
    const young = Number(
      /^mxcd_nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(text)?.[1] ?? 0,
    );
    return { passed, minor, major: major + incremental, gcSeconds, young: young / 2 ** 20 };
  };
  const load = { threads: 2, connections: 32, seconds };
  console.log(`load average ${loadavg()[0]!.toFixed(2)}; node flags: ${flags.join(" ") || "none"}`);
  console.log(
    "| leg | round | CPU µs/request | req/s | passed to Fastify | scavenges per 1,000 | full GCs (+ incremental steps) | GC µs/request | young generation MiB before → after |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const [leg, url] of [
    ["4 KiB", download],
    ["thumbnail", thumbnail],
  ] as const) {
    const cold = await scrape();
    if (warmup > 0)
      await runWrk(tools.wrk, script, url, mxcd.authHeaders, { ...load, seconds: warmup });
    const warm = await scrape();
    console.log(
      `| ${leg} | warm-up | | | ${warm.passed - cold.passed} | | ${warm.major - cold.major} | | ` +
        `${cold.young.toFixed(1)} → ${warm.young.toFixed(1)} |`,
    );
    for (let round = 1; round <= rounds; round++) {
      if (idle > 0) await new Promise((resolve) => setTimeout(resolve, idle * 1000));
      const before = await scrape();
      const cpuBefore = cpuSeconds(mxcd.pid);
      const run = await runWrk(tools.wrk, script, url, mxcd.authHeaders, load);
      const cpu = ((cpuSeconds(mxcd.pid) - cpuBefore) * 1e6) / run.requests;
      const after = await scrape();
      const scavenges = ((after.minor - before.minor) * 1000) / run.requests;
      console.log(
        `| ${leg} | ${round} | ${cpu.toFixed(1)} | ${Math.round(run.requests / run.seconds)} | ` +
          `${after.passed - before.passed} | ${scavenges.toFixed(2)} | ${after.major - before.major} | ` +
          `${(((after.gcSeconds - before.gcSeconds) * 1e6) / run.requests).toFixed(1)} | ` +
          `${before.young.toFixed(1)} → ${after.young.toFixed(1)} |`,
      );
    }
  }
  console.log(`load average at the end ${loadavg()[0]!.toFixed(2)}`);
} finally {
  await cleanup.run();
}
