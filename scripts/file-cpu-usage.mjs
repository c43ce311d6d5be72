/**
 * Preloaded into every test file's process by scripts/run-tests.ts (node's
 * `--import`, which `node --test` passes on to the processes it spawns): at
 * exit, appends `{"file": "...", "cpuMs": 1234.5}` to
 * `$MXCD_TEST_TIMINGS.cpu`, the process's own CPU time (user + system; the
 * PostgreSQL server and the mxcd processes a test spawns are not
 * counted). The runner prints it beside each file's wall time, so a CI log
 * shows which files wait rather than compute. Plain JavaScript: loaded
 * before tsx.
 */
import { appendFileSync } from "node:fs";
import { resolve } from "node:path";

const timings = process.env.MXCD_TEST_TIMINGS;
const file = process.argv[1];
if (timings && file && /\.test\.[cm]?[jt]s$/.test(file)) {
  process.on("exit", () => {
    const { user, system } = process.cpuUsage();
    const line = JSON.stringify({ file: resolve(file), cpuMs: (user + system) / 1000 });
    appendFileSync(`${timings}.cpu`, `${line}\n`);
  });
}
