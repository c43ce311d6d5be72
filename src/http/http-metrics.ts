/**
 * Prometheus metrics for HTTP: request counts and latencies by method, route
 * pattern and status. The registry belongs to the app (no global registry),
 * so two servers in one process keep separate figures.
 */
import type { FastifyInstance } from "fastify";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import { LatencyHistogram } from "./latency-histogram.js";

export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "mxcd_" });
  return registry;
}

/** Counts one answer given outside Fastify (the fast path): method, route pattern, status, seconds. */
export type HttpRecorder = (method: string, route: string, status: number, seconds: number) => void;

/** Records every response of `app` in `registry`; returns the recorder for answers given outside Fastify. */
export function instrumentHttp(app: FastifyInstance, registry: Registry): HttpRecorder {
  const labelNames = ["method", "route", "status"] as const;
  // The fast path's answers are counted in plain numbers and added to the
  // counter when it is read (collect): prom-client's labelled `inc` re-hashes
  // its labels into a key string on every call (bench/README.md, "Fifth
  // session"). A scrape sees every answer given before it.
  const pending: { labels: Record<string, string>; count: number }[] = [];
  const requests = new Counter({
    name: "mxcd_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status",
    labelNames,
    registers: [registry],
    collect() {
      for (const child of pending) {
        if (child.count === 0) continue;
        this.inc(child.labels, child.count);
        child.count = 0;
      }
    },
  });
  // In plain numbers, exposed as prom-client exposes a Histogram (latency-histogram.ts).
  const duration = new LatencyHistogram(
    "mxcd_http_request_duration_seconds",
    "Time from request to the end of the response, by method, route pattern and status",
    labelNames,
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registry,
  );
  app.addHook("onResponse", async (request, reply) => {
    const labels = {
      method: request.method,
      // The pattern, not the path: ids in paths would explode the label set.
      route: request.routeOptions.url ?? "unmatched",
      status: String(reply.statusCode),
    };
    requests.inc(labels);
    duration.observe(labels, reply.elapsedTime / 1000);
  });
  // The same series, with each (method, route, status) child looked up once,
  // in nested maps: no key string is built per answer (bench/README.md,
  // "Fourth session: where the fast path's CPU goes").
  type Child = {
    counted: { labels: Record<string, string>; count: number };
    time: { observe(v: number): void };
  };
  const children = new Map<string, Map<string, Map<number, Child>>>();
  return (method, route, status, seconds) => {
    let child = children.get(method)?.get(route)?.get(status);
    if (!child) {
      const labels = { method, route, status: String(status) };
      const counted = { labels, count: 0 };
      child = { counted, time: duration.series(labels) };
      // Bounded: the fast path's few routes × the statuses it answers with;
      // past the bound, answers are counted at once (the plain counter's).
      if (pending.length < 256) {
        pending.push(counted);
        const routes = children.get(method) ?? new Map<string, Map<number, Child>>();
        children.set(method, routes);
        const statuses = routes.get(route) ?? new Map<number, Child>();
        routes.set(route, statuses);
        statuses.set(status, child);
      } else {
        requests.inc(labels);
        child.time.observe(seconds);
        return;
      }
    }
    child.counted.count += 1;
    child.time.observe(seconds);
  };
}

/**
 * `mxcd_fast_path_requests_total{route,result}` (docs/deployment.md, "Fast
 * path for cached media"): requests of the download and thumbnail routes the
 * serving fast path looked at, by `route` (`download`, `thumbnail`) and
 * `result`: `answered` by the fast path, or `passed` on to Fastify's routes.
 * Returns the counting function; the counts are plain numbers added to the
 * counter when it is read.
 */
export function registerFastPathMetrics(
  registry: Registry,
): (route: "download" | "thumbnail", result: "answered" | "passed") => void {
  const counts = {
    download: { answered: 0, passed: 0 },
    thumbnail: { answered: 0, passed: 0 },
  };
  new Counter({
    name: "mxcd_fast_path_requests_total",
    help: "Download and thumbnail requests the serving fast path answered or passed on to the routes",
    labelNames: ["route", "result"] as const,
    registers: [registry],
    collect() {
      // The totals so far; as before, a series appears at its first request.
      this.reset();
      for (const route of ["download", "thumbnail"] as const) {
        for (const result of ["answered", "passed"] as const) {
          const count = counts[route][result];
          if (count > 0) this.inc({ route, result }, count);
        }
      }
    },
  });
  return (route, result) => {
    counts[route][result] += 1;
  };
}

