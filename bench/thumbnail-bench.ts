/**
 * Thumbnails per second: mxcd generating thumbnails on request against
 * `vipsthumbnail` (libvips's own command-line thumbnailer) over the same
 * photo-like JPEG files.
 *
 * mxcd runs with `dynamic_thumbnails: true` and `thumbnail_sizes: []`, so
 * nothing is generated at upload: every request below decodes, resizes,
 * encodes and stores a new thumbnail. A client asks for one 320×240
 * `method=scale` thumbnail of each image, two requests at a time (the
 * default `max_thumbnail_concurrency` is 2). vipsthumbnail runs as two
 * processes side by side, each over half of the files, so both sides may
 * keep two cores busy; it writes JPEG at quality 80, as mxcd does. It is
 * timed twice, before and after mxcd, and the mean is the reference.
 *
 * An extra image, not counted, warms both up first. Every thumbnail mxcd
 * sent is decoded afterwards to check it is a JPEG of the expected size.
 */
import { mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import sharp from "sharp";
import type { Cleanup } from "./support/cleanup.js";
import { cpuSeconds, reapedChildrenCpuSeconds } from "./support/cpu-time.js";
import { type MxcdServer, startMxcd, uploadFile } from "./support/mxcd-server.js";
import { runChecked } from "./support/processes.js";
import { RssSampler } from "./support/rss-sampler.js";
import type { Tools } from "./support/tools.js";

/** The requested thumbnail: the spec's suggested 320×240 scale size. */
const REQUEST = { width: 320, height: 240, method: "scale" } as const;
/** Requests in flight at once: the default `max_thumbnail_concurrency`. */
const CLIENT_CONCURRENCY = 2;
/** vipsthumbnail processes run side by side, each over its share of the files. */
const VIPS_PROCESSES = 2;

export interface ThumbnailBenchOptions {
  readonly tools: Tools;
  /** `dist/src/cli/main.js`. */
  readonly cli: string;
  /** An empty folder for the images, outputs and the server's files. */
  readonly dir: string;
  /** How many images are thumbnailed (timed); one more warms up. */
  readonly images: number;
  readonly width: number;
  readonly height: number;
}

/** One side's timing. */
export interface ThumbnailRate {
  /** Wall-clock seconds for all images. */
  readonly seconds: number;
  readonly perSecond: number;
  /** CPU seconds (user + system) the thumbnailer used. */
  readonly cpuSeconds: number;
}

export interface ThumbnailResult {
  readonly images: number;
  readonly width: number;
  readonly height: number;
  /** Mean size of the source JPEGs, bytes. */
  readonly meanSourceBytes: number;
  readonly mxcd: ThumbnailRate & { readonly rssBaseline: number; readonly rssPeak: number };
  /** Mean of the runs. */
  readonly vips: ThumbnailRate & { readonly runs: readonly number[] };
}

/** Generates the images, then times mxcd and vipsthumbnail over them. */
export async function benchThumbnails(
  options: ThumbnailBenchOptions,
  cleanup: Cleanup,
): Promise<ThumbnailResult> {
  const { tools, dir } = options;
  const sources = join(dir, "images");
  mkdirSync(sources);
  console.error(`thumbnails: generating ${options.images + 1} images`);
  const files: string[] = [];
  for (let i = 0; i <= options.images; i++) {
    const file = join(sources, `photo-${String(i).padStart(4, "0")}.jpg`);
    await writePhoto(file, i + 1, options.width, options.height);
    files.push(file);
  }
  const [warmup, ...timed] = files as [string, ...string[]];
  const meanSourceBytes = timed.reduce((sum, f) => sum + statSync(f).size, 0) / timed.length;

  const serverDir = join(dir, "mxcd");
  mkdirSync(serverDir);
  const mxcd = await startMxcd(
    {
      cli: options.cli,
      dir: serverDir,
      extraConfig: { dynamic_thumbnails: true, thumbnail_sizes: [] },
    },
    cleanup,
  );
  console.error("thumbnails: uploading");
  const ids: string[] = [];
  for (const file of files) {
    const { mediaId } = await uploadFile(mxcd, tools.curl, file, `${file}.json`, "image/jpeg");
    ids.push(mediaId);
  }
  const [warmupId, ...timedIds] = ids as [string, ...string[]];

  const vipsOut = join(dir, "vips");
  mkdirSync(vipsOut);
  await runVips(tools, [warmup], vipsOut);
  await thumbnail(mxcd, warmupId);

  console.error("thumbnails: vipsthumbnail");
  const vipsBefore = await runVips(tools, timed, vipsOut);
  console.error("thumbnails: mxcd");
  const mxcdRun = await timeMxcd(mxcd, timedIds);
  console.error("thumbnails: vipsthumbnail again");
  const vipsAfter = await runVips(tools, timed, vipsOut);
  await mxcd.stop();

  const produced = readdirSync(vipsOut).filter((name) => name.endsWith(".jpg")).length;
  if (produced !== files.length) {
    throw new Error(`vipsthumbnail wrote ${produced} thumbnails, expected ${files.length}`);
  }
  for (const bytes of mxcdRun.thumbnails) await checkThumbnail(bytes, options);

  const vipsSeconds = (vipsBefore.seconds + vipsAfter.seconds) / 2;
  return {
    images: timed.length,
    width: options.width,
    height: options.height,
    meanSourceBytes,
    mxcd: {
      seconds: mxcdRun.seconds,
      perSecond: timed.length / mxcdRun.seconds,
      cpuSeconds: mxcdRun.cpuSeconds,
      rssBaseline: mxcdRun.rss.baseline,
      rssPeak: mxcdRun.rss.peak,
    },
    vips: {
      seconds: vipsSeconds,
      perSecond: timed.length / vipsSeconds,
      cpuSeconds: (vipsBefore.cpuSeconds + vipsAfter.cpuSeconds) / 2,
      runs: [vipsBefore.seconds, vipsAfter.seconds],
    },
  };
}

/**
 * A JPEG (quality 85) that compresses like a photograph rather than a flat
 * test card: colour gradients, a diagonal wave, soft blobs and per-pixel
 * noise, different for every `seed`.
 */
async function writePhoto(path: string, seed: number, width: number, height: number) {
  const random = xorshift(seed);
  // A table of noise read at a random offset per row: per-pixel randomness without a call each.
  const noise = Int8Array.from({ length: 1 << 16 }, () => Math.round((random() - 0.5) * 48));
  const blobs = Array.from({ length: 5 }, () => ({
    x: random() * width,
    y: random() * height,
    radius2: ((0.1 + random() * 0.25) * width) ** 2,
    shade: (random() - 0.5) * 160,
  }));
  const [fx, fy] = [(2 + random() * 6) / width, (2 + random() * 6) / height];
  const tint = [random(), random(), random()];
  // Clamped: out-of-range values saturate at 0 and 255.
  const pixels = new Uint8ClampedArray(width * height * 3);
  const light = new Float64Array(width);
  let i = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) light[x] = 40 * Math.sin((x * fx + y * fy) * 2 * Math.PI);
    for (const blob of blobs) {
      const dy2 = (y - blob.y) ** 2;
      if (dy2 >= blob.radius2) continue;
      const half = Math.sqrt(blob.radius2 - dy2);
      const [from, to] = [Math.max(0, Math.ceil(blob.x - half)), Math.min(width, blob.x + half)];
      for (let x = from; x < to; x++) {
        light[x]! += blob.shade * (1 - ((x - blob.x) ** 2 + dy2) / blob.radius2);
      }
    }
    let n = Math.floor(random() * noise.length);
    for (let x = 0; x < width; x++) {
      const base = 40 + light[x]!;
      pixels[i++] = base + (x / width) * 140 * tint[0]! + noise[n++ & 0xffff]!;
      pixels[i++] = base + (y / height) * 140 * tint[1]! + noise[n++ & 0xffff]!;
      pixels[i++] = base + ((x + y) / (width + height)) * 140 * tint[2]! + noise[n++ & 0xffff]!;
    }
  }
  await sharp(Buffer.from(pixels.buffer), { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 85 })
    .toFile(path);
}

