/**
 * Download and thumbnail headers (matrix-media-spec.md §2,
 * synapse-media-admin.md §6.3): the Content-Type charset rule, the inline
 * allow-list and Synapse's filename encoding, fed hostile input.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  contentDisposition,
  contentTypeHeader,
  downloadSecurityHeaders,
  isInlineType,
} from "../src/media/media-headers.js";

describe("contentTypeHeader", () => {
  it("sends application/octet-stream for a missing, empty or unsendable type", () => {
    for (const type of [null, "", "   ", "text/plain\r\nX-Evil: 1", "image/pn\0g", "tëxt/plain"]) {
      assert.equal(contentTypeHeader(type), "application/octet-stream", JSON.stringify(type));
    }
  });

  it("appends ; charset=UTF-8 to Synapse's text types when they have no parameters", () => {
    assert.equal(contentTypeHeader("text/plain"), "text/plain; charset=UTF-8");
    assert.equal(contentTypeHeader("Text/Plain"), "Text/Plain; charset=UTF-8");
    assert.equal(contentTypeHeader("application/json"), "application/json; charset=UTF-8");
    assert.equal(contentTypeHeader("image/svg+xml"), "image/svg+xml; charset=UTF-8");
    assert.equal(contentTypeHeader("text/html"), "text/html; charset=UTF-8");
  });

  it("leaves a type with parameters alone, as Synapse does", () => {
    assert.equal(contentTypeHeader("text/css; charset=UTF-16"), "text/css; charset=UTF-16");
    assert.equal(contentTypeHeader("Text/Plain; charset=utf-8"), "Text/Plain; charset=utf-8");
    assert.equal(contentTypeHeader("text/plain; format=flowed"), "text/plain; format=flowed");
  });

  it("sends every other type unchanged: no sniffing, no normalising", () => {
    for (const type of ["image/png", "img/png", "IMAGE/PNG", "application/pdf", "text/x-python"]) {
      assert.equal(contentTypeHeader(type), type);
    }
  });
});

describe("isInlineType", () => {
  it("allows the listed types, ignoring case and parameters", () => {
    for (const type of [
      "text/plain",
      "Text/Plain; charset=utf-8",
      "text/css",
      "text/csv",
      "application/json",
      "application/ld+json",
      "image/png",
      "IMAGE/JPEG",
      "image/gif",
      "image/apng",
      "image/webp",
      "image/avif",
      "video/mp4",
      "video/quicktime",
      "audio/mpeg",
      "audio/x-flac",
      "audio/x-pn-wav",
    ]) {
      assert.ok(isInlineType(type), type);
    }
  });

  it("refuses everything else, SVG and HTML above all", () => {
    for (const type of [
      null,
      "",
      "image/svg+xml",
      "IMAGE/SVG+XML; charset=utf-8",
      "text/html",
      "text/javascript",
      "application/xhtml+xml",
      "application/octet-stream",
      "application/pdf",
      "img/png",
      "image/png2",
      "xtext/plain",
      "text/plain\0",
      "image/pngimage/svg+xml",
    ]) {
      assert.equal(isInlineType(type), false, JSON.stringify(type));
    }
  });
});

describe("contentDisposition", () => {
  it("uses inline for allow-listed types and attachment otherwise", () => {
    assert.equal(contentDisposition("image/png", null), "inline");
    assert.equal(contentDisposition("Text/Plain; charset=utf-8", null), "inline");
    assert.equal(contentDisposition("image/svg+xml", null), "attachment");
    assert.equal(contentDisposition("text/html", null), "attachment");
    assert.equal(contentDisposition(null, null), "attachment");
  });

  it("trusts no thumbnail with inline unless its type is on the allow-list", () => {
    assert.equal(contentDisposition("image/svg+xml", null), "attachment");
    assert.equal(
      contentDisposition("application/octet-stream", "thumbnail.png"),
      "attachment; filename=thumbnail.png",
    );
    assert.equal(
      contentDisposition("image/webp", "thumbnail.webp"),
      "inline; filename=thumbnail.webp",
    );
  });

  it("never sends an empty filename", () => {
    assert.equal(contentDisposition("image/png", ""), "inline");
    assert.equal(contentDisposition("application/zip", ""), "attachment");
  });

  it("sends a plain token name unquoted", () => {
    assert.equal(contentDisposition("image/png", "cat.png"), "inline; filename=cat.png");
    assert.equal(
      contentDisposition("application/zip", "a-b_c.d~e!#$&'*+^`|"),
      "attachment; filename=a-b_c.d~e!#$&'*+^`|",
    );
  });

  it("encodes the reference examples as filename*=utf-8''", () => {
    assert.equal(contentDisposition("image/png", "🐔"), "inline; filename*=utf-8''%F0%9F%90%94");
    assert.equal(
      contentDisposition("text/plain", "name with spaces"),
      "inline; filename*=utf-8''name%20with%20spaces",
    );
    assert.equal(
      contentDisposition("text/plain", "name;with;semicolons"),
      "inline; filename*=utf-8''name%3Bwith%3Bsemicolons",
    );
  });

  it("encodes separators, controls and non-ASCII, leaving only unreserved bytes bare", () => {
    const cases: [string, string][] = [
      ['a"b', "a%22b"],
      ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd"],
      ["a\r\nSet-Cookie: x=1", "a%0D%0ASet-Cookie%3A%20x%3D1"],
      ["nul\0byte", "nul%00byte"],
      ["tab\there", "tab%09here"],
      ["del\x7f", "del%7F"],
      ["100 %", "100%20%25"],
      ["()<>@,[]?={}\\", "%28%29%3C%3E%40%2C%5B%5D%3F%3D%7B%7D%5C"],
      ["ünï", "%C3%BCn%C3%AF"],
      ["\ud800lone", "%EF%BF%BDlone"],
    ];
    for (const [name, encoded] of cases) {
      assert.equal(contentDisposition(null, name), `attachment; filename*=utf-8''${encoded}`);
    }
  });

  it("sends a token name as it is, % included, as Synapse does", () => {
    assert.equal(contentDisposition(null, "%2F"), "attachment; filename=%2F");
  });

  it("stays printable ASCII for absurd names", () => {
    const value = contentDisposition(null, "🐔".repeat(10_000));
    assert.match(value, /^attachment; filename\*=utf-8''(%F0%9F%90%94){10000}$/);
    assert.equal(
      contentDisposition(null, "x".repeat(10_000)),
      `attachment; filename=${"x".repeat(10_000)}`,
    );
  });
});

describe("downloadSecurityHeaders", () => {
  it("returns Synapse's fixed headers", () => {
    assert.deepEqual(downloadSecurityHeaders(), {
      "Content-Security-Policy":
        "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; " +
        "style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
      "X-Content-Security-Policy": "sandbox;",
      "Referrer-Policy": "no-referrer",
      "Cross-Origin-Resource-Policy": "cross-origin",
      "X-Robots-Tag": "noindex, nofollow, noarchive, noimageindex",
      "Cache-Control": "public,max-age=86400,s-maxage=0,proxy-revalidate",
      "X-Content-Type-Options": "nosniff",
    });
  });

  it("cannot be changed by a caller", () => {
    const headers = downloadSecurityHeaders() as Record<string, string>;
    assert.throws(() => {
      headers["Referrer-Policy"] = "unsafe-url";
    }, TypeError);
    assert.equal(downloadSecurityHeaders()["Referrer-Policy"], "no-referrer");
  });
});
