/**
 * The PDQ decode trade-off (issue 16, `npm run bench:pdq`, part "tradeoff"):
 * how far hashes from cheaper decodes land from the exact full-resolution
 * hash HMA computes, what that does to matching, and what each costs.
 *
 * Images: real photographs from Debian's `plasma-workspace-wallpapers`
 * (/usr/share/wallpapers; skipped with a message when absent — tests never
 * use them), plus the bench's synthetic 1/f-noise JPEGs. Per image:
 *
 * - exact: `hashImage` as shipped (full resolution, as HMA's pdqhash);
 * - min 1024 / min 512: `hashImage` with `decodeMinSide` (JPEG/WebP
 *   shrink-on-load keeping the shorter side >= 1024 / 512);
 * - the same three on a WebP re-encode (q=90) of the image, distances to the
 *   WebP's own exact hash;
 * - squash 512: Meta's C++ CLI (pdqio.cpp: an image over 512 on a side is
 *   resized to exactly 512×512, CImg nearest-neighbour), from the full decode;
 * - CPU ms (user + system, all threads) of each, and of the 320×240 thumbnail.
 *
 * Matching: each image's JPEG q=50, half-size, 1-pixel-crop and +10 %
 * brightness re-encodes, hashed exact and cheap, against the original's exact
 * hash (a bank hash from HMA) — distance with both sides exact vs one cheap.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { hammingDistance, pdqFromPixels } from "../src/hashing/pdq.js";
import { decodeForPdq } from "../src/hashing/pdq-decode.js";
import { hashImage } from "../src/hashing/pdq-image.js";
import { Thumbnailer } from "../src/thumbnails/thumbnailer.js";
import { markdownTable } from "./support/markdown.js";

const WALLPAPERS = "/usr/share/wallpapers";
/** The photographs among plasma-workspace-wallpapers 5.27 (the rest are drawings). */
const PHOTOS = [
  "BytheWater",
  "ColdRipple",
  "ColorfulCups",
  "DarkestHour",
  "EveningGlow",
  "FallenLeaf",
  "Grey",
  "Kite",
  "OneStandsOut",
  "Path",
  "summer_1am",
  "Volna",
];
const MAX_PIXELS = 64 * 1024 * 1024;
const MODES = [
  { name: "exact", minSide: null },
  { name: "min 1024", minSide: 1024 },
  { name: "min 512", minSide: 512 },
] as const;

type Measure = (fn: () => Promise<unknown>) => Promise<{ cpu: number }>;

/** Real photos (the largest JPEG of each wallpaper), or [] when the package is absent. */
export function realPhotos(): { name: string; file: string }[] {
  const found: { name: string; file: string }[] = [];
  for (const name of PHOTOS) {
    const dir = join(WALLPAPERS, name, "contents", "images");
    if (!existsSync(dir)) continue;
    const largest = readdirSync(dir)
      .filter((f) => /^\d+x\d+\.jpg$/.test(f))
      .map((f) => ({ f, px: f.split(/[x.]/).slice(0, 2).map(Number) as [number, number] }))
      .sort((a, b) => b.px[0] * b.px[1] - a.px[0] * a.px[1])[0];
    if (largest) found.push({ name, file: join(dir, largest.f) });
  }
  return found;
}

/** The hash even below quality 50 (hashImage would store none), for distances. */
async function hashOf(input: Buffer, minSide: number | null): Promise<string> {
  const pixels = await decodeForPdq(input, MAX_PIXELS, { minSide });
  if ("reason" in pixels) throw new Error(`no pixels: ${pixels.reason}`);
  return pdqFromPixels(pixels.data, pixels.height, pixels.width, pixels.channels).hash;
}

/** What mxcd runs per image (the CPU measured): hashImage with the decode option. */
const hashCost = (input: Buffer, minSide: number | null) => () =>
  hashImage(input, { maxImagePixels: MAX_PIXELS, decodeMinSide: minSide });

/** Meta's C++ CLI: over 512 on a side → exactly 512×512, nearest neighbour (CImg). */
async function squash512(input: Buffer): Promise<string> {
  const { data, info } = await sharp(input, { sequentialRead: true })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = info;
  if (width <= 512 && height <= 512) return pdqFromPixels(data, height, width, channels).hash;
  const out = Buffer.alloc(512 * 512 * channels);
  for (let y = 0; y < 512; y++) {
    const sy = Math.floor((y * height) / 512);
    for (let x = 0; x < 512; x++) {
      const sx = Math.floor((x * width) / 512);
      data.copy(
        out,
        (y * 512 + x) * channels,
        (sy * width + sx) * channels,
        (sy * width + sx + 1) * channels,
      );
    }
  }
  return pdqFromPixels(out, 512, 512, channels).hash;
}

