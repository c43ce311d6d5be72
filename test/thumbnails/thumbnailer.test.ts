import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import sharp from "sharp";
import { DEFAULT_THUMBNAIL_SIZES } from "../../src/config/config-schema.js";
import {
  ImageTooLargeError,
  NotAnImageError,
  type StoredThumbnail,
  selectThumbnail,
  servesOriginal,
  sniffImageFormat,
  Thumbnailer,
  type ThumbnailRequest,
  type ThumbnailResult,
  thumbnailGeometry,
  thumbnailPlan,
} from "../../src/thumbnails/thumbnailer.js";

// Test images are made here with sharp itself, from a gradient so that
// encoders and resizers have real work to do.

function gradient(width: number, height: number, channels: 3 | 4, frame = 0): Buffer {
  const pixels = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * channels;
      pixels[i] = (x * 7 + frame * 50) & 0xff;
      pixels[i + 1] = (y * 5) & 0xff;
      pixels[i + 2] = ((x + y) * 3) & 0xff;
      if (channels === 4) pixels[i + 3] = x % 2 ? 255 : 128;
    }
  }
  return pixels;
}

type StillFormat = "png" | "jpeg" | "webp" | "tiff" | "avif" | "gif";

function still(width: number, height: number, format: StillFormat, alpha = false): Promise<Buffer> {
  const channels = alpha ? 4 : 3;
  return sharp(gradient(width, height, channels), { raw: { width, height, channels } })
    .toFormat(format)
    .toBuffer();
}

/** An animation built from raw frames stacked vertically (`pageHeight`). */
function animation(width: number, height: number, frames: number, format: "gif" | "webp") {
  const stack = Buffer.concat(
    Array.from({ length: frames }, (_, f) => gradient(width, height, 4, f)),
  );
  const image = sharp(stack, {
    raw: { width, height: height * frames, channels: 4, pageHeight: height },
  });
  const delay = Array.from({ length: frames }, () => 100);
  return (format === "gif" ? image.gif({ delay, loop: 0 }) : image.webp({ delay })).toBuffer();
}

async function described(result: ThumbnailResult) {
  assert.equal(result.kind, "image");
  const meta = await sharp(result.bytes).metadata();
  return { meta, result };
}

function request(width: number, height: number, method: "crop" | "scale", animated = false) {
  return { width, height, method, animated } satisfies ThumbnailRequest;
}

const thumbnailer = new Thumbnailer({ maxImagePixels: 32 * 1024 * 1024, concurrency: 2 });

describe("sniffImageFormat", () => {
  it("names each supported format from its magic bytes", async () => {
    for (const format of ["png", "jpeg", "webp", "tiff", "avif", "gif"] as const) {
      assert.equal(sniffImageFormat(await still(8, 8, format)), format);
    }
  });

  it("names nothing for SVG, text, random bytes or an empty buffer", () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>');
    assert.equal(sniffImageFormat(svg), undefined);
    assert.equal(sniffImageFormat(Buffer.from("hello world")), undefined);
    assert.equal(sniffImageFormat(Buffer.alloc(0)), undefined);
    assert.equal(sniffImageFormat(Buffer.from([0xff, 0xd8])), undefined);
  });
});

describe("Thumbnailer.probe", () => {
  it("reads format, size and content type of stills", async () => {
    const png = await thumbnailer.probe(await still(120, 80, "png"));
    assert.deepEqual(png, {
      format: "png",
      contentType: "image/png",
      width: 120,
      height: 80,
      orientation: 1,
      pages: 1,
      animated: false,
      hasAlpha: false,
    });
    const jpeg = await thumbnailer.probe(await still(30, 40, "jpeg"));
    assert.equal(jpeg?.contentType, "image/jpeg");
    const webp = await thumbnailer.probe(await still(30, 40, "webp", true));
    assert.equal(webp?.contentType, "image/webp");
    assert.equal(webp?.hasAlpha, true);
    const avif = await thumbnailer.probe(await still(30, 40, "avif"));
    assert.equal(avif?.contentType, "image/avif");
  });

  it("marks multi-frame GIF and WebP as animated", async () => {
    const gif = await thumbnailer.probe(await animation(40, 30, 4, "gif"));
    assert.equal(gif?.animated, true);
    assert.equal(gif?.pages, 4);
    assert.equal(gif?.height, 30);
    const webp = await thumbnailer.probe(await animation(40, 30, 3, "webp"));
    assert.equal(webp?.animated, true);
  });

  it("reports the displayed size of an EXIF-rotated JPEG", async () => {
    const rotated = await sharp(await still(60, 30, "jpeg"))
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const info = await thumbnailer.probe(rotated);
    assert.equal(info?.orientation, 6);
    assert.deepEqual([info?.width, info?.height], [30, 60]);
  });

  it("answers undefined for garbage, empty input and SVG, never throwing", async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>');
    const fakePng = Buffer.concat([Buffer.from("\x89PNG\r\n\x1a\n", "latin1"), randomBytes(64)]);
    for (const input of [randomBytes(1024), Buffer.alloc(0), svg, fakePng]) {
      assert.equal(await thumbnailer.probe(input), undefined);
    }
  });
});

