/**
 * node's TAP reporter that also appends one JSON line per finished test file
 * to the file named by $MXCD_TEST_TIMINGS: `{"file": "...", "ms": 1234.5}`
 * as soon as the file ends, where `ms` is the wall time of the file's own
 * process (module load, hooks and tests). scripts/run-tests.ts uses it for
 * its TAP output and prints the slowest files, so a CI log shows where the
 * suite's time goes. One reporter for both (a third reporter trips node 20's
 * listener-leak warning). Plain JavaScript: node loads reporters before
 * `--import tsx` applies.
 */
import { appendFileSync } from "node:fs";
import { tap } from "node:test/reporters";

/**
 * @param {AsyncIterable<import("node:test/reporters").TestEvent>} source
 * @returns {AsyncGenerator<string>}
 */
export default async function* tapWithFileTimings(source) {
  const timings = process.env.MXCD_TEST_TIMINGS;
  async function* watched() {
    for await (const event of source) {
      if (timings && event.type === "test:complete") {
        const { file, name, nesting, details } = event.data;
        // The runner reports each file's process as a nesting-0 test named by its path.
        if (file && nesting === 0 && name === file) {
          appendFileSync(timings, `${JSON.stringify({ file, ms: details.duration_ms })}\n`);
        }
      }
      yield event;
    }
  }
  yield* tap(watched());
}
