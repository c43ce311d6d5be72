/**
 * Test support modules imported by suites that run in the filesystem pass
 * load the AWS SDK only when a test reaches S3 (test/support/s3rver.ts,
 * test/support/retention.ts): loading it at import costs every importing
 * file ~0.3–0.5 s of CPU for nothing. Checked in a fresh process: import
 * the module, then list the CommonJS modules Node has loaded (the SDK and
 * s3rver are CommonJS, so an `import` of them lands in `require.cache`).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { REPO_URL } from "./support/repo-url.js";

const PROBE = `
import { createRequire } from "node:module";
await import(process.argv[1]);
const loaded = Object.keys(createRequire(import.meta.url).cache);
process.stdout.write(JSON.stringify(loaded));
`;

/**
 * The CommonJS files loaded by importing `module` (a specifier relative to
 * this file, `.js` as in an import): compiled (npm test runs dist/test) or
 * TypeScript through tsx, which the probe then loads too.
 */
async function commonJsLoadedBy(module: string): Promise<string[]> {
  const url = import.meta.resolve(module);
  const loader = url.endsWith(".ts") ? ["--import", "tsx"] : [];
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...loader, "--input-type=module", "-e", PROBE, url],
    { cwd: fileURLToPath(REPO_URL) },
  );
  return JSON.parse(stdout) as string[];
}

const isS3Code = (file: string) => /\/node_modules\/(@aws-sdk|@smithy|s3rver)\//.test(file);

describe("test support loads S3 code lazily", () => {
  it("importing support/retention.ts loads neither the AWS SDK nor s3rver", async () => {
    const loaded = await commonJsLoadedBy("./support/retention.js");
    assert.deepEqual(loaded.filter(isS3Code), []);
  });

  it("the probe sees the SDK when a module does load it at import", async () => {
    const loaded = await commonJsLoadedBy("../src/storage/s3/s3-object-client.js");
    assert.ok(loaded.some(isS3Code));
  });
});
