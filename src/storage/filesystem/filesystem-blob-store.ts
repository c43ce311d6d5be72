/**
 * Blobs as files under one root directory, keys as relative paths: with the
 * keys of media-paths.ts this is Synapse's `media_store_path` layout.
 *
 * Design notes:
 * - Atomic writes: bytes go to a temp file beside the target, then `rename`
 *   puts it in place, so readers see the old blob or the whole new one. On any
 *   failure the temp file is removed before the promise rejects.
 * - Temp names contain `~`, which no key may contain, so `list` can never
 *   mistake one for a blob (it skips every name that is not a valid key part).
 *   A write killed with its process leaves its temp file; `sweepTemporaryFiles`
 *   removes those (exactly the TEMP_NAME pattern, old enough that no live
 *   write, in this process or another sharing the directory, still owns it).
 * - `read` opens the file before returning, so a missing blob rejects with
 *   BlobNotFoundError instead of failing later inside the stream. The stream
 *   ends at the size `fstat` saw then: never more bytes than that, and no
 *   extra read to find the end of the file.
 * - `sendTo` (the download route's way for bytes not in the byte cache)
 *   reads into two reusable SEND_CHUNK buffers and writes each to the
 *   response, reusing a buffer only once the response's write callback says
 *   the kernel has its bytes: nothing is allocated per chunk, at most two
 *   chunks per answer are in flight (backpressure bounds memory), and a
 *   closed response stops the reads and closes the file. Up to four 1 MiB
 *   buffers of finished answers are kept for the next ones (never those of an
 *   answer cut short, which the socket may still hold) (bench/README.md,
 *   "Large downloads"). It sends at most the bytes `fstat` saw at open.
 * - Keys are checked with `assertSafeKey` again here: a path reaches the file
 *   system only after passing it, whoever the caller is.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream, type Dirent } from "node:fs";
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  opendir,
  rename,
  rm,
  stat,
  unlink,
} from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { assertByteRange } from "../assert-byte-range.js";
import {
  BlobNotFoundError,
  type BlobStat,
  type BlobStore,
  type ByteRange,
  type ByteSink,
  type WriteOptions,
} from "../blob-store.js";
import { assertSafeKey, assertSafePathComponent, assertSafePrefix } from "../media-paths.js";

/**
 * Read chunk size. Each chunk costs a thread-pool round trip and a socket
 * write, so 64 KiB (Node's default) is dear; but each is also a fresh
 * buffer outside the V8 heap, and larger ones (1 MiB) made the garbage
 * collector and page faults cost more than they saved (bench/README.md,
 * "Large downloads: where the CPU went").
 */
const READ_HIGH_WATER_MARK = 256 * 1024;

/**
 * `sendTo`'s buffer size (two per answer, reused). With buffers that are
 * reused, a large chunk costs no allocation or collection, and each one
 * saves a thread-pool round trip and a socket write (bench/README.md,
 * "Large downloads").
 */
const SEND_CHUNK = 1024 * 1024;

/**
 * Bytes a write may buffer before it pushes back. Upload bodies arrive in
 * chunks of at most 64 KiB; while one write is in the thread pool the next
 * ones gather here and go out in a single `writev`, and the socket is not
 * paused and resumed for every chunk (Node's default is 16 KiB).
 */
const WRITE_HIGH_WATER_MARK = 1024 * 1024;

/** Leaves room in a 255-byte file name for the temp name's dot, `~`, random part and suffix. */
const TEMP_NAME_KEEP = 200;

/** Exactly the names `tempPathFor` makes: `.<name>~<16 hex digits>.tmp`. */
const TEMP_NAME = new RegExp(`^\\..{1,${TEMP_NAME_KEEP}}~[0-9a-f]{16}\\.tmp$`, "su");

export interface FilesystemBlobStoreOptions {
  /**
   * fsync each file before it is renamed into place (slower; survives power
   * loss). Uses the write stream's `flush` option, which needs Node >= 20.10.
   */
  readonly fsync?: boolean;
}

/** A BlobStore over the directory `root` (created on first write). */
export class FilesystemBlobStore implements BlobStore {
  readonly root: string;
  readonly #fsync: boolean;

  constructor(root: string, options: FilesystemBlobStoreOptions = {}) {
    this.root = resolve(root);
    this.#fsync = options.fsync ?? false;
  }