describe("thumbnailGeometry", () => {
  it("scales to fit inside the box, keeping the aspect ratio", () => {
    const g = thumbnailGeometry({ width: 1000, height: 500 }, request(320, 240, "scale"));
    assert.deepEqual([g.width, g.height], [320, 160]);
  });

  it("crops the centre after covering the box", () => {
    const g = thumbnailGeometry({ width: 1000, height: 500 }, request(96, 96, "crop"));
    assert.deepEqual(g, {
      resizeWidth: 192,
      resizeHeight: 96,
      left: 48,
      top: 0,
      width: 96,
      height: 96,
    });
  });

  it("crops the box's aspect out of a source smaller in one dimension", () => {
    const g = thumbnailGeometry({ width: 200, height: 50 }, request(96, 96, "crop"));
    assert.deepEqual(g, {
      resizeWidth: 200,
      resizeHeight: 50,
      left: 75,
      top: 0,
      width: 50,
      height: 50,
    });
  });

  it("never enlarges and never goes below one pixel", () => {
    for (const [sw, sh] of [
      [1, 10_000],
      [10_000, 1],
      [3, 7],
      [5000, 4000],
    ] as const) {
      for (const size of [...DEFAULT_THUMBNAIL_SIZES, request(1, 10_000, "crop")]) {
        const g = thumbnailGeometry({ width: sw, height: sh }, size);
        assert.ok(g.resizeWidth <= sw && g.resizeHeight <= sh, `${sw}x${sh} ${size.method}`);
        assert.ok(g.width >= 1 && g.height >= 1);
        assert.ok(g.left + g.width <= g.resizeWidth && g.top + g.height <= g.resizeHeight);
      }
    }
  });
});

