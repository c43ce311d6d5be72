/**
 * PDQ costs (issue 16), in one process, nothing asserted:
 *
 * (a) Hashing a photo-sized JPEG (1024×768 and 4000×3000, photo-like content:
 *     1/f noise, shapes, grain) with `hashImage` — full-resolution decode as
 *     HMA, then the JavaScript blur/DCT — against a 320×240 thumbnail of the
 *     same bytes by mxcd's own Thumbnailer (sharp; JPEG shrink-on-load) and by
 *     `vipsthumbnail` when installed. CPU seconds per image (user + system of
 *     every thread: libvips works on several), and wall time; the decode alone
 *     (sharp to raw pixels) is shown to split the hash's cost.
 * (b) PdqIndex over 10⁴ and 10⁶ stored hashes (90 % random, 10 % in clusters
 *     of 10 near-duplicates at distances 0–40): build time, memory (heap +
 *     array buffers after GC, hash strings excluded), and per-query latency
 *     p50/p99 for max_distance 16, 31, 47 and 63, over a mix of queries that
 *     match nothing and near-duplicates of stored hashes; plus the forced
 *     linear scan as the reference.
 *
 * (c) The decode trade-off (bench/pdq-tradeoff.ts): per real photo and
 *     synthetic image, the distance from cheaper decodes (JPEG/WebP
 *     shrink-on-load, the C++ CLI's 512×512 squash) to the exact hash, the
 *     effect on matching edits, and the CPU of each against the thumbnail.
 *
 * Run: `npm run bench:pdq` (PDQ_BENCH_REPS: hash repetitions, default 5;
 * PDQ_BENCH_QUERIES: queries per distance, default 1000; PDQ_BENCH_ONLY=hash,
 * tradeoff or index: one part alone).
 * Run it with the machine as quiet as you can: the load average is printed.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { hashImage } from "../src/hashing/pdq-image.js";
import { PdqIndex } from "../src/hashing/pdq-index.js";
import { Thumbnailer } from "../src/thumbnails/thumbnailer.js";
import { tradeoffBench } from "./pdq-tradeoff.js";
import { markdownTable } from "./support/markdown.js";
import { flip, randomHash } from "./support/pdq-hashes.js";

const REPS = Number(process.env.PDQ_BENCH_REPS ?? 5);
const QUERIES = Number(process.env.PDQ_BENCH_QUERIES ?? 1000);
/** `hash`, `tradeoff` or `index` runs that part alone. */
const ONLY = process.env.PDQ_BENCH_ONLY;
const MAX_PIXELS = 32 * 1024 * 1024;

