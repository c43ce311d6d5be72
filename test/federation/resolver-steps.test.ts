/**
 * ServerResolver, spec §4.5 step by step, with an in-memory DNS and a fake
 * well-known fetcher (no network at all).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ServerResolver,
  type ServerResolverOptions,
  UnresolvableServerError,
  type WellKnownFetcher,
  type WellKnownResult,
} from "../../src/federation/server-resolver.js";
import type { SrvRecord } from "../../src/net/dns.js";

/** SRV name → records (or an error to throw); records every query. */
function fakeDns(table: Record<string, SrvRecord[] | Error>) {
  const queries: string[] = [];
  return {
    queries,
    async resolveSrv(name: string) {
      queries.push(name);
      const entry = table[name] ?? [];
      if (entry instanceof Error) throw entry;
      return entry;
    },
  };
}

/** Host → `m.server` value (undefined: an invalid answer; an Error: a failed fetch). */
function fakeWellKnown(table: Record<string, string | undefined | Error>, cacheMs?: number) {
  const fetched: string[] = [];
  const fetcher: WellKnownFetcher & { fetched: string[] } = {
    fetched,
    async fetch(host: string): Promise<WellKnownResult> {
      fetched.push(host);
      const entry = table[host];
      if (entry instanceof Error) throw entry;
      return { server: entry, cacheMs };
    },
  };
  return fetcher;
}

const srv = (name: string, port: number, priority = 10, weight = 0): SrvRecord => ({
  name,
  port,
  priority,
  weight,
});

function resolver(
  dns: ReturnType<typeof fakeDns>,
  wellKnown: WellKnownFetcher,
  extra: Partial<ServerResolverOptions> = {},
) {
  return new ServerResolver({ dns, wellKnown, ...extra });
}

describe("ServerResolver steps 1 and 2 (no discovery)", () => {
  const dns = fakeDns({});
  const wellKnown = fakeWellKnown({});
  const r = resolver(dns, wellKnown);

  it("step 1: IP literal, default port 8448, Host the server name, no SNI", async () => {
    assert.deepEqual(await r.resolve("1.2.3.4"), {
      baseUrl: "https://1.2.3.4:8448",
      hostHeader: "1.2.3.4",
      tlsServerName: undefined,
    });
    assert.deepEqual(await r.resolve("[2001:db8::1]"), {
      baseUrl: "https://[2001:db8::1]:8448",
      hostHeader: "[2001:db8::1]",
      tlsServerName: undefined,
    });
  });

  it("step 1: IP literal with a port keeps the port in Host", async () => {
    assert.deepEqual(await r.resolve("1.2.3.4:8080"), {
      baseUrl: "https://1.2.3.4:8080",
      hostHeader: "1.2.3.4:8080",
      tlsServerName: undefined,
    });
    assert.equal((await r.resolve("[2001:db8::1]:99")).baseUrl, "https://[2001:db8::1]:99");
  });

  it("step 2: hostname with a port, certificate for the hostname", async () => {
    assert.deepEqual(await r.resolve("example.org:8080"), {
      baseUrl: "https://example.org:8080",
      hostHeader: "example.org:8080",
      tlsServerName: "example.org",
    });
  });

  it("does no well-known or SRV lookups for steps 1 and 2", () => {
    assert.deepEqual(wellKnown.fetched, []);
    assert.deepEqual(dns.queries, []);
  });

  it("refuses malformed server names", async () => {
    for (const name of [
      "",
      "bad/name",
      "a b",
      "example.org:0",
      "example.org:99999",
      "127.1",
      "[::1",
    ]) {
      await assert.rejects(r.resolve(name), UnresolvableServerError, name);
    }
  });
});

describe("ServerResolver step 3 (well-known delegation)", () => {
  it("3.5: delegated hostname, no SRV: port 8448, Host and certificate the delegated host", async () => {
    const dns = fakeDns({});
    const r = resolver(dns, fakeWellKnown({ "example.org": "matrix.example.net" }));
    assert.deepEqual(await r.resolve("example.org"), {
      baseUrl: "https://matrix.example.net:8448",
      hostHeader: "matrix.example.net",
      tlsServerName: "matrix.example.net",
    });
    assert.deepEqual(dns.queries, [
      "_matrix-fed._tcp.matrix.example.net",
      "_matrix._tcp.matrix.example.net",
    ]);
  });

  it("3.2: delegated hostname with a port: no SRV, Host host:port", async () => {
    const dns = fakeDns({});
    const r = resolver(dns, fakeWellKnown({ "example.org": "matrix.example.net:443" }));
    assert.deepEqual(await r.resolve("example.org"), {
      baseUrl: "https://matrix.example.net:443",
      hostHeader: "matrix.example.net:443",
      tlsServerName: "matrix.example.net",
    });
    assert.deepEqual(dns.queries, []);
  });

  it("3.1: delegated IP literal, with or without a port", async () => {
    const r = resolver(
      fakeDns({}),
      fakeWellKnown({ "a.org": "5.6.7.8", "b.org": "5.6.7.8:1234", "c.org": "[2001:db8::2]:99" }),
    );
    assert.deepEqual(await r.resolve("a.org"), {
      baseUrl: "https://5.6.7.8:8448",
      hostHeader: "5.6.7.8",
      tlsServerName: undefined,
    });
    assert.deepEqual(await r.resolve("b.org"), {
      baseUrl: "https://5.6.7.8:1234",
      hostHeader: "5.6.7.8:1234",
      tlsServerName: undefined,
    });
    assert.deepEqual(await r.resolve("c.org"), {
      baseUrl: "https://[2001:db8::2]:99",
      hostHeader: "[2001:db8::2]:99",
      tlsServerName: undefined,
    });
  });

  it("3.3: SRV _matrix-fed._tcp of the delegated host; Host stays the delegated host", async () => {
    const dns = fakeDns({
      "_matrix-fed._tcp.matrix.example.net": [srv("fed.example.net", 8443)],
      "_matrix._tcp.matrix.example.net": [srv("legacy.example.net", 9000)],
    });
    const r = resolver(dns, fakeWellKnown({ "example.org": "matrix.example.net" }));
    assert.deepEqual(await r.resolve("example.org"), {
      baseUrl: "https://fed.example.net:8443",
      hostHeader: "matrix.example.net",
      tlsServerName: "matrix.example.net",
    });
    assert.deepEqual(dns.queries, ["_matrix-fed._tcp.matrix.example.net"]);
  });

  it("3.4: deprecated SRV _matrix._tcp of the delegated host", async () => {
    const dns = fakeDns({ "_matrix._tcp.matrix.example.net": [srv("legacy.example.net.", 9000)] });
    const r = resolver(dns, fakeWellKnown({ "example.org": "matrix.example.net" }));
    assert.deepEqual(await r.resolve("example.org"), {
      baseUrl: "https://legacy.example.net:9000",
      hostHeader: "matrix.example.net",
      tlsServerName: "matrix.example.net",
    });
  });

  it("an invalid delegation falls through to step 4", async () => {
    for (const value of [undefined, "bad value!", "host:0", "[::1"]) {
      const dns = fakeDns({});
      const r = resolver(dns, fakeWellKnown({ "example.org": value }));
      assert.equal((await r.resolve("example.org")).baseUrl, "https://example.org:8448");
      assert.equal(dns.queries[0], "_matrix-fed._tcp.example.org");
    }
  });
});