describe("Thumbnailer.generate", () => {
  it("makes the five default sizes of a wide PNG, as PNG", async () => {
    const source = await still(1000, 500, "png");
    const expected = [
      [32, 32],
      [96, 96],
      [320, 160],
      [640, 320],
      [800, 400],
    ];
    for (const [i, size] of DEFAULT_THUMBNAIL_SIZES.entries()) {
      const { meta, result } = await described(
        await thumbnailer.generate(source, { ...size, animated: false }),
      );
      assert.equal(result.kind === "image" && result.contentType, "image/png");
      assert.equal(meta.format, "png");
      assert.deepEqual([meta.width, meta.height], expected[i]);
      assert.deepEqual(result.kind === "image" && [result.width, result.height], expected[i]);
    }
  });

  it("keeps a tall image's aspect ratio when scaling and fills the box when cropping", async () => {
    const source = await still(300, 1200, "png");
    const scaled = await described(await thumbnailer.generate(source, request(320, 240, "scale")));
    assert.deepEqual([scaled.meta.width, scaled.meta.height], [60, 240]);
    const cropped = await described(await thumbnailer.generate(source, request(100, 50, "crop")));
    assert.deepEqual([cropped.meta.width, cropped.meta.height], [100, 50]);
    const tall = await described(await thumbnailer.generate(source, request(50, 100, "crop")));
    assert.deepEqual([tall.meta.width, tall.meta.height], [50, 100]);
  });

  it("gives JPEG for JPEG and strips metadata", async () => {
    const source = await sharp(await still(400, 300, "jpeg"))
      .withMetadata({ density: 300 })
      .toBuffer();
    const { meta, result } = await described(
      await thumbnailer.generate(source, request(96, 96, "crop")),
    );
    assert.equal(result.kind === "image" && result.contentType, "image/jpeg");
    assert.equal(meta.format, "jpeg");
    assert.equal(meta.exif, undefined);
    assert.equal(meta.icc, undefined);
  });

  it("answers with the original for a source no larger than the request", async () => {
    const small = await still(20, 20, "png");
    assert.deepEqual(await thumbnailer.generate(small, request(320, 240, "scale")), {
      kind: "original",
    });
    assert.deepEqual(await thumbnailer.generate(small, request(32, 32, "crop")), {
      kind: "original",
    });
    const dot = await still(1, 1, "jpeg");
    assert.deepEqual(await thumbnailer.generate(dot, request(1, 1, "crop")), { kind: "original" });
  });

  it("re-encodes a small original whose type is not a valid thumbnail type", async () => {
    const { meta, result } = await described(
      await thumbnailer.generate(await still(20, 20, "tiff"), request(320, 240, "scale")),
    );
    assert.equal(result.kind === "image" && result.contentType, "image/jpeg");
    assert.deepEqual([meta.width, meta.height], [20, 20]);
  });

  it("does not upscale a crop when the source is smaller in one dimension", async () => {
    const source = await still(200, 50, "png");
    const { meta } = await described(await thumbnailer.generate(source, request(96, 96, "crop")));
    assert.deepEqual([meta.width, meta.height], [50, 50]);
  });

  it("maps GIF and transparent WebP to PNG, opaque WebP, TIFF and AVIF to JPEG", async () => {
    const cases = [
      [await still(200, 100, "gif"), "image/png"],
      [await still(200, 100, "webp", true), "image/png"],
      [await still(200, 100, "webp"), "image/jpeg"],
      [await still(200, 100, "tiff"), "image/jpeg"],
      [await still(200, 100, "avif"), "image/jpeg"],
      [await still(200, 100, "png", true), "image/png"],
    ] as const;
    for (const [source, type] of cases) {
      const result = await thumbnailer.generate(source, request(64, 64, "scale"));
      assert.equal(result.kind === "image" && result.contentType, type);
    }
  });

  it("animates an animated GIF as WebP only when asked", async () => {
    const source = await animation(80, 60, 4, "gif");
    const moving = await described(
      await thumbnailer.generate(source, request(40, 40, "crop", true)),
    );
    assert.equal(moving.result.kind === "image" && moving.result.contentType, "image/webp");
    assert.equal(moving.meta.format, "webp");
    assert.equal(moving.meta.pages, 4);
    assert.deepEqual([moving.meta.width, moving.meta.pageHeight ?? moving.meta.height], [40, 40]);
    const scaled = await described(
      await thumbnailer.generate(source, request(40, 40, "scale", true)),
    );
    assert.deepEqual([scaled.meta.width, scaled.meta.height, scaled.meta.pages], [40, 30, 4]);
    const stillOne = await described(await thumbnailer.generate(source, request(40, 40, "crop")));
    assert.equal(stillOne.meta.format, "png");
    assert.equal(stillOne.meta.pages ?? 1, 1);
  });

  it("never returns an animated original when animation was not asked for", async () => {
    const source = await animation(20, 20, 3, "gif");
    const { meta, result } = await described(
      await thumbnailer.generate(source, request(320, 240, "scale")),
    );
    assert.equal(result.kind === "image" && result.contentType, "image/png");
    assert.equal(meta.pages ?? 1, 1);
    assert.deepEqual(await thumbnailer.generate(source, request(320, 240, "scale", true)), {
      kind: "original",
    });
  });

  it("treats animated=true on a still as animated=false", async () => {
    const result = await thumbnailer.generate(
      await still(300, 300, "png"),
      request(32, 32, "crop", true),
    );
    assert.equal(result.kind === "image" && result.contentType, "image/png");
  });

  it("makes a still when all the frames would exceed the pixel budget", async () => {
    const small = new Thumbnailer({ maxImagePixels: 80 * 60 * 2, concurrency: 1 });
    const source = await animation(80, 60, 4, "gif");
    const { meta } = await described(await small.generate(source, request(40, 40, "crop", true)));
    assert.equal(meta.format, "png");
  });

  it("makes a still, saying why, when the frames exceed max_thumbnail_frames", async () => {
    const limited = new Thumbnailer({ maxImagePixels: 1e8, concurrency: 1, maxFrames: 3 });
    const source = await animation(80, 60, 4, "gif");
    const info = (await limited.probe(source))!;
    const result = await limited.withSlot(() =>
      limited.render(source, info, request(40, 40, "crop", true)),
    );
    assert.equal(result.contentType, "image/png");
    assert.equal(result.fallback, "budget");
    assert.equal((await sharp(result.bytes).metadata()).pages ?? 1, 1);
    const within = await limited.render(
      await animation(80, 60, 3, "gif"),
      { ...info, pages: 3 },
      request(40, 40, "crop", true),
    );
    assert.equal(within.contentType, "image/webp");
    assert.equal(within.fallback, undefined);
    assert.deepEqual(
      limited.plan([{ width: 40, height: 40, method: "crop" }], info).map((p) => p.contentType),
      ["image/png"],
      "no animated variant is planned over the frame budget",
    );
  });

  it("honours the EXIF orientation", async () => {
    // Stored 60x30, red on the left and blue on the right; orientation 6
    // shows it turned clockwise: 30x60, red on top.
    const halves = Buffer.alloc(60 * 30 * 3);
    for (let i = 0; i < 60 * 30; i++) halves[i * 3 + (i % 60 < 30 ? 0 : 2)] = 255;
    const source = await sharp(halves, { raw: { width: 60, height: 30, channels: 3 } })
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const result = await thumbnailer.generate(source, request(15, 30, "scale"));
    assert.equal(result.kind, "image");
    const { data, info } = await sharp(result.kind === "image" ? result.bytes : Buffer.alloc(0))
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [15, 30]);
    const at = (x: number, y: number) => data.subarray((y * 15 + x) * 3, (y * 15 + x) * 3 + 3);
    assert.ok(at(7, 2)[0]! > 200 && at(7, 2)[2]! < 60, "top is red");
    assert.ok(at(7, 27)[2]! > 200 && at(7, 27)[0]! < 60, "bottom is blue");
  });

  it("is byte-identical from one run to the next", async () => {
    const sources = [
      [await still(640, 480, "png"), request(96, 96, "crop")],
      [await still(640, 480, "jpeg"), request(320, 240, "scale")],
      [await still(640, 480, "webp", true), request(320, 240, "scale")],
      [await animation(80, 60, 3, "gif"), request(32, 32, "crop", true)],
    ] as const;
    const threads = sharp.concurrency();
    try {
      for (const [source, req] of sources) {
        const a = await thumbnailer.generate(source, req);
        // The second run must not be answered from libvips' operation cache,
        // and must not depend on the number of libvips threads.
        sharp.cache(false);
        sharp.concurrency(1);
        const again = new Thumbnailer({ maxImagePixels: 1e8, concurrency: 1 });
        const b = await again.generate(Buffer.from(source), req);
        sharp.cache(true);
        sharp.concurrency(threads);
        assert.ok(a.kind === "image" && b.kind === "image" && a.bytes.equals(b.bytes));
      }
    } finally {
      sharp.cache(true);
      sharp.concurrency(threads);
    }
  });
});

