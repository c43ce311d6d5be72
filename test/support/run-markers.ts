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
 * Records that the running test file used the media store under test
 * (MXCD_TEST_MEDIA_STORE), so scripts/run-tests.ts knows to run it again in
 * the S3 pass (test servers call it through `watchStoreUse`). Files that
 * never leave this marker do the same thing in every pass and run once. A
 * no-op outside scripts/run-tests.ts.
 */
export function markStoreUsed(): void {
  const root = process.env.MXCD_TEST_MARKERS;
  const file = process.argv[1];
  if (!root || !file) return;
  const dir = join(root, STORE_USERS);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, encodeURIComponent(file)), "");
}

/**
 * The media store operations that reach (or, presigning, hand out) media
 * bytes, or find there are none: the behaviour a store backend decides.
 * Housekeeping with no byte (`close`, the filesystem's start-up sweep of
 * its own temporary files) is not one.
 */
const STORE_OPERATIONS: ReadonlySet<PropertyKey> = new Set([
  "read",
  "write",
  "stat",
  "delete",
  "list",
  "presignedUrl",
]);

/**
 * Wraps a test server's media store so that its first operation on media
 * bytes (a read, write, stat, delete, listing or presigned URL, found or not)
 * calls `markStoreUsed`: a file whose servers never reach the store does the
 * same in every pass and runs once. Everything else passes through unchanged.
 */
export function watchStoreUse<T extends object>(store: T): T {
  let marked = false;
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (!STORE_OPERATIONS.has(property)) return value.bind(target);
      return (...args: unknown[]) => {
        if (!marked) {
          marked = true;
          markStoreUsed();
        }
        return value.apply(target, args);
      };
    },
  });
}

/**
 * A view of a (frozen) server config whose `media_store`, once `arm()`ed
 * (after the app has read it), calls `markStoreUsed` when read: a test that
 * takes a server's store config reaches the store in ways `watchStoreUse`
 * cannot see (its own BlobStore, a second `mxcd serve` or a CLI sharing the
 * store, the folder read directly), so the file counts as using the store.
 */
export function watchStoreConfig<T extends object>(config: T): { config: T; arm(): void } {
  let armed = false;
  const watched = new Proxy(config, {
    get(target, property) {
      if (armed && property === "media_store") markStoreUsed();
      return Reflect.get(target, property, target);
    },
  });
  return {
    config: watched,
    arm: () => {
      armed = true;
    },
  };
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
