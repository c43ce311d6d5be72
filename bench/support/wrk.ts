/**
 * Runs wrk and reads its results exactly: a small Lua `done` hook prints
 * the summary counters as JSON instead of wrk's rounded human-readable text.
 *
 * wrk counts bytes as they arrive but requests only when complete, so for
 * large files (64 MiB × 32 connections in flight at the end of the run) the
 * byte rate is the faithful throughput figure; requests/s is reported too.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCommand } from "./processes.js";

/** The load wrk applies. */
export interface WrkLoad {
  readonly threads: number;
  readonly connections: number;
  readonly seconds: number;
}

/** wrk's counters for one run. */
export interface WrkResult {
  /** Completed responses. */
  readonly requests: number;
  /** Bytes read, status lines and headers included. */
  readonly bytes: number;
  readonly seconds: number;
  /** Responses with a status of 400 or more (wrk's "Non-2xx or 3xx responses"). */
  readonly badStatus: number;
  /** 99th percentile of the response latency (wrk's own histogram), in milliseconds. */
  readonly p99Ms: number;
  readonly socketErrors: { connect: number; read: number; write: number; timeout: number };
}

const MARKER = "WRK_JSON ";

const REPORT_SCRIPT = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '${MARKER}{"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p99_us":%d}\\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(99.0)))
end
`;

/**
 * Writes wrk's reporting script into `dir` and returns its path; `extra`
 * Lua (e.g. a `request` function) is prepended, in a file named `name`.
 */
export function writeWrkScript(dir: string, extra = "", name = "report.lua"): string {
  const path = join(dir, name);
  writeFileSync(path, `${extra}\n${REPORT_SCRIPT}`);
  return path;
}

/**
 * Runs `wrk` against `url` with extra request headers; rejects if wrk fails
 * or any response was not a success (a fast stream of 401s is no result).
 */
export async function runWrk(
  wrk: string,
  script: string,
  url: string,
  headers: Record<string, string>,
  load: WrkLoad,
): Promise<WrkResult> {
  const args = [
    ...["-t", String(load.threads), "-c", String(load.connections), "-d", `${load.seconds}s`],
    // A 64 MiB response shared 32 ways takes seconds; wrk's 2 s default would drop it.
    ...["--timeout", "120s", "-s", script],
    ...Object.entries(headers).flatMap(([name, value]) => ["-H", `${name}: ${value}`]),
    url,
  ];
  const run = await runCommand(wrk, args);
  const line = run.stdout.split("\n").find((l) => l.startsWith(MARKER));
  if (run.code !== 0 || !line) {
    throw new Error(`wrk ${url} failed (${run.code}): ${run.stderr.trim() || run.stdout.trim()}`);
  }
  const result = parseReport(line.slice(MARKER.length));
  // A short run may complete no 64 MiB response at all; bytes still flowed.
  if (result.badStatus > 0 || result.bytes === 0) {
    throw new Error(`wrk ${url}: ${result.badStatus} error responses, ${result.bytes} bytes read`);
  }
  return result;
}

function parseReport(json: string): WrkResult {
  const raw = JSON.parse(json) as Record<string, number>;
  const count = (name: string) => raw[name] ?? 0;
  return {
    requests: count("requests"),
    bytes: count("bytes"),
    seconds: count("duration_us") / 1e6,
    badStatus: count("status"),
    p99Ms: count("p99_us") / 1000,
    socketErrors: {
      connect: count("connect"),
      read: count("read"),
      write: count("write"),
      timeout: count("timeout"),
    },
  };
}
