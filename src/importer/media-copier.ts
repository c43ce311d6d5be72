/**
 * The per-file step of `mxcd import synapse --copy`: streams one Synapse
 * media file (a media_store-relative path, read from a MediaSource) into
 * mxcd's configured blob store under its mxcd key, checking length and
 * SHA-256 on the way.
 *
 * Design notes:
 * - The bytes pass through a checking generator on their way into
 *   `BlobStore.write`. Every check fails *inside* the write, before its
 *   commit: more bytes than the row's length fail at once, fewer or a
 *   SHA-256 other than Synapse's fail at the end. The store's contract
 *   (temp file + rename on disk; PutObject or an aborted multipart upload on
 *   S3) then leaves nothing under the key, so a mismatched file is never
 *   stored, and a crash mid-copy leaves no partial object under a real key.
 * - Memory is bounded by the stream chunks in flight (and, on S3, the
 *   store's part buffers): no file is held whole.
 * - A NULL `sha256` (media stored before Synapse hashed, or a schema before
 *   91) is computed from the bytes copied and returned for the mxcd row;
 *   so is the MD5 of every file copied (docs/trust-and-safety.md "Stored
 *   hashes"), in the same pass.
 * - Idempotent: a key is always written whole and the same source gives the
 *   same bytes, so copying again after a crash replaces an object with an
 *   identical one. When the mxcd row already exists (an earlier run), an
 *   object of the right size under the key is taken as copied; `--verify`
 *   re-reads it.
 */
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";
import type { MediaSource } from "./media-source.js";

/** One file to copy: where it is in Synapse, where it goes in mxcd, and what it must be. */
export interface CopyItem {
  /** media_store-relative path in the source (Synapse's layout). */
  readonly sourceKey: string;
  /** The mxcd store key (usually the same path; a legacy thumbnail name maps to the current one). */
  readonly destKey: string;
  /** Bytes the Synapse row promises. */
  readonly length: number;
  /** Synapse's lowercase hex SHA-256, or null when unknown (then computed). */
  readonly sha256: string | null;
}

/**
 * ok: the object is in the store (copied now, or found from an earlier run);
 * `sha256` is the row's, or the one computed while copying (null only when
 * nothing was read, a dry run or an object found present). Otherwise why
 * not: the file is absent or unreadable (`missing`), or its bytes disagree
 * with the row (`mismatched`).
 */
export type CopyOutcome =
  | {
      readonly ok: true;
      readonly sha256: string | null;
      /** MD5 of the bytes, when they were copied now (else left to the media-hash backfill). */
      readonly md5?: string | null;
    }
  | { readonly ok: false; readonly outcome: "missing" | "mismatched"; readonly problem: string };

/** The bytes disagree with the row: the write is failed so nothing is stored. */
class MismatchError extends Error {}

/** Reading the source failed mid-stream (not the store's fault). */
class SourceReadError extends Error {}

/** Copies files from one MediaSource into one BlobStore. */
export class MediaCopier {
  constructor(
    private readonly source: MediaSource,
    private readonly store: BlobStore,
    /** Told the size of every file copied (for the command's MiB/s line). */
    private readonly onCopied?: (bytes: number) => void,
  ) {}

  /** True when the source has a file at `key` (of any size). */
  async sourceHas(key: string): Promise<boolean> {
    return (await this.source.probe(key)).ok;
  }

  /** A dry run's check: the file's presence and size only, nothing read or written. */
  async check(item: CopyItem): Promise<CopyOutcome> {
    const problem = await this.#probe(item);
    return problem ?? { ok: true, sha256: item.sha256 };
  }

  /**
   * Copies unless `rowPresent` (the mxcd row exists from an earlier run) and
   * the store already holds an object of the right size under `destKey`.
   * Store failures (disk full, S3 down) reject: they stop the import rather
   * than being counted against the file.
   */
  async copy(item: CopyItem, rowPresent: boolean, signal?: AbortSignal): Promise<CopyOutcome> {
    if (rowPresent && (await this.#storedSize(item.destKey)) === item.length) {
      return { ok: true, sha256: item.sha256 };
    }
    const problem = await this.#probe(item);
    if (problem) return problem;
    let input: Readable;
    try {
      input = await this.source.read(item.sourceKey);
    } catch (error) {
      if (error instanceof BlobNotFoundError) return missing("missing");
      return missing("unreadable");
    }
    const hash = createHash("sha256");
    const md5 = createHash("md5");
    try {
      await this.store.write(item.destKey, checked(input, item, hash, md5), { signal });
    } catch (error) {
      if (error instanceof MismatchError) {
        return { ok: false, outcome: "mismatched", problem: error.message };
      }
      if (error instanceof SourceReadError) return missing("unreadable");
      throw error;
    }
    this.onCopied?.(item.length);
    return { ok: true, sha256: item.sha256 ?? hash.digest("hex"), md5: md5.digest("hex") };
  }

  /** The source's problem (absent, unreadable, other size), or undefined. */
  async #probe(item: CopyItem): Promise<CopyOutcome | undefined> {
    const found = await this.source.probe(item.sourceKey);
    if (!found.ok) return missing(found.problem);
    if (found.size === item.length) return undefined;
    return { ok: false, outcome: "mismatched", problem: sizeProblem(found.size, item.length) };
  }

  async #storedSize(key: string): Promise<number | undefined> {
    try {
      return (await this.store.stat(key)).size;
    } catch (error) {
      if (error instanceof BlobNotFoundError) return undefined;
      throw error;
    }
  }
}

function missing(problem: string): CopyOutcome {
  return { ok: false, outcome: "missing", problem };
}

/** "truncated (50 of 100 bytes)" or "size differs (120, expected 100 bytes)", as the probe says it. */
export function sizeProblem(found: number, expected: number): string {
  return found < expected
    ? `truncated (${found} of ${expected} bytes)`
    : `size differs (${found}, expected ${expected} bytes)`;
}

/**
 * The source's bytes, passed on only while they agree with the row: a
 * generator, so the store's pipeline pulls it (backpressure) and, when the
 * store fails, returning it destroys the source stream.
 */
async function* checked(
  input: Readable,
  item: CopyItem,
  hash: ReturnType<typeof createHash>,
  md5: ReturnType<typeof createHash>,
): AsyncGenerator<Buffer> {
  let size = 0;
  const chunks = input[Symbol.asyncIterator]();
  try {
    yield* pass();
  } finally {
    // Also when the store stops pulling early: release the source's file or socket.
    input.destroy();
  }
  if (size !== item.length) throw new MismatchError(sizeProblem(size, item.length));
  if (item.sha256 !== null) {
    const actual = hash.copy().digest("hex");
    if (actual !== item.sha256.toLowerCase()) {
      throw new MismatchError(`sha256 differs (file ${actual}, Synapse ${item.sha256})`);
    }
  }

  async function* pass(): AsyncGenerator<Buffer> {
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await chunks.next();
      } catch (error) {
        throw new SourceReadError(String(error));
      }
      if (next.done) break;
      size += next.value.length;
      if (size > item.length) {
        throw new MismatchError(`size differs (more than ${item.length} bytes)`);
      }
      hash.update(next.value);
      md5.update(next.value);
      yield next.value;
    }
  }
}