/** CPU seconds (all threads) and wall seconds of `fn`, the median over `reps` runs. */
async function measure(
  reps: number,
  fn: () => Promise<unknown>,
): Promise<{ cpu: number; wall: number }> {
  await fn(); // warm-up (sharp loaded, JIT)
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let r = 0; r < reps; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    wall.push((performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1e6);
  }
  return { cpu: median(cpu), wall: median(wall) };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/** A photo-like JPEG: 1/f-ish value noise upscaled, circles, gaussian grain. */
async function photo(width: number, height: number): Promise<Buffer> {
  const small = 256;
  const px = Buffer.alloc(small * small * 3);
  for (let i = 0; i < px.length; i++) px[i] = 0;
  let seed = 12345;
  const rand = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (const g of [4, 8, 16, 32, 64]) {
    const grid = Array.from(
      { length: (g + 1) * (g + 1) * 3 },
      () => (rand() * 2 - 1) * (160 / Math.sqrt(g)),
    );
    for (let y = 0; y < small; y++) {
      for (let x = 0; x < small; x++) {
        const gx = (x / small) * g;
        const gy = (y / small) * g;
        const x0 = Math.floor(gx);
        const y0 = Math.floor(gy);
        for (let c = 0; c < 3; c++) {
          const at = (yy: number, xx: number) => grid[(yy * (g + 1) + xx) * 3 + c] as number;
          const v =
            (at(y0, x0) * (1 - gx + x0) + at(y0, x0 + 1) * (gx - x0)) * (1 - gy + y0) +
            (at(y0 + 1, x0) * (1 - gx + x0) + at(y0 + 1, x0 + 1) * (gx - x0)) * (gy - y0);
          const o = (y * small + x) * 3 + c;
          px[o] = Math.max(0, Math.min(255, (px[o] as number) + v + (g === 4 ? 120 : 0)));
        }
      }
    }
  }
  const base = await sharp(px, { raw: { width: small, height: small, channels: 3 } })
    .resize(width, height, { fit: "fill" })
    .png()
    .toBuffer();
  const grain = await sharp({
    create: {
      width,
      height,
      channels: 3,
      background: "#808080",
      noise: { type: "gaussian", mean: 128, sigma: 24 },
    },
  })
    .png()
    .toBuffer();
  return sharp(base)
    .composite([{ input: grain, blend: "soft-light" }])
    .jpeg({ quality: 85 })
    .toBuffer();
}

async function hashingBench(): Promise<string[]> {
  const thumbnailer = new Thumbnailer({ maxImagePixels: MAX_PIXELS, concurrency: 1 });
  const request = { width: 320, height: 240, method: "scale" as const, animated: false };
  const dir = mkdtempSync(join(tmpdir(), "mxcd-pdq-bench-"));
  const vips = spawnSync("vipsthumbnail", ["--vips-version"]).status === 0;
  const rows: string[][] = [];
  try {
    for (const [width, height] of [
      [1024, 768],
      [4000, 3000],
    ] as const) {
      const jpeg = await photo(width, height);
      const file = join(dir, `photo-${width}.jpg`);
      writeFileSync(file, jpeg);
      const hash = await measure(REPS, () => hashImage(jpeg, { maxImagePixels: MAX_PIXELS }));
      const decode = await measure(REPS, () =>
        sharp(jpeg, { sequentialRead: true }).removeAlpha().raw().toBuffer(),
      );
      const thumb = await measure(REPS, () => thumbnailer.generate(jpeg, request));
      const cells = (m: { cpu: number; wall: number }) => [
        `${(m.cpu * 1000).toFixed(0)}`,
        `${(m.wall * 1000).toFixed(0)}`,
      ];
      const label = `${width}×${height} JPEG (${(jpeg.length / 1024).toFixed(0)} KiB)`;
      rows.push([label, "PDQ hashImage", ...cells(hash), "1.00×"]);
      rows.push([
        label,
        "… of which sharp decode to raw",
        ...cells(decode),
        `${(decode.cpu / hash.cpu).toFixed(2)}×`,
      ]);
      rows.push([
        label,
        "thumbnail 320×240 (Thumbnailer)",
        ...cells(thumb),
        `${(thumb.cpu / hash.cpu).toFixed(2)}×`,
      ]);
      if (vips) {
        const out = join(dir, "thumb.jpg");
        const v = await measure(REPS, async () => {
          spawnSync("vipsthumbnail", [file, "-s", "320x240", "-o", `${out}[Q=80]`]);
        });
        // spawnSync's child CPU is not in process.cpuUsage(): show wall time only.
        rows.push([
          label,
          "vipsthumbnail 320×240 (process, wall)",
          "–",
          `${(v.wall * 1000).toFixed(0)}`,
          "–",
        ]);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return markdownTable({
    header: ["Image", "Work", "CPU ms", "Wall ms", "CPU vs hash"],
    rows,
  });
}

function heapAndBuffers(): number {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function indexBench(size: number): Promise<string[]> {
  const hashes: string[] = [];
  const clustered = Math.floor(size / 10);
  for (let n = 0; n < size - clustered; n++) hashes.push(randomHash());
  while (hashes.length < size) {
    const centre = randomHash();
    for (let k = 0; k < 10 && hashes.length < size; k++)
      hashes.push(flip(centre, Math.floor(Math.random() * 41)));
  }
  const before = heapAndBuffers();
  const t0 = performance.now();
  const index = new PdqIndex();
  for (const [id, hash] of hashes.entries()) index.add(id, hash);
  const buildMs = performance.now() - t0;
  const bytes = heapAndBuffers() - before;
  const scan = new PdqIndex({ strategy: "scan" });
  for (const [id, hash] of hashes.entries()) scan.add(id, hash);
  const queries = Array.from({ length: QUERIES }, (_, q) =>
    q % 2
      ? randomHash()
      : flip(hashes[Math.floor(Math.random() * size)] as string, Math.floor(Math.random() * 41)),
  );
  const rows: string[][] = [];
  const run = (target: PdqIndex, d: number, count: number, label: string) => {
    const times: number[] = [];
    let found = 0;
    for (const query of queries.slice(0, count)) {
      const q0 = performance.now();
      found += target.search(query, d).length;
      times.push(performance.now() - q0);
    }
    times.sort((a, b) => a - b);
    rows.push([
      label,
      String(d),
      quantile(times, 0.5).toFixed(3),
      quantile(times, 0.99).toFixed(3),
      (found / count).toFixed(1),
    ]);
  };
  for (const d of [16, 31, 47, 63]) run(index, d, queries.length, "index (auto)");
  run(scan, 31, Math.min(QUERIES, 200), "linear scan");
  run(scan, 63, Math.min(QUERIES, 200), "linear scan");
  const header =
    `${size.toLocaleString("en")} hashes: build ${buildMs.toFixed(0)} ms, ` +
    `${(bytes / 1024 ** 2).toFixed(0)} MiB (${(bytes / size).toFixed(0)} B/hash)`;
  return [
    header,
    "",
    ...markdownTable({ header: ["Path", "max_distance", "p50 ms", "p99 ms", "rows/query"], rows }),
  ];
}

async function main(): Promise<void> {
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(", ");
  const lines = [`# PDQ bench (${new Date().toISOString()}, load average ${load()})`, ""];
  if (ONLY === undefined || ONLY === "hash") {
    lines.push(`## Hashing vs a 320×240 thumbnail (median of ${REPS} runs)`, "");
    lines.push(...(await hashingBench()), "");
  }
  if (ONLY === undefined || ONLY === "tradeoff") {
    lines.push(`## Decode trade-off: exact vs shrink-on-load (median of ${REPS} runs)`, "");
    const synthetic = [
      { name: "synthetic", jpeg: await photo(1024, 768) },
      { name: "synthetic", jpeg: await photo(4000, 3000) },
    ];
    lines.push(...(await tradeoffBench((fn) => measure(REPS, fn), synthetic)), "");
    lines.push(`Load average after the trade-off: ${load()}`, "");
  }
  if (ONLY === undefined || ONLY === "index") {
    for (const size of [10_000, 1_000_000]) {
      lines.push(`## Index, ${(await indexBench(size)).join("\n")}`, "");
    }
  }
  lines.push(`Load average at the end: ${load()}`);
  console.log(lines.join("\n"));
}

await main();
