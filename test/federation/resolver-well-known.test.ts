/**
 * `.well-known/matrix/server` (spec §4.5 step 3): the caching rules of
 * ServerResolver with a fake fetcher and clock, and HttpWellKnownFetcher
 * with a fake OutboundHttp (canned responses, no network).
 */
import assert from "node:assert/strict";
import type { IncomingHttpHeaders } from "node:http";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import {
  HttpWellKnownFetcher,
  ServerResolver,
  type WellKnownFetcher,
  type WellKnownResult,
} from "../../src/federation/server-resolver.js";
import { ConnectError, ResponseTooLargeError } from "../../src/net/outbound-errors.js";
import type { OutboundRequest, OutboundResponse } from "../../src/net/outbound-http.js";

const HOUR = 3_600_000;

/** A resolver over a scripted fetcher and a hand-moved clock. */
function setup(results: Array<WellKnownResult | Error>) {
  let fetches = 0;
  const clock = { now: 0 };
  const fetcher: WellKnownFetcher = {
    async fetch() {
      const result = results[Math.min(fetches++, results.length - 1)]!;
      if (result instanceof Error) throw result;
      return result;
    },
  };
  const resolver = new ServerResolver({
    dns: { resolveSrv: async () => [] },
    wellKnown: fetcher,
    now: () => clock.now,
  });
  return { resolver, clock, fetches: () => fetches };
}

const delegated = (cacheMs?: number): WellKnownResult => ({ server: "m.example.net:443", cacheMs });

describe("well-known caching", () => {
  it("fetches once for two resolves", async () => {
    const { resolver, fetches } = setup([delegated()]);
    const first = await resolver.resolve("example.org");
    const second = await resolver.resolve("example.org");
    assert.equal(first.baseUrl, "https://m.example.net:443");
    assert.deepEqual(second, first);
    assert.equal(fetches(), 1);
  });

  it("shares one fetch between concurrent resolves", async () => {
    const { resolver, fetches } = setup([delegated()]);
    await Promise.all([resolver.resolve("example.org"), resolver.resolve("EXAMPLE.org")]);
    assert.equal(fetches(), 1);
  });

  it("keeps a valid answer 24 h by default", async () => {
    const { resolver, clock, fetches } = setup([delegated()]);
    await resolver.resolve("example.org");
    clock.now = 24 * HOUR - 1;
    await resolver.resolve("example.org");
    assert.equal(fetches(), 1);
    clock.now = 24 * HOUR;
    await resolver.resolve("example.org");
    assert.equal(fetches(), 2);
  });

  it("follows Cache-Control max-age, capped at 48 h", async () => {
    const short = setup([delegated(HOUR)]);
    await short.resolver.resolve("example.org");
    short.clock.now = HOUR;
    await short.resolver.resolve("example.org");
    assert.equal(short.fetches(), 2);

    const long = setup([delegated(7 * 24 * HOUR)]);
    await long.resolver.resolve("example.org");
    long.clock.now = 48 * HOUR - 1;
    await long.resolver.resolve("example.org");
    assert.equal(long.fetches(), 1);
    long.clock.now = 48 * HOUR;
    await long.resolver.resolve("example.org");
    assert.equal(long.fetches(), 2);
  });

  it("caches an invalid answer for 1 h", async () => {
    const { resolver, clock, fetches } = setup([
      { server: undefined, cacheMs: undefined },
      delegated(),
    ]);
    assert.equal((await resolver.resolve("example.org")).baseUrl, "https://example.org:8448");
    clock.now = HOUR - 1;
    assert.equal((await resolver.resolve("example.org")).baseUrl, "https://example.org:8448");
    clock.now = HOUR;
    assert.equal((await resolver.resolve("example.org")).baseUrl, "https://m.example.net:443");
    assert.equal(fetches(), 2);
  });

  it("backs off after failures: 2 min, then 4 min, never over 1 h", async () => {
    const down = new ConnectError("example.org", "ECONNREFUSED");
    const { resolver, clock, fetches } = setup([down, down, down, down, down, down, down, down]);
    await resolver.resolve("example.org");
    clock.now = 2 * 60_000 - 1;
    await resolver.resolve("example.org");
    assert.equal(fetches(), 1);
    clock.now = 2 * 60_000;
    await resolver.resolve("example.org");
    assert.equal(fetches(), 2);
    clock.now += 4 * 60_000 - 1;
    await resolver.resolve("example.org");
    assert.equal(fetches(), 2);
    clock.now += 1;
    await resolver.resolve("example.org");
    assert.equal(fetches(), 3);
    for (let i = 0; i < 4; i++) {
      clock.now += HOUR;
      await resolver.resolve("example.org");
    }
    assert.equal(fetches(), 7, "the backoff is capped at an hour");
  });
});

