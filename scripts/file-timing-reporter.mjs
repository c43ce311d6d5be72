/**
 * A node:test reporter that writes one JSON line per finished test file:
 * `{"file": "...", "ms": 1234.5, "tests": 12}`, where `ms` is the wall time
 * of the file's own process (module load, hooks and tests). scripts/run-tests.ts
 * adds it to every pass and prints the slowest files, so a CI log shows where
 * the suite's time goes. Plain JavaScript: node loads reporters before
 * `--import tsx` applies.
 *
 * @param {AsyncIterable<import("node:test/reporters").TestEvent>} source
 * @returns {AsyncGenerator<string>}
 */
export default async function* fileTimingReporter(source) {
  /** @type {Map<string, number>} */
  const tests = new Map();
  /** @type {Map<string, number>} */
  const wallMs = new Map();
  for await (const event of source) {
    if (event.type === "test:pass" || event.type === "test:fail") {
      const { file, details } = event.data;
      // Leaf tests only: a suite's own pass event is not a test.
      if (file && details.type !== "suite") tests.set(file, (tests.get(file) ?? 0) + 1);
    }
    if (event.type !== "test:complete") continue;
    const { file, name, nesting, details } = event.data;
    // The runner reports each file's process as a nesting-0 test named by its path.
    if (!file || nesting !== 0 || name !== file) continue;
    wallMs.set(file, details.duration_ms);
  }
  // At the end: a file's own tests may be reported after its process ended.
  for (const [file, ms] of wallMs) {
    yield `${JSON.stringify({ file, ms, tests: tests.get(file) ?? 0 })}\n`;
  }
}