/**
 * `mxcd_access_token_cache_entries` (attached mode): verdicts the access-token
 * cache holds now, accepted and refused tokens alike. Bounded by
 * `access_token_cache.max_entries` (least recently used first), however many
 * distinct tokens clients send. Read when scraped.
 */
export function registerAccessTokenCacheMetrics(
  registry: Registry,
  cache: { readonly cachedTokens: number },
): void {
  new Gauge({
    name: "mxcd_access_token_cache_entries",
    help: "Access-token verdicts cached (attached mode), at most access_token_cache.max_entries",
    registers: [registry],
    collect() {
      this.set(cache.cachedTokens);
    },
  });
}

/**
 * The media byte cache (docs/deployment.md, "Serving fast path"):
 * `mxcd_media_byte_cache_bytes`, bytes held now (at most
 * `media_cache.max_bytes`), and `mxcd_media_byte_cache_requests_total{result}`,
 * reads answered from memory (`hit`) or from the store (`miss`). Read when scraped.
 */
export function registerMediaByteCacheMetrics(
  registry: Registry,
  cache: { readonly bytes: number; readonly hits: number; readonly misses: number },
): void {
  new Gauge({
    name: "mxcd_media_byte_cache_bytes",
    help: "Bytes of small media and thumbnails held in memory, at most media_cache.max_bytes",
    registers: [registry],
    collect() {
      this.set(cache.bytes);
    },
  });
  new Counter({
    name: "mxcd_media_byte_cache_requests_total",
    help: "Whole-blob reads of cacheable media, answered from memory (hit) or the store (miss)",
    labelNames: ["result"] as const,
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ result: "hit" }, cache.hits);
      this.inc({ result: "miss" }, cache.misses);
    },
  });
}

/**
 * `mxcd_quarantine_placeholders_served_total{kind}`: quarantined media
 * answered with a placeholder PNG instead of 404 (`quarantine_placeholder`),
 * `kind` `thumbnail` or `download`. Read when scraped.
 */
export function registerQuarantinePlaceholderMetrics(
  registry: Registry,
  placeholders: { readonly served: Readonly<Record<"thumbnail" | "download", number>> },
): void {
  new Counter({
    name: "mxcd_quarantine_placeholders_served_total",
    help: "Quarantined media answered with a placeholder image instead of 404, by kind",
    labelNames: ["kind"] as const,
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ kind: "thumbnail" }, placeholders.served.thumbnail);
      this.inc({ kind: "download" }, placeholders.served.download);
    },
  });
}

/**
 * The PDQ similarity index of this process (docs/trust-and-safety.md "Admin
 * API: finding media by hash"): `mxcd_pdq_index_hashes`, hashes held in
 * memory (0 until the first PDQ query builds it), and
 * `mxcd_pdq_index_dropped_total`, candidates dropped by verification (media
 * gone or re-hashed). Read when scraped.
 */
export function registerPdqSearchMetrics(
  registry: Registry,
  stats: {
    readonly indexed: number;
    readonly dropped: number;
    readonly state: number;
    readonly buildMs: number;
  },
): void {
  new Gauge({
    name: "mxcd_pdq_index_hashes",
    help: "PDQ hashes in this process's similarity index (grows while it builds; 0 with an empty log)",
    registers: [registry],
    collect() {
      this.set(stats.indexed);
    },
  });
  new Gauge({
    name: "mxcd_pdq_index_state",
    help: "This process's PDQ similarity index: 0 not built (empty log), 1 building, 2 built",
    registers: [registry],
    collect() {
      this.set(stats.state);
    },
  });
  new Gauge({
    name: "mxcd_pdq_index_build_seconds",
    help: "How long this process's PDQ index build took (0 until built)",
    registers: [registry],
    collect() {
      this.set(stats.buildMs / 1000);
    },
  });
  new Counter({
    name: "mxcd_pdq_index_dropped_total",
    help: "PDQ index candidates dropped by verification (media gone or re-hashed)",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats.dropped);
    },
  });
}