function xorshift(seed: number): () => number {
  let state = Math.imul(seed, 2654435761) >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4294967296;
  };
}

/** GETs the 320×240 scale thumbnail of `mediaId`; rejects unless it is a 200 JPEG. */
async function thumbnail(mxcd: MxcdServer, mediaId: string): Promise<Buffer> {
  const query = `width=${REQUEST.width}&height=${REQUEST.height}&method=${REQUEST.method}`;
  const url = `${mxcd.baseUrl}/_matrix/client/v1/media/thumbnail/${mxcd.serverName}/${mediaId}?${query}`;
  const response = await fetch(url, { headers: mxcd.authHeaders });
  const body = Buffer.from(await response.arrayBuffer());
  const type = response.headers.get("content-type");
  if (response.status !== 200 || type !== "image/jpeg") {
    throw new Error(`thumbnail of ${mediaId}: ${response.status} ${type}: ${body.toString()}`);
  }
  return body;
}

/** Requests every thumbnail, CLIENT_CONCURRENCY at a time, sampling the server's RSS and CPU. */
async function timeMxcd(mxcd: MxcdServer, ids: readonly string[]) {
  const thumbnails: Buffer[] = [];
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++]!;
      thumbnails.push(await thumbnail(mxcd, id));
    }
  };
  const sampler = new RssSampler(mxcd.pid, 50);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  sampler.markStart();
  const cpuBefore = cpuSeconds(mxcd.pid);
  const started = performance.now();
  await Promise.all(Array.from({ length: CLIENT_CONCURRENCY }, worker)).finally(() =>
    sampler.stop(),
  );
  const seconds = (performance.now() - started) / 1000;
  return { seconds, cpuSeconds: cpuSeconds(mxcd.pid) - cpuBefore, rss: sampler.stop(), thumbnails };
}

