/**
 * The fast path's request line alone (issue 15; bench/README.md, "Fifth
 * session"): CPU µs per line, in one process, of the line built by the fast
 * path's writer (request-log-line.ts) into a no-op stream, and of the same
 * line through `mxcd serve`'s buffered destination (log-destination.ts) and
 * pino's asynchronous writer into /dev/null, alternating, yielding to the
 * event loop every 64 lines as a server between requests (so the writes
 * complete and their callbacks and the collector's work are counted).
 * `process.cpuUsage` counts every thread. Six repetitions of 10⁵ lines each.
 * Run: `npx tsx bench/fast-path-line.ts`. Nothing here asserts a time.
 */
import { openSync } from "node:fs";
import { setImmediate as yieldNow } from "node:timers/promises";
import { createLogDestination } from "../src/logging/log-destination.js";
import { createLogger } from "../src/logging/logger.js";
import { requestLogWriter } from "../src/logging/request-log-line.js";

const LINES = 100_000;
const url = "/_matrix/client/v1/media/download/bench.local/AbCdEfGhIjKlMnOpQrStUvWx";
let written = 0;
const writers = {
  "built, into a no-op stream": requestLogWriter(
    createLogger("info", {
      write(line: string) {
        written += line.length;
      },
    }),
  ),
  "built and written: buffered destination, /dev/null": requestLogWriter(
    createLogger("info", createLogDestination(openSync("/dev/null", "w"))),
  ),
};
const results = new Map<string, string[]>();
let n = 0;
for (let repetition = 0; repetition < 6; repetition++) {
  for (const [name, line] of Object.entries(writers)) {
    const before = process.cpuUsage();
    for (let i = 0; i < LINES; i++) {
      n = (n + 1) & 0x7fffffff;
      line({
        id: `req-${n.toString(36)}`,
        method: "GET",
        url,
        urlHasNoSecrets: true,
        remoteAddress: "127.0.0.1",
        statusCode: 200,
        responseTime: 0.05 + i / 1e7,
      });
      if (i % 64 === 0) await yieldNow();
    }
    const spent = process.cpuUsage(before);
    results.set(name, [
      ...(results.get(name) ?? []),
      ((spent.user + spent.system) / LINES).toFixed(2),
    ]);
  }
}
console.log("| request line | CPU µs per line, 6 repetitions |\n| --- | --- |");
for (const [name, micros] of results) console.log(`| ${name} | ${micros.join(" ")} |`);
console.log(`(${written} characters into the no-op stream)`);
