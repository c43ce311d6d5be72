/**
 * The fast path's counters (src/http/http-metrics.ts) are plain numbers added
 * to prom-client's counters when `/metrics` is read, not labelled `inc` calls
 * per answer (bench/README.md, "Fifth session"). What a scrape shows must not
 * change: every answer given before a scrape is in it, exactly once, however
 * often it is read; answers given through Fastify's hook and through the fast
 * path's recorder add up in the same series; a series appears at its first
 * request, not before.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { instrumentHttp, registerFastPathMetrics } from "../src/http/http-metrics.js";

const ROUTE = "/_matrix/client/v1/media/download/:serverName/:mediaId";

/** The value of the one line starting with `series` (e.g. `name{labels}`), or undefined. */
async function scraped(registry: Registry, series: string): Promise<number | undefined> {
  const line = (await registry.metrics()).split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A stand-in for Fastify that keeps the onResponse hook instrumentHttp adds. */
function fakeApp() {
  const hooks: ((request: unknown, reply: unknown) => Promise<void>)[] = [];
  const app = {
    addHook: (_name: string, hook: (request: unknown, reply: unknown) => Promise<void>) => {
      hooks.push(hook);
    },
  } as unknown as FastifyInstance;
  const answer = (route: string, status: number) =>
    Promise.all(
      hooks.map((hook) =>
        hook(
          { method: "GET", routeOptions: { url: route } },
          { statusCode: status, elapsedTime: 2 },
        ),
      ),
    );
  return { app, answer };
}

describe("the fast path's counters, counted in plain numbers", () => {
  it("shows every recorded answer exactly once, however often it is scraped", async () => {
    const registry = new Registry();
    const { app, answer } = fakeApp();
    const record = instrumentHttp(app, registry);
    const series = `mxcd_http_requests_total{method="GET",route="${ROUTE}",status="200"}`;
    const count = `mxcd_http_request_duration_seconds_count{method="GET",route="${ROUTE}",status="200"}`;
    assert.equal(await scraped(registry, series), undefined, "no series before a request");
    await answer(ROUTE, 200); // the first request: Fastify's route
    for (let i = 0; i < 7; i++) record("GET", ROUTE, 200, 0.001);
    assert.equal(await scraped(registry, series), 8);
    assert.equal(await scraped(registry, series), 8, "a second scrape counts nothing twice");
    for (let i = 0; i < 5; i++) record("GET", ROUTE, 200, 0.001);
    await answer(ROUTE, 200);
    assert.equal(await scraped(registry, series), 14);
    assert.equal(await scraped(registry, series), 14);
    assert.equal(await scraped(registry, count), 14, "the histogram counts the same answers");
    record("GET", ROUTE, 404, 0.001);
    const missing = `mxcd_http_requests_total{method="GET",route="${ROUTE}",status="404"}`;
    assert.equal(await scraped(registry, missing), 1);
  });

  it("counts answered and passed requests per route, from their first one", async () => {
    const registry = new Registry();
    const counted = registerFastPathMetrics(registry);
    const line = (route: string, result: string) =>
      `mxcd_fast_path_requests_total{route="${route}",result="${result}"}`;
    assert.equal(await scraped(registry, line("download", "answered")), undefined);
    for (let i = 0; i < 3; i++) counted("download", "answered");
    counted("thumbnail", "passed");
    for (let scrape = 0; scrape < 2; scrape++) {
      assert.equal(await scraped(registry, line("download", "answered")), 3);
      assert.equal(await scraped(registry, line("thumbnail", "passed")), 1);
      assert.equal(await scraped(registry, line("download", "passed")), undefined);
    }
    counted("download", "answered");
    assert.equal(await scraped(registry, line("download", "answered")), 4);
  });
});
