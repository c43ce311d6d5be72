/**
 * Media store keys (Synapse's layout, synapse-media-admin.md §6.4) and the
 * path-safety rules behind them, fed hostile input.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  assertSafeKey,
  assertSafePathComponent,
  assertSafePrefix,
  localContentKey,
  localThumbnailKey,
  localThumbnailPrefix,
  remoteContentKey,
  remoteThumbnailKey,
  remoteThumbnailLegacyKey,
  remoteThumbnailPrefix,
  UnsafePathError,
  urlCacheKey,
  urlCacheThumbnailKey,
  urlCacheThumbnailPrefix,
} from "../src/storage/media-paths.js";

const ID = "GCmhgzMPRjqgpODLsNQzTuHZ";

/** Inputs no key builder may accept as a component. */
const HOSTILE = [
  "",
  ".",
  "..",
  "/",
  "a/b",
  "../etc/passwd",
  "%2F",
  "%2e%2e",
  "a\0b",
  "\0",
  "a\\b",
  "a b",
  "tab\there",
  "line\nbreak",
  "ünïcödé",
  "🐔🐔🐔🐔🐔",
  "ＡＢＣＤＥＦ",
  "x".repeat(10_000),
  "x".repeat(256),
];

describe("assertSafePathComponent", () => {
  it("accepts letters, digits and _ - . [ ] : up to 255 characters", () => {
    for (const ok of [
      "a",
      "Z9",
      "_-",
      "...",
      ".a",
      "a..b",
      "[::1]:8448",
      "1.2.3.4",
      "x".repeat(255),
    ]) {
      assert.equal(assertSafePathComponent(ok), ok);
    }
  });

  it("rejects hostile components with UnsafePathError", () => {
    for (const bad of HOSTILE) {
      assert.throws(() => assertSafePathComponent(bad), UnsafePathError, JSON.stringify(bad));
    }
  });

  it("keeps the error message short for absurd input", () => {
    assert.throws(
      () => assertSafePathComponent("x".repeat(10_000)),
      (error: unknown) => error instanceof UnsafePathError && error.message.length < 120,
    );
  });
});

describe("assertSafeKey and assertSafePrefix", () => {
  it("accept relative keys of safe components", () => {
    assert.equal(assertSafeKey("local_content/ab/cd/ef"), "local_content/ab/cd/ef");
    assert.equal(assertSafePrefix(""), "");
    assert.equal(assertSafePrefix("local_content/ab/"), "local_content/ab/");
    assert.equal(assertSafePrefix("local_thumbnails/ab/cd/efgh"), "local_thumbnails/ab/cd/efgh");
    assert.equal(assertSafePrefix("local_content/.."), "local_content/..", "a partial name");
  });

  it("reject traversal, absolute paths, empty components and odd characters", () => {
    for (const bad of ["", "/a", "a/", "a//b", "../a", "a/../b", "a/./b", "a/%2F", "a\0/b"]) {
      assert.throws(() => assertSafeKey(bad), UnsafePathError, JSON.stringify(bad));
    }
    for (const bad of ["/", "/a", "a//", "../", "a/../", "a/b c", "a\0"]) {
      assert.throws(() => assertSafePrefix(bad), UnsafePathError, JSON.stringify(bad));
    }
  });
});