  /**
   * Streams the file (or an inclusive range of it); BlobNotFoundError if it is
   * absent. The stream owns an open file: consume it or destroy it.
   */
  async read(key: string, range?: ByteRange): Promise<Readable> {
    if (range) assertByteRange(range);
    const { handle, size } = await this.#open(key);
    // An explicit end (the range's, else the last byte) stops the stream
    // after the last chunk instead of one more read that finds end of file;
    // and no chunk is allocated larger than the bytes left to send.
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? size - 1, size - 1);
    if (end < start) {
      await handle.close();
      return Readable.from([]);
    }
    return handle.createReadStream({
      start,
      end,
      highWaterMark: Math.min(READ_HIGH_WATER_MARK, end - start + 1),
    });
  }

  /** See BlobStore.sendTo and the design notes. */
  async sendTo(
    key: string,
    range: ByteRange | undefined,
    start: (length: number) => ByteSink,
  ): Promise<void> {
    if (range) assertByteRange(range);
    const { handle, size } = await this.#open(key);
    try {
      const first = range?.start ?? 0;
      const last = Math.min(range?.end ?? size - 1, size - 1);
      const length = Math.max(0, last - first + 1);
      await sendChunks(handle, first, length, start(length));
    } finally {
      await handle.close();
    }
  }

  /** The open file and its size; BlobNotFoundError when missing or not a regular file. */
  async #open(key: string): Promise<{ handle: FileHandle; size: number }> {
    const handle = await open(this.#path(key), "r").catch((error: unknown) => {
      throw translate(error, key);
    });
    try {
      const info = await handle.stat();
      // open(2) succeeds on a directory; a directory is not a blob.
      if (!info.isFile()) throw new BlobNotFoundError(key);
      return { handle, size: info.size };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Writes to a temp file, then renames it over `key`; cleans up and rejects on failure. */
  async write(
    key: string,
    source: Readable | AsyncIterable<Uint8Array>,
    options: WriteOptions = {},
  ): Promise<BlobStat> {
    const target = this.#path(key);
    options.signal?.throwIfAborted();
    await mkdir(dirname(target), { recursive: true });
    const temp = tempPathFor(target);
    // `wx`: a temp name is never reused, even by a concurrent writer.
    const out = createWriteStream(temp, {
      flags: "wx",
      flush: this.#fsync,
      highWaterMark: WRITE_HIGH_WATER_MARK,
    });
    try {
      // Resolves only once the file is closed (and, with fsync, flushed).
      await pipeline(source, out, { signal: options.signal });
      await rename(temp, target);
      return { size: out.bytesWritten };
    } catch (error) {
      // The stream may still be opening the file; unlink only after it closed,
      // or the open could recreate the temp file after we removed it.
      out.destroy();
      if (!out.closed) await new Promise<void>((done) => out.once("close", done));
      await rm(temp, { force: true });
      throw error;
    }
  }

  /** The file's size; BlobNotFoundError if it is absent or not a regular file. */
  async stat(key: string): Promise<BlobStat> {
    const info = await stat(this.#path(key)).catch((error: unknown) => {
      throw translate(error, key);
    });
    if (!info.isFile()) throw new BlobNotFoundError(key);
    return { size: info.size };
  }

  /** Unlinks the file; a missing one (or a directory, which is no blob) is fine. */
  async delete(key: string): Promise<void> {
    try {
      await unlink(this.#path(key));
    } catch (error) {
      if (!isMissing(error) && errorCode(error) !== "EISDIR") throw error;
    }
  }

  /** Removes this store's temp files untouched for `olderThanMs` (see the design notes). */
  async sweepTemporaryFiles(olderThanMs: number, signal?: AbortSignal): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    const sweep = async (dir: string): Promise<void> => {
      let entries: AsyncIterable<Dirent>;
      try {
        entries = await opendir(dir);
      } catch (error) {
        if (isMissing(error)) return;
        throw error;
      }
      for await (const entry of entries) {
        if (signal?.aborted) return;
        const path = join(dir, entry.name);
        // Symlinks are neither followed nor removed: never outside the root.
        if (entry.isDirectory()) await sweep(path);
        else if (entry.isFile() && TEMP_NAME.test(entry.name)) {
          const info = await lstat(path).catch(() => undefined);
          if (info && info.mtimeMs < cutoff) {
            await rm(path, { force: true });
            removed += 1;
          }
        }
      }
    };
    await sweep(this.root);
    return removed;
  }

  /** Walks the directory that `prefix` names (or ends inside), yielding matching keys. */
  async *list(prefix: string): AsyncIterable<string> {
    assertSafePrefix(prefix);
    const slash = prefix.lastIndexOf("/");
    const dirKey = prefix.slice(0, slash + 1);
    yield* this.#walk(dirKey, prefix.slice(slash + 1));
  }

  /** Yields every file key under `dirKey` (which ends in `/` or is empty) whose name starts with `namePrefix`. */
  async *#walk(dirKey: string, namePrefix: string): AsyncGenerator<string> {
    let dir: AsyncIterable<Dirent>;
    try {
      dir = await opendir(join(this.root, dirKey));
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    for await (const entry of dir) {
      if (!entry.name.startsWith(namePrefix) || !isKeyComponent(entry.name)) continue;
      const key = dirKey + entry.name;
      if (entry.isDirectory()) yield* this.#walk(`${key}/`, "");
      else if (entry.isFile()) yield key;
      // A symlink counts when it points at a file; linked directories are not
      // followed (no loops, no walks outside the root).
      else if (entry.isSymbolicLink() && (await isFileAt(join(this.root, key)))) yield key;
    }
  }

  /** The absolute path of a key, after checking the key. */
  #path(key: string): string {
    return join(this.root, ...assertSafeKey(key).split("/"));
  }
}

