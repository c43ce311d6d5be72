/**
 * `mxcd media migrate-store --from FILE --to FILE`: copies every media blob
 * from the media store of one config file to the media store of another
 * (e.g. filesystem → S3), verified by SHA-256, resumable (run it again to
 * finish an interrupted copy), with a progress bar. Point the server at the
 * new store (its config's `media_store`) once it reports no failures.
 */
import { SingleBar } from "cli-progress";
import { loadConfigFile } from "../config/load-config.js";
import { listKeys, migrateStore } from "../media/store-migration.js";
import { createBlobStore } from "../storage/create-blob-store.js";

export async function migrateStoreCommand(options: { from: string; to: string }): Promise<void> {
  const from = createBlobStore(loadConfigFile(options.from).media_store);
  const to = createBlobStore(loadConfigFile(options.to).media_store);
  try {
    console.error("listing the source store...");
    const keys = await listKeys(from);
    const bar = new SingleBar({
      format:
        "{bar} {percentage}% | {value}/{total} blobs | copied {copied}, skipped {skipped}, failed {failed}",
      noTTYOutput: true,
      notTTYSchedule: 5000,
      stream: process.stderr,
    });
    bar.start(keys.length, 0, { copied: 0, skipped: 0, failed: 0 });
    const result = await migrateStore(from, to, keys, {
      onKey: (_key, _outcome, p) =>
        bar.increment(1, { copied: p.copied, skipped: p.skipped, failed: p.failed.length }),
    });
    bar.stop();
    console.log(
      `copied ${result.copied} (${(result.bytes / 1024 / 1024).toFixed(1)} MiB), ` +
        `skipped ${result.skipped} already present, failed ${result.failed.length}`,
    );
    for (const key of result.failed) console.log(`failed: ${key}`);
    if (result.failed.length > 0) process.exitCode = 1;
  } finally {
    await from.close?.();
    await to.close?.();
  }
}