describe("local media keys", () => {
  it("split the id 2/2/rest as Synapse does", () => {
    assert.equal(localContentKey(ID), "local_content/GC/mh/gzMPRjqgpODLsNQzTuHZ");
    assert.equal(localThumbnailPrefix(ID), "local_thumbnails/GC/mh/gzMPRjqgpODLsNQzTuHZ/");
    assert.equal(
      localThumbnailKey(ID, 32, 32, "image/png", "crop"),
      "local_thumbnails/GC/mh/gzMPRjqgpODLsNQzTuHZ/32-32-image-png-crop",
    );
    assert.equal(
      localThumbnailKey(ID, 800, 600, "image/jpeg", "scale"),
      "local_thumbnails/GC/mh/gzMPRjqgpODLsNQzTuHZ/800-600-image-jpeg-scale",
    );
  });

  it("use the 2/2/rest split from five characters on", () => {
    assert.equal(localContentKey("abcde"), "local_content/ab/cd/e");
  });

  it("file ids shorter than five characters under _short/, distinct from split ids", () => {
    assert.equal(localContentKey("a"), "local_content/_short/a");
    assert.equal(localContentKey("abcd"), "local_content/_short/abcd");
    assert.equal(localThumbnailPrefix("ab"), "local_thumbnails/_short/ab/");
    assert.equal(
      localThumbnailKey("abc", 96, 96, "image/webp", "crop"),
      "local_thumbnails/_short/abc/96-96-image-webp-crop",
    );
    assert.notEqual(localContentKey("_shor"), localContentKey("_sho"));
  });

  it("reject hostile ids, including ones whose split pieces would be . or ..", () => {
    for (const bad of [...HOSTILE, "..abc", "ab..c", "ab.cd/..", "ab/cdef"]) {
      assert.throws(() => localContentKey(bad), UnsafePathError, JSON.stringify(bad));
      assert.throws(() => localThumbnailPrefix(bad), UnsafePathError, JSON.stringify(bad));
    }
  });

  it("reject hostile thumbnail sizes, types and methods", () => {
    const bad: [number, number, string, string][] = [
      [-1, 32, "image/png", "crop"],
      [1.5, 32, "image/png", "crop"],
      [32, Number.NaN, "image/png", "crop"],
      [32, Number.POSITIVE_INFINITY, "image/png", "crop"],
      [32, 32, "image/png/x", "crop"],
      [32, 32, "png", "crop"],
      [32, 32, "image/", "crop"],
      [32, 32, "../png", "crop"],
      [32, 32, "image/svg+xml", "crop"],
      [32, 32, "image/png; q=1", "crop"],
      [32, 32, "image/png", "../../x"],
      [32, 32, "image/png", "crop/x"],
      [32, 32, "image/png", "c\0"],
      [32, 32, "image/png", "x".repeat(10_000)],
    ];
    for (const [w, h, type, method] of bad) {
      assert.throws(() => localThumbnailKey(ID, w, h, type, method), UnsafePathError);
    }
  });
});

describe("remote media keys", () => {
  it("put the origin first and split the filesystem id", () => {
    assert.equal(
      remoteContentKey("matrix.org", ID),
      "remote_content/matrix.org/GC/mh/gzMPRjqgpODLsNQzTuHZ",
    );
    assert.equal(
      remoteThumbnailPrefix("matrix.org:8448", ID),
      "remote_thumbnail/matrix.org:8448/GC/mh/gzMPRjqgpODLsNQzTuHZ/",
    );
    assert.equal(
      remoteThumbnailKey("[1234:5678::abcd]:5678", ID, 320, 240, "image/png", "scale"),
      "remote_thumbnail/[1234:5678::abcd]:5678/GC/mh/gzMPRjqgpODLsNQzTuHZ/320-240-image-png-scale",
    );
    assert.equal(
      remoteThumbnailLegacyKey("1.2.3.4", ID, 32, 32, "image/jpeg"),
      "remote_thumbnail/1.2.3.4/GC/mh/gzMPRjqgpODLsNQzTuHZ/32-32-image-jpeg",
    );
    assert.equal(remoteContentKey("example.org", "xyz"), "remote_content/example.org/_short/xyz");
  });

  it("reject hostile origins and ids", () => {
    for (const bad of HOSTILE) {
      assert.throws(() => remoteContentKey(bad, ID), UnsafePathError, JSON.stringify(bad));
      assert.throws(() => remoteThumbnailPrefix(bad, ID), UnsafePathError);
      assert.throws(() => remoteContentKey("matrix.org", bad), UnsafePathError);
      assert.throws(() => remoteThumbnailKey("matrix.org", bad, 1, 1, "image/png", "crop"));
    }
  });
});

describe("URL-preview keys", () => {
  it("use the date directory for YYYY-MM-DD_ ids", () => {
    const id = "2024-01-31_AbCdEfGhIjKlMnOp";
    assert.equal(urlCacheKey(id), "url_cache/2024-01-31/AbCdEfGhIjKlMnOp");
    assert.equal(urlCacheThumbnailPrefix(id), "url_cache_thumbnails/2024-01-31/AbCdEfGhIjKlMnOp/");
    assert.equal(
      urlCacheThumbnailKey(id, 32, 32, "image/png", "crop"),
      "url_cache_thumbnails/2024-01-31/AbCdEfGhIjKlMnOp/32-32-image-png-crop",
    );
  });

  it("fall back to the 2/2/rest split for other ids", () => {
    assert.equal(urlCacheKey(ID), "url_cache/GC/mh/gzMPRjqgpODLsNQzTuHZ");
    assert.equal(urlCacheKey("2024-01-31-Other"), "url_cache/20/24/-01-31-Other");
    assert.equal(urlCacheKey("2024-01-31_"), "url_cache/20/24/-01-31_");
    assert.equal(urlCacheKey("abc"), "url_cache/_short/abc");
  });

  it("reject hostile ids", () => {
    for (const bad of [...HOSTILE, "2024-01-31_..", "2024-01-31_a/b", "2024-01-31_%2F"]) {
      assert.throws(() => urlCacheKey(bad), UnsafePathError, JSON.stringify(bad));
    }
  });
});
