/**
 * Helpers of the media-retention tests: one pass of the job on a test
 * server's database (the job the server would build, on the test's clock),
 * the store's keys read past mxcd's store code (the media folder, or
 * s3rver's bucket through the SDK, loaded on the first S3 listing), and
 * the "every row has its file, every file its row" check.
 */
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { retentionSettingsOf } from "../../src/jobs/create-media-retention.js";
import { JobRunner } from "../../src/jobs/job-runner.js";
import { MediaRetentionJob } from "../../src/jobs/media-retention-job.js";
import { MediaDeletionService } from "../../src/media/media-deletion-service.js";
import { MediaAdminRepository } from "../../src/repositories/media-admin-repository.js";
import { MediaReferenceRepository } from "../../src/repositories/media-reference-repository.js";
import { MediaRetentionRepository } from "../../src/repositories/media-retention-repository.js";
import { localMediaKey, remoteContentKey } from "../../src/storage/media-paths.js";
import { asConfigText } from "./second-process.js";
import type { TestServer } from "./test-server.js";

export const DAY = 86_400_000;

/**
 * A config file for `mxcd media retention` on `server`'s database and store
 * (30 days local, 7 days remote), in a new folder named after `prefix`.
 */
export function retentionCliConfig(
  server: TestServer,
  prefix: string,
): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const file = join(dir, "mxcd.yaml");
  const { config } = server.app;
  writeFileSync(
    file,
    JSON.stringify({
      server_name: config.server_name,
      database: config.database,
      media_store: asConfigText(config.media_store),
      media_retention: { local_media_lifetime: "30d", remote_media_lifetime: "7d" },
      log_level: "warn",
    }),
  );
  return { dir, file };
}

/** A quiet logger that keeps what the job logs. */
export function recordingLogger() {
  const lines: object[] = [];
  const keep = (obj: object) => {
    lines.push(obj);
  };
  return { lines, info: keep, warn: keep, error: keep, debug: keep, trace: keep, fatal: keep };
}

/**
 * The job as the server builds it, on `now`, deleting through the server's
 * deletion path; `repository` replaces its queries (to inject a failure).
 */
export function retentionJob(
  server: TestServer,
  now: () => number,
  repository?: MediaRetentionRepository,
): { job: MediaRetentionJob; logged: object[] } {
  const logger = recordingLogger();
  const { config } = server.app;
  const deletion = new MediaDeletionService(
    { serverName: config.server_name },
    new MediaAdminRepository(server.app.database, server.app.mediaChanges),
    new MediaReferenceRepository(server.app.database),
    server.app.store,
    logger as never,
  );
  const job = new MediaRetentionJob({
    settings: retentionSettingsOf(config),
    repository: repository ?? new MediaRetentionRepository(config.server_name),
    deletion,
    logger: logger as never,
    now,
  });
  return { job, logged: logger.lines };
}

/** Runs one pass of `job` in the foreground (`mxcd jobs run`'s way); a failed batch throws. */
export async function runPass(server: TestServer, job: MediaRetentionJob): Promise<void> {
  const runner = new JobRunner(server.app.database, [job], recordingLogger() as never, {
    pauseMs: 0,
  });
  await runner.run({ failFast: true });
}

/** Every key in the server's media store, listed without mxcd's store code. */
export async function storeKeys(server: TestServer): Promise<string[]> {
  const store = server.app.config.media_store;
  if (store.engine === "filesystem") {
    if (!existsSync(store.path)) return [];
    return readdirSync(store.path, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => relative(store.path, join(entry.parentPath, entry.name)))
      .sort();
  }
  if (store.engine !== "s3") throw new Error(`no listing for ${store.engine}`);
  // Loaded here, not at import: the AWS SDK costs ~0.5 s of CPU, which the
  // filesystem pass would pay in every file importing this module (as
  // test/support/s3rver.ts does for s3rver).
  const [{ ListObjectsV2Command }, { createS3Client }] = await Promise.all([
    import("@aws-sdk/client-s3"),
    import("../../src/storage/s3/s3-object-client.js"),
  ]);
  const client = createS3Client(store);
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(
        new ListObjectsV2Command({ Bucket: store.bucket, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) keys.push(object.Key!.slice(store.prefix.length));
      token = page.NextContinuationToken;
    } while (token);
    return keys.sort();
  } finally {
    client.destroy();
  }
}

/** Keys of the store under `prefix` (a content key, or a thumbnail folder). */
export function under(keys: readonly string[], prefix: string): string[] {
  return keys.filter(
    (key) => key === prefix || key.startsWith(prefix.endsWith("/") ? prefix : `${prefix}/`),
  );
}

/**
 * The store and the tables agree: every stored original has its row and
 * every row with bytes has its original (no file without a row, no row
 * pointing at a deleted file). Returns the problems found.
 */
export async function storeMismatches(server: TestServer): Promise<string[]> {
  const keys = new Set(await storeKeys(server));
  const db = server.app.database.db;
  const local = await db
    .selectFrom("local_media_repository")
    .select(["media_id", "url_cache", "media_length"])
    .execute();
  const remote = await db
    .selectFrom("remote_media_cache")
    .select(["media_origin", "filesystem_id"])
    .execute();
  const expected = new Set<string>();
  for (const row of local.filter((r) => r.media_length !== null && Number(r.media_length) >= 0)) {
    expected.add(localMediaKey(row.media_id, row.url_cache));
  }
  for (const row of remote) expected.add(remoteContentKey(row.media_origin, row.filesystem_id));
  const problems: string[] = [];
  for (const key of expected) if (!keys.has(key)) problems.push(`row without file: ${key}`);
  for (const key of keys) {
    const original = /^(local_content|url_cache|remote_content)\//.test(key);
    if (original && !expected.has(key)) problems.push(`file without row: ${key}`);
  }
  return problems;
}
