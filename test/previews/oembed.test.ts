import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { htmlToOpenGraph } from "../../src/previews/html-opengraph.js";
import {
  MAX_OEMBED_RESPONSE_BYTES,
  OEmbedProviderError,
  OEmbedProviders,
  oembedToOpenGraph,
  parseOEmbedProviders,
  parseOEmbedResponse,
  schemeToPattern,
} from "../../src/previews/oembed.js";

const PAGE = "https://example.org/post/1";
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe("oEmbed providers", () => {
  const bundled = OEmbedProviders.create({});

  it("matches the bundled X provider and builds the JSON request URL", () => {
    assert.equal(
      bundled.requestUrlFor("https://x.com/matrixdotorg/status/123"),
      "https://publish.x.com/oembed?url=https%3A%2F%2Fx.com%2Fmatrixdotorg%2Fstatus%2F123&format=json",
    );
    // Matched in normalised form: an upper-case host still matches.
    assert.ok(
      bundled.requestUrlFor("https://X.COM/a/status/1")?.startsWith("https://publish.x.com/"),
    );
    assert.ok(bundled.requestUrlFor("https://mobile.x.com/a/status/1"));
  });

  it("matches the bundled YouTube Shorts provider and nothing else", () => {
    assert.ok(
      bundled
        .requestUrlFor("https://www.youtube.com/shorts/abc")
        ?.startsWith("https://www.youtube.com/oembed?url="),
    );
    for (const url of [
      "https://www.youtube.com/watch?v=abc", // ordinary pages carry OpenGraph tags
      "http://x.com/a/status/1", // the schemes are https only
      "https://x.com/", // `*` is at least one character
      "https://evil.example/x.com/a/status/1",
      "https://x.com.evil.example/a/status/1",
      "not a url",
    ]) {
      assert.equal(bundled.requestUrlFor(url), undefined, url);
    }
  });

  it("`*` in the host is one label; elsewhere any run of characters", () => {
    const pattern = schemeToPattern("https://*.example.com/photos/*")!;
    assert.ok(pattern.test("https://www.example.com/photos/1/2?x=y"));
    assert.ok(!pattern.test("https://a.b.example.com/photos/1"));
    assert.ok(!pattern.test("https://www.example.com/photos/"));
    assert.ok(!pattern.test("https://wwwXexample.com/photos/1"), "dots are literal");
    const whole = schemeToPattern("https://example.com/v/*/embed")!;
    assert.ok(whole.test("https://example.com/v/1/embed"));
    assert.ok(!whole.test("https://example.com/v/1/embed/more"), "the whole URL must match");
    assert.ok(schemeToPattern("HTTPS://Example.com/*")!.test("https://example.com/a"));
    assert.equal(schemeToPattern("ftp://example.com/*"), undefined);
    assert.equal(schemeToPattern("*://example.com/*"), undefined);
  });

  it("reads additional provider files; the bundled list can be turned off", () => {
    const file = [
      {
        provider_name: "Local",
        provider_url: "https://media.example/",
        endpoints: [
          { schemes: ["https://media.example/v/*"], url: "https://media.example/oembed.{format}" },
          { url: "https://media.example/discovery-only" },
          { schemes: ["https://media.example/x/*"], url: "https://media.example/oembed.xml" },
          {
            schemes: ["https://media.example/y/*"],
            url: "https://media.example/oembed",
            formats: ["xml"],
          },
        ],
        extra_registry_key: true,
      },
    ];
    const providers = OEmbedProviders.create({
      disableDefaultProviders: true,
      additional: [{ source: "local.json", contents: file }],
    });
    assert.equal(
      providers.requestUrlFor("https://media.example/v/1"),
      "https://media.example/oembed.json?url=https%3A%2F%2Fmedia.example%2Fv%2F1&format=json",
    );
    assert.equal(providers.requestUrlFor("https://media.example/x/1"), undefined, "XML only");
    assert.equal(providers.requestUrlFor("https://media.example/y/1"), undefined, "XML only");
    assert.equal(providers.requestUrlFor("https://x.com/a/status/1"), undefined, "defaults off");
  });

  it("refuses malformed provider files with the file and entry named", () => {
    const bad: [unknown, RegExp][] = [
      [{}, /bad\.json: \(top\)/],
      [[{ provider_name: "A", provider_url: "u" }], /bad\.json: \[0\]\.endpoints/],
      [
        [
          {
            provider_name: "A",
            provider_url: "u",
            endpoints: [{ schemes: [1], url: "https://a/" }],
          },
        ],
        /\[0\]\.endpoints\[0\]\.schemes\[0\]/,
      ],
      [
        [{ provider_name: "A", provider_url: "u", endpoints: [{ schemes: [], url: "file:///x" }] }],
        /\[0\]\.endpoints\[0\]\.url: must be an http\(s\) URL/,
      ],
      [
        [
          {
            provider_name: "A",
            provider_url: "u",
            endpoints: [{ schemes: ["ftp://a/*"], url: "https://a/" }],
          },
        ],
        /\[0\]\.endpoints\[0\]\.schemes\[0\]: must be an http\(s\) URL pattern/,
      ],
    ];
    for (const [contents, message] of bad) {
      assert.throws(
        () => parseOEmbedProviders(contents, "bad.json"),
        (error: unknown) => {
          assert.ok(error instanceof OEmbedProviderError);
          assert.match(error.message, message);
          return true;
        },
      );
    }
  });
});