/**
 * Sends `length` bytes of `handle` from `position` to `sink` through two
 * reused buffers (see the design notes), then ends the sink. A closed sink
 * stops the reads; a read error, or end of file before `length` bytes (the
 * file shrank), destroys the sink. Resolves once nothing is in flight.
 */
async function sendChunks(
  handle: FileHandle,
  position: number,
  length: number,
  sink: ByteSink,
): Promise<void> {
  let closed = sink.destroyed;
  const released: (() => void)[] = [];
  sink.once("close", () => {
    closed = true;
    for (const release of released.splice(0)) release();
  });
  const size = Math.min(SEND_CHUNK, length);
  const buffers = length > SEND_CHUNK ? [takeChunk(), takeChunk()] : [Buffer.allocUnsafe(size)];
  // Each buffer's write: settled once its callback ran (or the sink closed).
  const inFlight: (Promise<void> | undefined)[] = buffers.map(() => undefined);
  let left = length;
  try {
    for (let turn = 0; left > 0 && !closed; turn = (turn + 1) % buffers.length) {
      await inFlight[turn];
      if (closed) break;
      const buffer = buffers[turn]!;
      const { bytesRead } = await handle.read(buffer, 0, Math.min(size, left), position);
      if (closed) break;
      if (bytesRead === 0) throw new Error("the file shrank while it was being sent");
      position += bytesRead;
      left -= bytesRead;
      inFlight[turn] = new Promise<void>((done) => {
        released.push(done);
        sink.write(buffer.subarray(0, bytesRead), () => done());
      });
    }
    if (!closed) sink.end();
  } catch (error) {
    sink.destroy(error instanceof Error ? error : new Error(String(error)));
  }
  await Promise.all(inFlight);
  // Only after every write's callback ran: a sink cut short may still hold them.
  if (left === 0 && size === SEND_CHUNK) giveChunks(buffers);
}

/**
 * Spare SEND_CHUNK buffers, reused by the next large answer: a fresh 1 MiB
 * buffer per answer is memory outside the V8 heap that makes it mark and
 * sweep more often. At most SPARE_CHUNKS are kept.
 */
const spareChunks: Buffer[] = [];
const SPARE_CHUNKS = 4;

function takeChunk(): Buffer {
  return spareChunks.pop() ?? Buffer.allocUnsafeSlow(SEND_CHUNK);
}

function giveChunks(buffers: readonly Buffer[]): void {
  for (const buffer of buffers) if (spareChunks.length < SPARE_CHUNKS) spareChunks.push(buffer);
}

/** `<dir>/.<name>~<random>.tmp`: beside the target, so `rename` never crosses file systems. */
function tempPathFor(target: string): string {
  const name = basename(target).slice(0, TEMP_NAME_KEEP);
  return join(dirname(target), `.${name}~${randomBytes(8).toString("hex")}.tmp`);
}

function isKeyComponent(name: string): boolean {
  try {
    assertSafePathComponent(name);
    return true;
  } catch {
    return false;
  }
}

async function isFileAt(path: string): Promise<boolean> {
  return stat(path).then(
    (info) => info.isFile(),
    () => false,
  );
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | null)?.code;
}

/** ENOENT (no such entry) and ENOTDIR (a path component is a file) both mean "no blob". */
function isMissing(error: unknown): boolean {
  const code = errorCode(error);
  return code === "ENOENT" || code === "ENOTDIR";
}

/** The file-system error as BlobNotFoundError when it means "missing", else unchanged. */
function translate(error: unknown, key: string): unknown {
  return isMissing(error) ? new BlobNotFoundError(key) : error;
}