describe("Thumbnailer.generate refusals", () => {
  const limited = new Thumbnailer({ maxImagePixels: 10_000, concurrency: 1 });

  it("refuses an image over max_image_pixels", async () => {
    await assert.rejects(
      limited.generate(await still(200, 200, "png"), request(32, 32, "crop")),
      (e) => e instanceof ImageTooLargeError && e.width === 200 && e.maxPixels === 10_000,
    );
  });

  it("refuses it from the header alone, before any decoding", async () => {
    // Only the header survives: decoding would fail with NotAnImageError.
    const headerOnly = (await still(200, 200, "png")).subarray(0, 64);
    await assert.rejects(limited.generate(headerOnly, request(32, 32, "crop")), ImageTooLargeError);
    const info = await limited.probe(headerOnly);
    assert.ok(info && limited.exceedsPixelLimit(info));
  });

  it("throws NotAnImageError for garbage, empty, truncated and SVG input", async () => {
    const png = await still(200, 200, "png");
    const inputs = [
      randomBytes(4096),
      Buffer.alloc(0),
      png.subarray(0, Math.floor(png.length / 2)),
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="900" height="900"/>'),
      Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), randomBytes(500)]),
    ];
    for (const input of inputs) {
      await assert.rejects(thumbnailer.generate(input, request(32, 32, "crop")), NotAnImageError);
    }
  });

  it("refuses nonsense sizes as a programming error", async () => {
    const png = await still(10, 10, "png");
    await assert.rejects(thumbnailer.generate(png, request(0, 10, "crop")), RangeError);
    await assert.rejects(thumbnailer.generate(png, request(1.5, 10, "crop")), RangeError);
  });

  it("gives up waiting for a turn when the signal aborts", async () => {
    const controller = new AbortController();
    controller.abort(new Error("client went away"));
    const source = await still(100, 100, "png");
    await assert.rejects(
      thumbnailer.generate(source, request(32, 32, "crop"), controller.signal),
      /client went away/,
    );
  });

  it("finishes every call when more calls than permits arrive at once", async () => {
    const one = new Thumbnailer({ maxImagePixels: 1e8, concurrency: 1 });
    const source = await still(1000, 700, "png");
    const results = await Promise.all(
      DEFAULT_THUMBNAIL_SIZES.map((size) => one.generate(source, { ...size, animated: false })),
    );
    assert.ok(results.every((r) => r.kind === "image"));
  });
});

