/**
 * Proof that a suite needing an optional tool really ran. Each such suite
 * leaves a marker file under `$MXCD_TEST_MARKERS/<kind>/`; scripts/run-tests.ts
 * counts them and prints `<kind> suites run: N`, and under CI a count of 0
 * fails the run (.ci/run checks the printed lines too), so a tool that went
 * missing cannot turn its suites into silent skips.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** The tools whose suites are counted. */
export const MARKER_KINDS = ["postgres", "nginx", "synadm", "ffmpeg", "chromium"] as const;
export type MarkerKind = (typeof MARKER_KINDS)[number];

/** Records that a `kind` suite ran (a no-op outside scripts/run-tests.ts). */
export function markSuiteRan(kind: MarkerKind, name = randomBytes(6).toString("hex")): void {
  const root = process.env.MXCD_TEST_MARKERS;
  if (!root) return;
  const dir = join(root, kind);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), "");
}

/** How many `kind` suites left a marker under `root`. */
export function countSuitesRan(root: string, kind: MarkerKind): number {
  try {
    return readdirSync(join(root, kind)).length;
  } catch {
    return 0;
  }
}

/**
 * Records that the running test file started a server on the media store
 * under test (MXCD_TEST_MEDIA_STORE), so scripts/run-tests.ts knows to run
 * it again in the S3 pass. Files that never leave this marker do the same
 * thing in every pass and run once. A no-op outside scripts/run-tests.ts.
 */
export function markStoreUsed(): void {
  const root = process.env.MXCD_TEST_MARKERS;
  const file = process.argv[1];
  if (!root || !file) return;
  const dir = join(root, STORE_USERS);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, encodeURIComponent(file)), "");
}

/** The test files (absolute paths) that left `markStoreUsed` under `root`. */
export function storeUsers(root: string): string[] {
  try {
    return readdirSync(join(root, STORE_USERS)).map(decodeURIComponent);
  } catch {
    return [];
  }
}

const STORE_USERS = "store-users";