/**
 * `vipsthumbnail --size 320x240 -o OUT/%s.jpg[Q=80] FILES...` as VIPS_PROCESSES
 * processes side by side, each over its share of `files`; the wall-clock time
 * until the last exits, and the CPU time they used.
 */
async function runVips(tools: Tools, files: readonly string[], out: string) {
  const shares = Array.from({ length: VIPS_PROCESSES }, (_, p) =>
    files.filter((_, i) => i % VIPS_PROCESSES === p),
  ).filter((share) => share.length > 0);
  const size = `${REQUEST.width}x${REQUEST.height}`;
  const cpuBefore = reapedChildrenCpuSeconds();
  const started = performance.now();
  await Promise.all(
    shares.map((share) =>
      runChecked(tools.vipsthumbnail, ["--size", size, "-o", join(out, "%s.jpg[Q=80]"), ...share]),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  return { seconds, cpuSeconds: reapedChildrenCpuSeconds() - cpuBefore };
}

/** Rejects unless `bytes` is a JPEG fitting 320×240 with the source's aspect ratio. */
async function checkThumbnail(bytes: Buffer, options: ThumbnailBenchOptions): Promise<void> {
  const meta = await sharp(bytes).metadata();
  const scale = Math.min(REQUEST.width / options.width, REQUEST.height / options.height);
  const [w, h] = [Math.round(options.width * scale), Math.round(options.height * scale)];
  if (meta.format !== "jpeg" || Math.abs(meta.width - w) > 1 || Math.abs(meta.height - h) > 1) {
    throw new Error(
      `mxcd sent a ${meta.format} of ${meta.width}×${meta.height}, expected ${w}×${h}`,
    );
  }
}
