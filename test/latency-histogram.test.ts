/**
 * The HTTP latency histogram in plain numbers (src/http/latency-histogram.ts)
 * must scrape exactly as prom-client's Histogram: both are fed the same
 * observations — on bucket bounds, between them, above the last, through
 * kept series and per-call labels, series first seen in any order — and
 * their registries' text and JSON are compared.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Histogram, Registry } from "prom-client";
import { LatencyHistogram } from "../src/http/latency-histogram.js";

const NAME = "mxcd_http_request_duration_seconds";
const HELP = "Time from request to the end of the response, by method, route pattern and status";
const LABELS = ["method", "route", "status"] as const;
const BOUNDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

describe("latency histogram", () => {
  it("scrapes as prom-client's Histogram fed the same observations", async () => {
    const theirs = new Registry();
    const ours = new Registry();
    const reference = new Histogram({
      name: NAME,
      help: HELP,
      labelNames: LABELS,
      buckets: BOUNDS,
      registers: [theirs],
    });
    const histogram = new LatencyHistogram(NAME, HELP, LABELS, BOUNDS, ours);
    assert.equal(await ours.metrics(), await theirs.metrics(), "empty");

    const download = {
      method: "GET",
      route: "/_matrix/client/v1/media/download/:a/:b",
      status: "200",
    };
    const thumb = { method: "GET", route: 'a "quoted"\\route\n', status: "404" };
    const kept = histogram.series(download);
    const values = [0, 0.001, 0.0010001, 0.003, 0.005, 0.07, 1, 2.5, 29.9, 30, 30.5, 1e6, 1e-9];
    values.forEach((seconds, i) => {
      // Interleaved: per-call labels, a kept series, another series first seen midway.
      const labels = i % 3 === 0 ? thumb : download;
      reference.observe(labels, seconds);
      if (labels === download && i % 2 === 0) kept.observe(seconds);
      else histogram.observe(labels, seconds);
    });
    // The same series, its labels given in another order.
    reference.observe({ status: "200", method: "GET", route: download.route }, 0.02);
    histogram.observe({ status: "200", method: "GET", route: download.route }, 0.02);
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.deepEqual(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON());

    assert.throws(() => kept.observe(Number.NaN), TypeError);
    assert.throws(() => histogram.observe({ method: "GET", other: "x" }, 1), /unknown label/);
    assert.equal(await ours.metrics(), await theirs.metrics(), "refused values change nothing");
  });
});