describe("oEmbed autodiscovery", () => {
  it("a page's oEmbed link is found by the HTML parser and resolved", () => {
    const html = `<html><head><link rel="alternate" type="application/json+oembed"
      href="/services/oembed?url=https%3A%2F%2Fexample.org%2Fpost%2F1&amp;format=json"></head></html>`;
    const { oembedUrl } = htmlToOpenGraph(new TextEncoder().encode(html), { pageUrl: PAGE });
    assert.equal(
      oembedUrl,
      "https://example.org/services/oembed?url=https%3A%2F%2Fexample.org%2Fpost%2F1&format=json",
    );
  });
});

describe("oEmbed responses to OpenGraph", () => {
  it("rich: title (entities unescaped), site, thumbnail, description and media from html", () => {
    const result = parseOEmbedResponse(
      json({
        version: "1.0",
        type: "rich",
        title: "Caf&eacute; &amp; bar",
        author_name: "Ann",
        provider_name: "Example",
        thumbnail_url: "https://img.example.org/t.jpg",
        html: `<blockquote><p>Quoted <b>post</b> text.</p><video src="https://v.example.org/v.mp4"></video><script>x()</script></blockquote>`,
        cache_age: 3600,
      }),
      PAGE,
    );
    assert.deepEqual(result, {
      og: {
        "og:url": PAGE,
        "og:title": "Café & bar",
        "og:site_name": "Example",
        "og:image": "https://img.example.org/t.jpg",
        "og:video": "https://v.example.org/v.mp4",
        "og:description": "Quoted post text.",
      },
      authorName: "Ann",
      cacheAgeMs: 3_600_000,
    });
  });

  it("rich without a thumbnail takes the first <img> of its html", () => {
    const { og } = oembedToOpenGraph(
      {
        type: "rich",
        html: `<img src="https://img.example.org/a.png"><img src="https://img.example.org/b.png">`,
      },
      PAGE,
    );
    assert.equal(og["og:image"], "https://img.example.org/a.png");
  });

  it("photo: the full image, not the thumbnail", () => {
    const { og } = oembedToOpenGraph(
      {
        version: 1,
        type: "photo",
        url: "https://img.example.org/full.jpg",
        thumbnail_url: "https://img.example.org/t.jpg",
      },
      PAGE,
    );
    assert.equal(og["og:image"], "https://img.example.org/full.jpg");
  });

  it("video: og:type and integer dimensions; link: website", () => {
    const video = oembedToOpenGraph({ type: "video", width: 640, height: 360, html: "" }, PAGE).og;
    assert.equal(video["og:type"], "video.other");
    assert.equal(video["og:video:width"], 640);
    assert.equal(video["og:video:height"], 360);
    assert.equal(oembedToOpenGraph({ type: "link" }, PAGE).og["og:type"], "website");
  });

  it("cache_age: numbers and digit strings, in milliseconds; anything else ignored", () => {
    const age = (value: unknown) =>
      oembedToOpenGraph({ type: "link", cache_age: value }, PAGE).cacheAgeMs;
    assert.equal(age(60), 60_000);
    assert.equal(age(60.9), 60_000);
    assert.equal(age("120"), 120_000);
    for (const bad of [
      -5,
      "1.5",
      "abc",
      "",
      null,
      true,
      [],
      {},
      Number.MAX_VALUE,
      "9".repeat(30),
    ]) {
      assert.equal(age(bad), undefined, JSON.stringify(bad));
    }
  });
});