describe("servesOriginal", () => {
  const info = {
    format: "png",
    contentType: "image/png",
    width: 20,
    height: 20,
    orientation: 1,
    pages: 1,
    animated: false,
    hasAlpha: false,
  } as const;

  it("holds only when the source fits the request in both dimensions", () => {
    assert.equal(servesOriginal(info, request(20, 20, "crop")), true);
    assert.equal(servesOriginal(info, request(19, 400, "scale")), false);
  });

  it("does not hold for a type that is no valid thumbnail, nor an unwanted animation", () => {
    assert.equal(servesOriginal({ ...info, format: "tiff" }, request(32, 32, "crop")), false);
    const gif = { ...info, format: "gif", animated: true, pages: 3 } as const;
    assert.equal(servesOriginal(gif, request(32, 32, "crop")), false);
    assert.equal(servesOriginal(gif, request(32, 32, "crop", true)), true);
  });
});

describe("selectThumbnail", () => {
  const t = (
    width: number,
    height: number,
    method: "crop" | "scale",
    contentType = "image/png",
    length = 1000,
  ): StoredThumbnail => ({ width, height, method, contentType, length });
  const stored = [
    t(32, 32, "crop"),
    t(96, 96, "crop"),
    t(320, 160, "scale"),
    t(640, 320, "scale"),
    t(800, 400, "scale"),
  ];

  it("picks the exact match", () => {
    assert.equal(selectThumbnail(stored, request(96, 96, "crop")), stored[1]);
    assert.equal(selectThumbnail(stored, request(640, 320, "scale")), stored[3]);
  });

  it("prefers the next larger thumbnail over a closer smaller one", () => {
    assert.equal(selectThumbnail(stored, request(50, 50, "crop")), stored[1]);
    assert.equal(selectThumbnail(stored, request(400, 300, "scale")), stored[3]);
  });

  it("falls back to the closest smaller one when nothing is large enough", () => {
    assert.equal(selectThumbnail(stored, request(2000, 2000, "scale")), stored[4]);
    assert.equal(selectThumbnail(stored, request(500, 500, "crop")), stored[1]);
  });

  it("only considers thumbnails made with the requested method", () => {
    assert.equal(selectThumbnail([t(96, 96, "crop")], request(96, 96, "scale")), undefined);
    assert.equal(selectThumbnail([t(320, 240, "scale")], request(32, 32, "crop")), undefined);
  });

  it("prefers a crop of the right aspect ratio over a closer size", () => {
    const wide = t(100, 50, "crop");
    const square = t(120, 120, "crop");
    assert.equal(selectThumbnail([wide, square], request(96, 96, "crop")), square);
  });

  it("breaks ties on type, then byte length, then order", () => {
    const jpeg = t(96, 96, "crop", "image/jpeg", 10);
    const png = t(96, 96, "crop", "image/png", 900);
    assert.equal(selectThumbnail([jpeg, png], request(96, 96, "crop")), png);
    const small = t(96, 96, "crop", "image/png", 10);
    assert.equal(selectThumbnail([png, small], request(96, 96, "crop")), small);
    const twin = t(96, 96, "crop", "image/png", 900);
    assert.equal(selectThumbnail([png, twin], request(96, 96, "crop")), png);
  });

  it("returns an animated thumbnail only to an animated request", () => {
    const moving = t(96, 96, "crop", "image/webp", 5000);
    const stillPng = t(96, 96, "crop", "image/png", 100);
    assert.equal(selectThumbnail([moving, stillPng], request(96, 96, "crop", true)), moving);
    assert.equal(selectThumbnail([moving, stillPng], request(96, 96, "crop")), stillPng);
    assert.equal(selectThumbnail([moving], request(96, 96, "crop")), undefined);
  });

  it("returns undefined when nothing is stored", () => {
    assert.equal(selectThumbnail([], request(32, 32, "crop")), undefined);
  });
});

