/**
 * Samples a process's resident set size (VmRSS in /proc/<pid>/status) on a
 * fixed interval, so the peak during an operation can be compared with the
 * resting size before it.
 */
import { readFileSync } from "node:fs";

/** RSS figures in bytes. */
export interface RssSummary {
  /** Median of the samples taken before `markStart()`. */
  readonly baseline: number;
  /** Largest sample from the start of sampling to `stop()`. */
  readonly peak: number;
  readonly samples: number;
}

/** Reads VmRSS of `pid` in bytes. */
export function readRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match?.[1]) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Samples every `intervalMs` from construction until `stop()`. */
export class RssSampler {
  readonly #before: number[] = [];
  readonly #during: number[] = [];
  #started = false;
  #summary: RssSummary | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly pid: number,
    intervalMs = 50,
  ) {
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
  }

  /** Ends the baseline period: later samples belong to the measured operation. */
  markStart(): void {
    this.#sample();
    this.#started = true;
  }

  /** Takes a last sample, stops the timer and summarises; later calls return the same summary. */
  stop(): RssSummary {
    if (!this.#summary) {
      this.#sample();
      clearInterval(this.#timer);
      const all = [...this.#before, ...this.#during];
      this.#summary = {
        baseline: median(this.#before),
        peak: Math.max(...all),
        samples: all.length,
      };
    }
    return this.#summary;
  }

  #sample(): void {
    (this.#started ? this.#during : this.#before).push(readRss(this.pid));
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}
