/**
 * The repository's root as a file URL, wherever the test runs from:
 * `npm test` runs the tests compiled into dist/test (scripts/run-tests.ts),
 * `tsx` runs them from test/, so a path relative to `import.meta.url`
 * differs between the two. Files of the repository are
 * `new URL("docs/deployment.md", REPO_URL)`. The root is the nearest folder
 * above this module that holds package.json.
 */
import { existsSync } from "node:fs";

function findRoot(): URL {
  let dir = new URL("./", import.meta.url);
  while (!existsSync(new URL("package.json", dir))) {
    const parent = new URL("../", dir);
    if (parent.href === dir.href) throw new Error(`no package.json above ${import.meta.url}`);
    dir = parent;
  }
  return dir;
}

export const REPO_URL: URL = findRoot();