describe("thumbnailPlan", () => {
  const limit = 32 * 1024 * 1024;

  it("plans every default size of a large image with its output size and type", async () => {
    const info = (await thumbnailer.probe(await still(1000, 500, "jpeg")))!;
    const plan = thumbnailPlan(DEFAULT_THUMBNAIL_SIZES, info, limit);
    assert.deepEqual(
      plan.map((p) => `${p.width}x${p.height} ${p.method} ${p.contentType}`),
      [
        "32x32 crop image/jpeg",
        "96x96 crop image/jpeg",
        "320x160 scale image/jpeg",
        "640x320 scale image/jpeg",
        "800x400 scale image/jpeg",
      ],
    );
  });

  it("skips sizes whose answer is the original", async () => {
    const medium = (await thumbnailer.probe(await still(500, 400, "png")))!;
    assert.deepEqual(
      thumbnailPlan(DEFAULT_THUMBNAIL_SIZES, medium, limit).map((p) => `${p.width}x${p.height}`),
      ["32x32", "96x96", "300x240"],
    );
    const tiny = (await thumbnailer.probe(await still(20, 20, "png")))!;
    assert.deepEqual(thumbnailPlan(DEFAULT_THUMBNAIL_SIZES, tiny, limit), []);
  });

  it("adds animated WebP thumbnails for an animation, and a still for every size", async () => {
    const info = (await thumbnailer.probe(await animation(400, 300, 3, "gif")))!;
    const plan = thumbnailPlan(DEFAULT_THUMBNAIL_SIZES, info, limit);
    const line = (p: (typeof plan)[number]) => `${p.width}x${p.height} ${p.contentType}`;
    assert.deepEqual(plan.map(line), [
      "32x32 image/png",
      "32x32 image/webp",
      "96x96 image/png",
      "96x96 image/webp",
      "320x240 image/png",
      "320x240 image/webp",
      "400x300 image/png",
    ]);
  });

  it("lists a duplicate size once and nothing for an image over the limit", async () => {
    const info = (await thumbnailer.probe(await still(1000, 500, "png")))!;
    const sizes = [request(32, 32, "crop"), request(32, 32, "crop"), request(33, 32, "scale")];
    assert.equal(thumbnailPlan(sizes, info, limit).length, 2);
    assert.deepEqual(thumbnailPlan(sizes, info, 1000), []);
  });

  it("predicts exactly what generate makes", async () => {
    const source = await animation(300, 200, 2, "gif");
    const info = (await thumbnailer.probe(source))!;
    for (const planned of thumbnailPlan(DEFAULT_THUMBNAIL_SIZES, info, limit)) {
      const result = await thumbnailer.generate(source, planned.request);
      assert.ok(result.kind === "image");
      assert.deepEqual(
        [result.width, result.height, result.contentType],
        [planned.width, planned.height, planned.contentType],
      );
    }
  });
});
