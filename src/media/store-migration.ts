/**
 * Copies every blob from one media store to another (filesystem ⇄ S3), for
 * `mxcd media migrate-store`. Resumable without any state file: a key whose
 * destination already exists with the same size is skipped (it was copied,
 * and verified, by an earlier run). Each copy is verified: the SHA-256 of
 * the bytes read from the source must equal the SHA-256 of the bytes read
 * back from the destination, else the destination copy is deleted and the
 * key reported as failed. The source is never modified.
 */
import { createHash } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";

export interface MigrationProgress {
  readonly copied: number;
  readonly skipped: number;
  readonly failed: readonly string[];
  readonly bytes: number;
}

export interface MigrationOptions {
  /** Called after every key. */
  onKey?(key: string, outcome: "copied" | "skipped" | "failed", progress: MigrationProgress): void;
  readonly signal?: AbortSignal;
}

/** Every key of a store (for the progress bar's total). */
export async function listKeys(store: BlobStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of store.list("")) keys.push(key);
  return keys.sort();
}

export async function migrateStore(
  from: BlobStore,
  to: BlobStore,
  keys: readonly string[],
  options: MigrationOptions = {},
): Promise<MigrationProgress> {
  let copied = 0;
  let skipped = 0;
  let bytes = 0;
  const failed: string[] = [];
  for (const key of keys) {
    if (options.signal?.aborted) break;
    let outcome: "copied" | "skipped" | "failed";
    try {
      const size = await copyOne(from, to, key);
      if (size === undefined) {
        skipped++;
        outcome = "skipped";
      } else {
        copied++;
        bytes += size;
        outcome = "copied";
      }
    } catch {
      failed.push(key);
      outcome = "failed";
    }
    options.onKey?.(key, outcome, { copied, skipped, failed, bytes });
  }
  return { copied, skipped, failed, bytes };
}

/** Copies and verifies one key; undefined when the destination already had it. */
async function copyOne(from: BlobStore, to: BlobStore, key: string): Promise<number | undefined> {
  const source = await from.stat(key);
  const existing = await to.stat(key).catch((error: unknown) => {
    if (error instanceof BlobNotFoundError) return undefined;
    throw error;
  });
  if (existing?.size === source.size) return undefined;
  const hash = createHash("sha256");
  const tee = new PassThrough();
  const input = await from.read(key);
  input.on("data", (chunk: Buffer) => hash.update(chunk));
  input.on("error", (error) => tee.destroy(error));
  input.pipe(tee);
  await to.write(key, tee);
  const copiedHash = hash.digest("hex");
  const readBack = await sha256Of(await to.read(key));
  if (readBack !== copiedHash) {
    await to.delete(key);
    throw new Error(`verification failed for ${key}`);
  }
  return source.size;
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
