/**
 * A node:test reporter that writes one JSON line per finished test file:
 * `{"file": "...", "ms": 1234.5}` as soon as it ends, where `ms` is the wall time
 * of the file's own process (module load, hooks and tests). scripts/run-tests.ts
 * adds it to every pass and prints the slowest files, so a CI log shows where
 * the suite's time goes. Plain JavaScript: node loads reporters before
 * `--import tsx` applies.
 *
 * @param {AsyncIterable<import("node:test/reporters").TestEvent>} source
 * @returns {AsyncGenerator<string>}
 */
export default async function* fileTimingReporter(source) {
  for await (const event of source) {
    if (event.type !== "test:complete") continue;
    const { file, name, nesting, details } = event.data;
    // The runner reports each file's process as a nesting-0 test named by its path.
    if (!file || nesting !== 0 || name !== file) continue;
    yield `${JSON.stringify({ file, ms: details.duration_ms })}\n`;
  }
}