/** The four edits of the tests, each a JPEG (q=50 for the first, q=90 otherwise). */
async function edits(input: Buffer): Promise<Record<string, Buffer>> {
  const { width = 0, height = 0 } = await sharp(input).metadata();
  return {
    "JPEG q=50": await sharp(input).jpeg({ quality: 50 }).toBuffer(),
    "half size": await sharp(input)
      .resize(Math.round(width / 2), Math.round(height / 2))
      .jpeg({ quality: 90 })
      .toBuffer(),
    "1-px crop": await sharp(input)
      .extract({ left: 1, top: 1, width: width - 2, height: height - 2 })
      .jpeg({ quality: 90 })
      .toBuffer(),
    "+10% brightness": await sharp(input).linear(1.1, 0).jpeg({ quality: 90 }).toBuffer(),
  };
}

/** The trade-off tables as Markdown lines. */
export async function tradeoffBench(
  measure: Measure,
  synthetic: { name: string; jpeg: Buffer }[],
): Promise<string[]> {
  const photos = realPhotos();
  const lines: string[] = [];
  if (photos.length === 0) {
    lines.push(
      `Real photos skipped: ${WALLPAPERS} has none of them ` +
        "(`apt-get install plasma-workspace-wallpapers` provides them).",
      "",
    );
  }
  const images = [
    ...photos.map((p) => ({ name: p.name, jpeg: readFileSync(p.file) })),
    ...synthetic,
  ];
  const thumbnailer = new Thumbnailer({ maxImagePixels: MAX_PIXELS, concurrency: 1 });
  const request = { width: 320, height: 240, method: "scale" as const, animated: false };
  const ms = (m: { cpu: number }) => (m.cpu * 1000).toFixed(0);
  const decodeRows: string[][] = [];
  const costRows: string[][] = [];
  const matching = new Map<string, number[]>();
  for (const { name, jpeg } of images) {
    const meta = await sharp(jpeg).metadata();
    const label = `${name} ${meta.width}×${meta.height}${meta.isProgressive ? " prog." : ""}`;
    const exact = await hashOf(jpeg, null);
    const quality = (await hashImage(jpeg, { maxImagePixels: MAX_PIXELS })).quality;
    const webp = await sharp(jpeg).webp({ quality: 90 }).toBuffer();
    const webpExact = await hashOf(webp, null);
    const d = (a: string, b: string) => String(hammingDistance(a, b));
    decodeRows.push([
      label,
      String(quality),
      d(exact, await hashOf(jpeg, 1024)),
      d(exact, await hashOf(jpeg, 512)),
      d(webpExact, await hashOf(webp, 1024)),
      d(webpExact, await hashOf(webp, 512)),
      d(exact, await squash512(jpeg)),
    ]);
    const cost = {
      exact: await measure(hashCost(jpeg, null)),
      m1024: await measure(hashCost(jpeg, 1024)),
      m512: await measure(hashCost(jpeg, 512)),
      webp: await measure(hashCost(webp, null)),
      webp512: await measure(hashCost(webp, 512)),
      squash: await measure(() => squash512(jpeg)),
      thumb: await measure(() => thumbnailer.generate(jpeg, request)),
    };
    costRows.push([
      label,
      ms(cost.exact),
      ms(cost.m1024),
      ms(cost.m512),
      ms(cost.squash),
      ms(cost.thumb),
      `${(cost.thumb.cpu / cost.exact.cpu).toFixed(2)}×`,
      `${(cost.thumb.cpu / cost.m512.cpu).toFixed(2)}×`,
      `${ms(cost.webp)} / ${ms(cost.webp512)}`,
    ]);
    for (const [edit, bytes] of Object.entries(await edits(jpeg))) {
      for (const mode of MODES) {
        const key = `${edit}|${mode.name}`;
        const list = matching.get(key) ?? [];
        list.push(hammingDistance(exact, await hashOf(bytes, mode.minSide)));
        matching.set(key, list);
      }
    }
  }
  lines.push(
    "Distance to the exact full-resolution hash (bits; WebP columns: to the WebP's own exact hash)",
    "",
    ...markdownTable({
      header: ["Image", "Q", "min 1024", "min 512", "WebP min 1024", "WebP min 512", "squash 512²"],
      rows: decodeRows,
      numeric: [1, 2, 3, 4, 5, 6],
    }),
    "",
    "CPU ms per hash (median), and the 320×240 thumbnail of the same bytes",
    "",
    ...markdownTable({
      header: [
        "Image",
        "exact",
        "min 1024",
        "min 512",
        "squash 512²",
        "thumbnail",
        "thumb ÷ exact",
        "thumb ÷ min 512",
        "WebP exact / min 512",
      ],
      rows: costRows,
      numeric: [1, 2, 3, 4, 5, 6, 7],
    }),
    "",
    `Matching: distance from the original's exact hash to the edit's hash (over ${images.length} images)`,
    "",
  );
  const stats = (list: number[]) => {
    const sorted = [...list].sort((a, b) => a - b);
    return [
      String(sorted[Math.floor(sorted.length / 2)]),
      String(sorted[sorted.length - 1]),
      String(sorted.filter((v) => v > 31).length),
    ];
  };
  const matchRows = [...matching.entries()].map(([key, list]) => [
    ...key.split("|"),
    ...stats(list),
  ]);
  lines.push(
    ...markdownTable({
      header: ["Edit", "edit hashed", "median", "max", "> 31"],
      rows: matchRows,
      numeric: [2, 3, 4],
    }),
  );
  return lines;
}
