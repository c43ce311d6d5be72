/** Latency of repeated calls: median and 95th percentile, in milliseconds. */
import { performance } from "node:perf_hooks";

export interface Latency {
  readonly median: number;
  readonly p95: number;
  readonly samples: number;
}

/** Runs `work` `warmup` times untimed, then `samples` times timed, one after another. */
export async function sampleLatency(
  samples: number,
  work: () => Promise<unknown>,
  warmup = 0,
): Promise<Latency> {
  for (let i = 0; i < warmup; i++) await work();
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const started = performance.now();
    await work();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return {
    median: times[Math.floor(samples / 2)]!,
    p95: times[Math.min(samples - 1, Math.floor(samples * 0.95))]!,
    samples,
  };
}