/** A fake OutboundHttp answering from `routes` (URL → response), recording requests. */
function fakeHttp(
  routes: Record<string, { status: number; headers?: IncomingHttpHeaders; body?: string } | Error>,
) {
  const requests: OutboundRequest[] = [];
  return {
    requests,
    async request(request: OutboundRequest): Promise<OutboundResponse> {
      requests.push(request);
      const route = routes[String(request.url)];
      if (!route) return { status: 404, headers: {}, body: Readable.from([]) };
      if (route instanceof Error) throw route;
      const body = Readable.from([Buffer.from(route.body ?? "")]);
      return { status: route.status, headers: route.headers ?? {}, body };
    },
  };
}

const WK = (host: string) => `https://${host}/.well-known/matrix/server`;

describe("HttpWellKnownFetcher", () => {
  it("reads m.server and the Cache-Control lifetime", async () => {
    const http = fakeHttp({
      [WK("example.org")]: {
        status: 200,
        headers: { "cache-control": "public, max-age=600" },
        body: '{"m.server":"matrix.example.org:443"}',
      },
    });
    const result = await new HttpWellKnownFetcher(http).fetch("example.org");
    assert.deepEqual(result, { server: "matrix.example.org:443", cacheMs: 600_000 });
    assert.equal(http.requests[0]!.maxBytes <= 64 * 1024, true, "a small cap");
  });

  it("treats non-200, bad JSON, a missing field or a bad value as invalid", async () => {
    const http = fakeHttp({
      [WK("a.org")]: { status: 404, body: '{"m.server":"x.org"}' },
      [WK("b.org")]: { status: 200, body: "<html>" },
      [WK("c.org")]: { status: 200, body: '{"server":"x.org"}' },
      [WK("d.org")]: { status: 200, body: '{"m.server":"not a name"}' },
      [WK("e.org")]: { status: 200, body: "null" },
      [WK("f.org")]: { status: 200, body: '{"m.server":42}' },
    });
    const fetcher = new HttpWellKnownFetcher(http);
    for (const host of ["a.org", "b.org", "c.org", "d.org", "e.org", "f.org"]) {
      assert.equal((await fetcher.fetch(host)).server, undefined, host);
    }
  });

  it("follows https redirects", async () => {
    const http = fakeHttp({
      [WK("example.org")]: { status: 301, headers: { location: "https://www.example.org/mx" } },
      "https://www.example.org/mx": { status: 302, headers: { location: "/final" } },
      "https://www.example.org/final": { status: 200, body: '{"m.server":"m.example.org"}' },
    });
    assert.equal(
      (await new HttpWellKnownFetcher(http).fetch("example.org")).server,
      "m.example.org",
    );
  });

  it("stops at redirect loops, long chains and downgrades to http", async () => {
    const chain: Parameters<typeof fakeHttp>[0] = {};
    for (let i = 0; i < 10; i++) {
      chain[`https://chain.org/${i}`] = { status: 302, headers: { location: `/${i + 1}` } };
    }
    const http = fakeHttp({
      ...chain,
      [WK("loop.org")]: { status: 302, headers: { location: "https://loop.org/b" } },
      "https://loop.org/b": { status: 302, headers: { location: WK("loop.org") } },
      [WK("chain.org")]: { status: 302, headers: { location: "/0" } },
      [WK("down.org")]: { status: 302, headers: { location: "http://down.org/x" } },
      "http://down.org/x": { status: 200, body: '{"m.server":"evil.org"}' },
    });
    const fetcher = new HttpWellKnownFetcher(http);
    for (const host of ["loop.org", "chain.org", "down.org"]) {
      assert.equal((await fetcher.fetch(host)).server, undefined, host);
    }
    assert.ok(http.requests.length < 20);
    assert.ok(!http.requests.some((r) => String(r.url).startsWith("http:")));
  });

  it("rejects on 5xx and on transport failures (to back off)", async () => {
    const http = fakeHttp({
      [WK("busy.org")]: { status: 503 },
      [WK("down.org")]: new ConnectError("down.org", "ECONNREFUSED"),
    });
    const fetcher = new HttpWellKnownFetcher(http);
    await assert.rejects(fetcher.fetch("busy.org"));
    await assert.rejects(fetcher.fetch("down.org"), ConnectError);
  });

  it("treats an oversized body as invalid", async () => {
    const http = {
      async request(): Promise<OutboundResponse> {
        const body = new Readable({ read() {} });
        body.destroy(new ResponseTooLargeError("big.org", 10));
        return { status: 200, headers: {}, body };
      },
    };
    assert.equal((await new HttpWellKnownFetcher(http).fetch("big.org")).server, undefined);
  });
});
