/**
 * The `blur-preview-backfill` job's cost per item (docs/jobs.md), in one
 * process, nothing asserted: `BLUR_BENCH_ITEMS` (default 60, one console
 * page) old 1600×1200 photo-like JPEGs on a fresh SQLite database and a
 * filesystem store, backfilled by the job through the JobRunner, in two legs
 * run alternately (`BLUR_BENCH_ROUNDS`, default 2):
 *
 * - `original`: no stored thumbnails, each preview made from the original;
 * - `thumbnail`: each with a stored 320×240 `scale` thumbnail, the job's
 *   preferred source.
 *
 * CPU ms per item (user + system of every thread of the process, so libvips'
 * own threads count), wall ms per item, and the RSS high-water mark after
 * the leg. Run: `npx tsx bench/blur-backfill-bench.ts`; the load average is printed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import sharp from "sharp";
import { createDatabase } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { createBlurPreviewBackfill } from "../src/jobs/create-blur-preview-backfill.js";
import { JobRunner } from "../src/jobs/job-runner.js";
import { createLogger } from "../src/logging/logger.js";
import { createBlobStore } from "../src/storage/create-blob-store.js";
import { localContentKey, localThumbnailKey } from "../src/storage/media-paths.js";
import { Thumbnailer } from "../src/thumbnails/thumbnailer.js";

const ITEMS = Number(process.env.BLUR_BENCH_ITEMS ?? 60);
/** `jpeg` (default; libvips shrinks on load) or `png` (decoded at full size). */
const FORMAT = process.env.BLUR_BENCH_FORMAT === "png" ? "png" : "jpeg";
const ROUNDS = Number(process.env.BLUR_BENCH_ROUNDS ?? 2);
const logger = createLogger("silent");

/** A photo-like JPEG: smooth noise blown up, plus grain. */
async function photo(seed: number): Promise<Buffer> {
  const small = Buffer.alloc(24 * 18 * 3);
  let a = seed >>> 0;
  for (let i = 0; i < small.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    small[i] = a >>> 24;
  }
  return sharp(small, { raw: { width: 24, height: 18, channels: 3 } })
    .resize(1600, 1200, { kernel: "cubic" })
    .toFormat(FORMAT, FORMAT === "jpeg" ? { quality: 85 } : {})
    .toBuffer();
}

async function leg(kind: "original" | "thumbnail", photos: readonly Buffer[]) {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-blur-bench-"));
  const database = createDatabase({ engine: "sqlite", path: join(dir, "mxcd.sqlite") });
  const store = createBlobStore({ engine: "filesystem", path: join(dir, "media") });
  try {
    await runMigrations(database);
    for (const [i, bytes] of photos.entries()) {
      const id = `m${String(i).padStart(5, "0")}`;
      await store.write(localContentKey(id), Readable.from([bytes]));
      await database.db
        .insertInto("local_media_repository")
        .values({
          media_id: id,
          media_type: "image/jpeg",
          media_length: bytes.length,
          created_ts: 1000 + i,
        })
        .execute();
      if (kind === "thumbnail") {
        const thumb = await sharp(bytes).resize(320, 240, { fit: "inside" }).jpeg().toBuffer();
        await store.write(
          localThumbnailKey(id, 320, 240, "image/jpeg", "scale"),
          Readable.from([thumb]),
        );
        await database.db
          .insertInto("local_media_repository_thumbnails")
          .values({
            media_id: id,
            thumbnail_width: 320,
            thumbnail_height: 240,
            thumbnail_type: "image/jpeg",
            thumbnail_method: "scale",
            thumbnail_length: thumb.length,
          })
          .execute();
      }
    }
    const job = createBlurPreviewBackfill(
      { enable_blur_preview_backfill: true },
      {
        database,
        store,
        thumbnailer: new Thumbnailer({ maxImagePixels: 32 * 1024 * 1024, concurrency: 2 }),
        logger,
      },
    )!;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await new JobRunner(database, [job], logger, { pauseMs: 0 }).run({ failFast: true });
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    if (job.stats.made !== photos.length) throw new Error(`made ${job.stats.made}`);
    return {
      kind,
      cpuMs: (cpu.user + cpu.system) / 1000 / photos.length,
      wallMs: wall / photos.length,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    await database.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const photos = await Promise.all(Array.from({ length: ITEMS }, (_, i) => photo(i + 1)));
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}; ${ITEMS} ${FORMAT} items`,
);
for (let round = 0; round < ROUNDS; round++) {
  const order =
    round % 2 === 0 ? (["original", "thumbnail"] as const) : (["thumbnail", "original"] as const);
  for (const kind of order) {
    const r = await leg(kind, photos);
    console.log(
      `${r.kind.padEnd(9)} cpu ${r.cpuMs.toFixed(1)} ms/item  wall ${r.wallMs.toFixed(1)} ms/item  maxRSS ${r.maxRssMiB.toFixed(0)} MiB`,
    );
  }
}
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(" ")}`,
);
