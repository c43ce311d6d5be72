import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  globToRegExp,
  UrlBlacklist,
  type UrlBlacklistEntry,
  urlParts,
  urlPreviewUrlBlacklistSchema,
} from "../../src/previews/url-blacklist.js";

const FULL = "https://user:pass@Sub.Example.COM:8443/a/b;p=1?q=1#frag";
const blocks = (entry: UrlBlacklistEntry, url: string) => new UrlBlacklist([entry]).blocks(url);

describe("URL parts", () => {
  it("names the parts as Python's urlsplit does, on the normalised URL", () => {
    assert.deepEqual(urlParts(new URL(FULL)), {
      scheme: "https",
      netloc: "user:pass@sub.example.com:8443",
      hostname: "sub.example.com",
      port: "8443",
      path: "/a/b;p=1",
      params: "p=1",
      query: "q=1",
      fragment: "frag",
      username: "user",
      password: "pass",
    });
    const plain = urlParts(new URL("http://[::1]:80/"));
    assert.equal(plain.hostname, "::1");
    assert.equal(plain.netloc, "[::1]");
    assert.equal(plain.port, undefined, "a default port is no port");
    assert.equal(plain.username, undefined);
    assert.equal(plain.password, undefined);
    assert.equal(plain.query, "");
  });
});

describe("url_preview_url_blacklist matching", () => {
  // Each part, with a glob and with a regex, matching and not matching FULL.
  const cases: [keyof ReturnType<typeof urlParts>, string, string, string, string][] = [
    ["scheme", "http*", "ftp", "^https$", "^http$"],
    ["netloc", "*@sub.example.com:8443", "sub.example.com", "^user:", "^sub"],
    ["hostname", "*.example.com", "example.com", "^sub\\.", "^example"],
    ["port", "84?3", "443", "^84", "^443"],
    ["path", "/a/*", "/b/*", "^/a/b;", "^/b"],
    ["params", "p=[0-9]", "p=[!0-9]", "^p=", "^q="],
    ["query", "q=?", "x=*", "^q=1$", "^x"],
    ["fragment", "fr*", "fragment", "^frag$", "^rag"],
    ["username", "u*r", "admin", "^user$", "^admin"],
    ["password", "pa[sz]s", "pa[!s]s", "^p", "^x"],
  ];
  for (const [part, globYes, globNo, regexYes, regexNo] of cases) {
    it(`${part}: glob and ^regex`, () => {
      assert.ok(blocks({ [part]: globYes }, FULL), `glob ${globYes}`);
      assert.ok(!blocks({ [part]: globNo }, FULL), `glob ${globNo}`);
      assert.ok(blocks({ [part]: regexYes }, FULL), `regex ${regexYes}`);
      assert.ok(!blocks({ [part]: regexNo }, FULL), `regex ${regexNo}`);
    });
  }

  it("an entry matches only when all its parts match; any entry blocks", () => {
    const entry = { netloc: "www.acme.com", path: "/foo" };
    assert.ok(blocks(entry, "https://www.acme.com/foo"));
    assert.ok(!blocks(entry, "https://www.acme.com/bar"));
    assert.ok(!blocks(entry, "https://acme.com/foo"));
    const list = new UrlBlacklist([{ scheme: "ftp" }, entry, { netloc: "*.google.com" }]);
    assert.equal(list.match("https://maps.google.com/x"), 2);
    assert.equal(list.match("https://www.acme.com/foo"), 1);
    assert.equal(list.match("https://example.org/"), undefined);
  });

  it("a part the URL does not have matches nothing, even '*'", () => {
    assert.ok(!blocks({ username: "*" }, "https://example.org/"));
    assert.ok(blocks({ username: "*" }, "https://someone@example.org/"));
    assert.ok(!blocks({ port: "*" }, "https://example.org:443/"));
    assert.ok(blocks({ port: "*" }, "https://example.org:8443/"));
    // An empty query is still a query, as with urlsplit.
    assert.ok(blocks({ query: "*" }, "https://example.org/"));
  });

  it("Synapse's documented examples", () => {
    const list = new UrlBlacklist([
      { username: "*" },
      { netloc: "google.com" },
      { netloc: "*.google.com" },
      { scheme: "http" },
      { netloc: "www.acme.com", path: "/foo" },
      { netloc: "^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$" },
    ]);
    for (const url of [
      "https://me@example.org/",
      "https://google.com/search",
      "https://mail.google.com/",
      "http://example.org/",
      "https://www.acme.com/foo",
      "https://192.0.2.1/",
    ]) {
      assert.ok(list.blocks(url), url);
    }
    for (const url of [
      "https://example.org/",
      "https://notgoogle.com/",
      "https://www.acme.com/foo/bar",
    ]) {
      assert.ok(!list.blocks(url), url);
    }
  });

  it("matches the normalised URL, so spelling a URL differently does not slip past", () => {
    assert.ok(blocks({ hostname: "example.com" }, "HTTPS://EXAMPLE.com/"));
    assert.ok(blocks({ netloc: "^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$" }, "http://0x7f.1/"));
    assert.ok(blocks({ hostname: "127.0.0.1" }, "http://2130706433/"));
    assert.ok(blocks({ path: "/secret/*" }, "https://example.org/public/../secret/x"));
    assert.ok(blocks({ hostname: "xn--bcher-kva.example" }, "https://bücher.example/"));
  });

  it("a ^regex is matched from the start only, like Python's re.match", () => {
    assert.ok(blocks({ hostname: "^foo|bar" }, "https://bar.example/"));
    assert.ok(!blocks({ hostname: "^foo|bar" }, "https://xbar.example/"));
    assert.ok(blocks({ hostname: "^sub" }, FULL), "no end anchor");
    // The same matcher twice in a row (sticky regexes keep state between tests).
    const list = new UrlBlacklist([{ hostname: "^sub" }]);
    assert.ok(list.blocks(FULL) && list.blocks(FULL));
  });

  it("a URL that does not parse matches nothing", () => {
    assert.ok(!blocks({ scheme: "*" }, "not a url"));
  });
});