describe("ServerResolver steps 4-6 (no delegation)", () => {
  it("step 4: SRV _matrix-fed._tcp; Host and certificate the server's hostname", async () => {
    const dns = fakeDns({
      "_matrix-fed._tcp.example.org": [srv("fed.example.org", 443)],
      "_matrix._tcp.example.org": [srv("legacy.example.org", 9000)],
    });
    const r = resolver(dns, fakeWellKnown({}));
    assert.deepEqual(await r.resolve("example.org"), {
      baseUrl: "https://fed.example.org:443",
      hostHeader: "example.org",
      tlsServerName: "example.org",
    });
  });

  it("step 5: deprecated SRV _matrix._tcp", async () => {
    const dns = fakeDns({ "_matrix._tcp.example.org": [srv("legacy.example.org", 9000)] });
    const r = resolver(dns, fakeWellKnown({}));
    assert.equal((await r.resolve("example.org")).baseUrl, "https://legacy.example.org:9000");
    assert.deepEqual(dns.queries, ["_matrix-fed._tcp.example.org", "_matrix._tcp.example.org"]);
  });

  it("step 6: port 8448 on the hostname", async () => {
    const r = resolver(fakeDns({}), fakeWellKnown({ "example.org": new Error("refused") }));
    assert.deepEqual(await r.resolve("example.org"), {
      baseUrl: "https://example.org:8448",
      hostHeader: "example.org",
      tlsServerName: "example.org",
    });
  });

  it("treats a failing SRV lookup as no record", async () => {
    const servfail = Object.assign(new Error("SERVFAIL"), { code: "ESERVFAIL" });
    const dns = fakeDns({ "_matrix-fed._tcp.hs1": servfail, "_matrix._tcp.hs1": servfail });
    const r = resolver(dns, fakeWellKnown({}));
    assert.equal((await r.resolve("hs1")).baseUrl, "https://hs1:8448");
  });

  it('fails on an SRV answer of "." (no service)', async () => {
    const dns = fakeDns({ "_matrix-fed._tcp.example.org": [srv(".", 0)] });
    const r = resolver(dns, fakeWellKnown({}));
    await assert.rejects(r.resolve("example.org"), UnresolvableServerError);
  });

  it("picks the lowest SRV priority, then by weight", async () => {
    const records = [
      srv("backup.example.org", 1, 20, 100),
      srv("a.example.org", 2, 10, 1),
      srv("b.example.org", 3, 10, 3),
    ];
    const dns = fakeDns({ "_matrix-fed._tcp.example.org": records });
    const low = resolver(dns, fakeWellKnown({}), { random: () => 0.1 });
    const high = resolver(dns, fakeWellKnown({}), { random: () => 0.9 });
    assert.equal((await low.resolve("example.org")).baseUrl, "https://a.example.org:2");
    assert.equal((await high.resolve("example.org")).baseUrl, "https://b.example.org:3");
  });
});

describe("ServerResolver custom resolvers", () => {
  it("reaches a configured server at its base URL with no discovery", async () => {
    const dns = fakeDns({});
    const wellKnown = fakeWellKnown({});
    const r = resolver(dns, wellKnown, {
      customResolvers: {
        hs1: "http://127.0.0.1:8008",
        "example.org": "https://proxy.internal:8443/",
      },
    });
    assert.deepEqual(await r.resolve("hs1"), {
      baseUrl: "http://127.0.0.1:8008",
      hostHeader: "127.0.0.1:8008",
      tlsServerName: undefined,
    });
    assert.deepEqual(await r.resolve("example.org"), {
      baseUrl: "https://proxy.internal:8443",
      hostHeader: "proxy.internal:8443",
      tlsServerName: "proxy.internal",
    });
    assert.deepEqual(wellKnown.fetched, []);
    assert.deepEqual(dns.queries, []);
  });
});
