/**
 * A Prometheus histogram kept in plain numbers, for the HTTP latency series
 * (`mxcd_http_request_duration_seconds`, http-metrics.ts): the exposition
 * prom-client's `Histogram` gives, series for series and line for line
 * (test/latency-histogram.test.ts feeds both the same observations and
 * compares the scrapes), with a child whose `observe` is a bucket search and
 * three additions. prom-client's labelled `observe` validates and hashes its
 * labels into a key string on every call — a measurable part of a cached
 * download on the serving fast path (bench/README.md, "Fifth session" and
 * "Sixth session").
 *
 * Registered in the app's registry as a metric of its own (`registerMetric`):
 * prom-client formats its values as it formats its own histograms'.
 */
import type { Metric, Registry } from "prom-client";

/** One labelled series. */
export interface LatencySeries {
  observe(seconds: number): void;
}

type Labels = Readonly<Record<string, string>>;

interface Series extends LatencySeries {
  readonly labels: Labels;
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** prom-client's value shape (lib/histogram.js `setValuePair`). */
interface Value {
  labels: Record<string, string | number>;
  sharedLabels?: Labels;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}

export class LatencyHistogram {
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, Series>();
  /** The series observed at least once, in the order of their first observation (prom-client's). */
  readonly #shown: Series[] = [];
  readonly #labelNames: readonly string[];

  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
    bounds: readonly number[],
    registry: Registry,
  ) {
    this.#labelNames = labelNames;
    this.#bounds = [...bounds].sort((a, b) => a - b);
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of `labels` (every label name given, in any order); keep it for repeated use. */
  series(labels: Labels): LatencySeries {
    const key = this.#labelNames.map((name) => labels[name] ?? "").join("\0");
    let series = this.#series.get(key);
    if (!series) {
      for (const name of Object.keys(labels)) {
        if (!this.#labelNames.includes(name)) throw new Error(`unknown label ${name}`);
      }
      const bounds = this.#bounds;
      const shown = this.#shown;
      const created: Series = {
        labels,
        counts: new Float64Array(bounds.length + 1),
        sum: 0,
        count: 0,
        observe(seconds) {
          if (!Number.isFinite(seconds))
            throw new TypeError(`Value is not a valid number: ${seconds}`);
          let i = 0;
          while (i < bounds.length && seconds > bounds[i]!) i++;
          if (created.count === 0) shown.push(created);
          created.counts[i]! += 1;
          created.sum += seconds;
          created.count += 1;
        },
      };
      series = created;
      this.#series.set(key, series);
    }
    return series;
  }

  observe(labels: Labels, seconds: number): void {
    this.series(labels).observe(seconds);
  }

  /** As prom-client's `Histogram.getForPromString` (what the registry formats). */
  async getForPromString() {
    const values: Value[] = [];
    const bucket = `${this.name}_bucket`;
    for (const series of this.#shown) {
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += series.counts[i]!;
        values.push({
          labels: { le },
          sharedLabels: series.labels,
          value: cumulative,
          metricName: bucket,
          exemplar: null,
        });
      });
      values.push(
        {
          labels: { le: "+Inf" },
          sharedLabels: series.labels,
          value: series.count,
          metricName: bucket,
          exemplar: null,
        },
        {
          labels: {},
          sharedLabels: series.labels,
          value: series.sum,
          metricName: `${this.name}_sum`,
          exemplar: undefined,
        },
        {
          labels: {},
          sharedLabels: series.labels,
          value: series.count,
          metricName: `${this.name}_count`,
          exemplar: undefined,
        },
      );
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    };
  }

  /** As prom-client's `Histogram.get` (the registry's JSON): each value's labels with the series'. */
  async get() {
    const data = await this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ sharedLabels, labels, ...value }) => ({
        ...value,
        labels: { ...labels, ...sharedLabels },
      })),
    };
  }

  reset(): void {
    for (const series of this.#shown) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
    this.#shown.length = 0;
  }
}