describe("fnmatch globs", () => {
  it("follows Python's fnmatch", () => {
    const match = (glob: string, text: string) => globToRegExp(glob).test(text);
    assert.ok(match("*", ""));
    assert.ok(match("/a/*", "/a/b/c"), "* crosses slashes");
    assert.ok(match("a?c", "abc") && !match("a?c", "ac"));
    assert.ok(match("[]]x", "]x"), "a leading ] is literal");
    assert.ok(match("[!]]x", "ax") && !match("[!]]x", "]x"));
    assert.ok(match("a[", "a["), "an unclosed [ is literal");
    assert.ok(match("a.b", "a.b") && !match("a.b", "axb"), "dots are literal");
    assert.ok(match("[a-c]", "b") && !match("[a-c]", "d"));
    assert.ok(match("[^a]", "^") && !match("[^a]", "b"), "^ in a set is literal");
    assert.ok(match("a\\b", "a\\b"));
    assert.ok(!match("ABC", "abc"), "case-sensitive");
    assert.ok(match("a*", "a\nb"));
    assert.ok(!match("abc", "abcd"), "whole match");
  });
});

describe("url_preview_url_blacklist config shape", () => {
  const parse = (value: unknown) => urlPreviewUrlBlacklistSchema.safeParse(value);

  it("accepts Synapse's shape, a numeric port, and defaults to []", () => {
    const ok = parse([{ netloc: "*.google.com" }, { port: 8080 }, { scheme: "^https?$" }]);
    assert.ok(ok.success);
    assert.deepEqual(ok.data, [
      { netloc: "*.google.com" },
      { port: "8080" },
      { scheme: "^https?$" },
    ]);
    const list = new UrlBlacklist(ok.data);
    assert.ok(list.blocks("https://example.org:8080/"));
    assert.deepEqual(parse(undefined).data, []);
  });

  it("refuses bad entries with the entry and the part named", () => {
    const issue = (value: unknown) => {
      const result = parse(value);
      assert.ok(!result.success);
      const first = result.error.issues[0]!;
      return `${first.path.join(".")}: ${first.message}`;
    };
    assert.match(issue([{ netloc: "^(unclosed" }]), /^0\.netloc: is not a valid pattern/);
    assert.match(issue([{ path: "[z-a]" }]), /^0\.path: is not a valid pattern/);
    assert.match(issue([{ scheme: "http" }, { host: "x" }]), /^1: .*host/i);
    assert.match(issue([{}]), /^0: an entry needs at least one URL part/);
    assert.match(issue([{ netloc: true }]), /^0\.netloc/);
    assert.match(issue({ netloc: "x" }), /^: /);
    assert.match(issue(["x"]), /^0: /);
  });
});