describe("hostile oEmbed responses", () => {
  it("non-JSON, invalid UTF-8, non-objects, wrong versions and oversized bodies give {}", () => {
    const empty = { og: {} };
    assert.deepEqual(parseOEmbedResponse(new TextEncoder().encode("<html>"), PAGE), empty);
    assert.deepEqual(parseOEmbedResponse(Uint8Array.from([0x7b, 0xff, 0x7d]), PAGE), empty);
    for (const value of [
      null,
      1,
      "x",
      [{ title: "t" }],
      { version: "2.0", title: "t" },
      { version: 1.5 },
    ]) {
      assert.deepEqual(parseOEmbedResponse(json(value), PAGE), empty, JSON.stringify(value));
    }
    const huge = json({ title: "t", html: "x".repeat(MAX_OEMBED_RESPONSE_BYTES) });
    assert.deepEqual(parseOEmbedResponse(huge, PAGE), empty);
  });

  it("nested JSON is refused before anything walks it", () => {
    // Deep enough to refuse, shallow enough that JSON.parse itself succeeds.
    const depth = 50;
    const nested = `${'{"a":'.repeat(depth)}{}${"}".repeat(depth)}`;
    const body = new TextEncoder().encode(`{"title":"t","type":"link","x":${nested}}`);
    assert.deepEqual(parseOEmbedResponse(body, PAGE), { og: {} });
  });

  it("fields of the wrong type or with unsafe values are dropped one by one", () => {
    const result = oembedToOpenGraph(
      {
        type: "video",
        title: { toString: "x" },
        author_name: 42,
        provider_name: ["Example"],
        thumbnail_url: "javascript:alert(1)",
        url: "https://img.example.org/not-a-photo.jpg",
        html: 123,
        width: -1,
        height: 1.5,
        cache_age: "soon",
      },
      PAGE,
    );
    assert.deepEqual(result, { og: { "og:url": PAGE, "og:type": "video.other" } });
    const relative = oembedToOpenGraph({ type: "photo", url: "/relative.jpg" }, PAGE);
    assert.equal(relative.og["og:image"], undefined);
    const proto = oembedToOpenGraph(
      JSON.parse('{"__proto__": {"title": "polluted"}, "type": "link"}'),
      PAGE,
    );
    assert.equal(proto.og["og:title"], undefined);
    assert.equal(({} as Record<string, unknown>).title, undefined);
  });

  it("inherited properties are not fields", () => {
    const inherited = Object.create({ title: "inherited", type: "link" }) as object;
    assert.deepEqual(oembedToOpenGraph(inherited, PAGE).og, { "og:url": PAGE });
  });

  it("overlong values are dropped, a huge html is summarised", () => {
    const { og } = oembedToOpenGraph(
      { type: "rich", title: "t".repeat(5000), html: `<p>${"word ".repeat(20_000)}</p>` },
      PAGE,
    );
    assert.equal(og["og:title"], undefined);
    assert.ok((og["og:description"] as string).length <= 501);
  });
});
