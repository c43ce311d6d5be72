/**
 * The files of one video thumbnail: a private staging folder per run, the
 * video copied into it from the blob store (filesystem or S3 alike), and
 * the frame the command wrote there, read back only after its PNG header
 * passed the pixel limit.
 *
 * Design notes:
 * - The folder is made by mkdtemp (mode 0700, a fresh unguessable name) and
 *   the video written with O_EXCL and mode 0600, so only mxcd's user can
 *   read either; the command's output lands in the same folder. The caller
 *   removes the folder however the run ends (VideoThumbnailer).
 * - The copy stops at `max_source_size` bytes and when the deadline's
 *   signal fires; nothing of a refused video is read further.
 * - The frame's width × height is read from its IHDR chunk (bytes 16-23)
 *   and checked against `max_image_pixels` before the rest of the file is
 *   read, let alone decoded by sharp.
 * - A process killed mid-run leaves its folder: `sweepStagingFolders` at
 *   start-up removes this user's folders older than any live run can be.
 */
import { createWriteStream } from "node:fs";
import { lstat, mkdtemp, open, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { VideoThumbnailError } from "./video-thumbnail-error.js";

/** Name prefix of the staging folders (what the start-up sweep looks for). */
const STAGING_PREFIX = "mxcd-video-";

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Signature, IHDR length and type, width, height. */
const PNG_HEADER_BYTES = 24;

/** A new private (0700) staging folder under `root`. */
export function makeStagingFolder(root: string): Promise<string> {
  return mkdtemp(join(root, STAGING_PREFIX));
}

/**
 * Copies `source` to `file` (created, mode 0600), at most `maxBytes` bytes.
 * @throws VideoThumbnailError `source_too_large` past `maxBytes`; the
 *   signal's reason when it aborts.
 */
export async function stageSource(
  source: Readable,
  file: string,
  maxBytes: number,
  signal: AbortSignal,
): Promise<void> {
  let seen = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > maxBytes) {
        done(new VideoThumbnailError("source_too_large", `the video is over ${maxBytes} bytes`));
      } else done(null, chunk);
    },
  });
  const sink = createWriteStream(file, { flags: "wx", mode: 0o600 });
  await pipeline(source, cap, sink, { signal });
}

/** Width and height from a PNG's first 24 bytes; undefined when they are not a PNG header. */
export function pngDimensions(header: Uint8Array): { width: number; height: number } | undefined {
  const bytes = Buffer.from(header.buffer, header.byteOffset, header.byteLength);
  if (bytes.length < PNG_HEADER_BYTES || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) {
    return undefined;
  }
  if (bytes.readUInt32BE(8) !== 13 || bytes.toString("latin1", 12, 16) !== "IHDR") return undefined;
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  return width > 0 && height > 0 ? { width, height } : undefined;
}

/**
 * The PNG frame at `file`, read into memory only after its header says it
 * has at most `maxPixels` pixels, and only when the file is no larger than
 * such a frame can reasonably be (8 bytes a pixel: 16-bit RGBA, plus 1 MiB).
 * @throws VideoThumbnailError `failed` (missing, not a PNG) or `too_large`.
 */
export async function readCheckedFrame(file: string, maxPixels: number): Promise<Buffer> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, "r");
  } catch (error) {
    throw new VideoThumbnailError("failed", "the command wrote no frame", { cause: error });
  }
  try {
    const header = Buffer.alloc(PNG_HEADER_BYTES);
    const { bytesRead } = await handle.read(header, 0, PNG_HEADER_BYTES, 0);
    const size = pngDimensions(header.subarray(0, bytesRead));
    if (!size) throw new VideoThumbnailError("failed", "the command's output is not a PNG");
    if (size.width * size.height > maxPixels) {
      const message = `the frame of ${size.width}x${size.height} pixels is over the limit of ${maxPixels}`;
      throw new VideoThumbnailError("too_large", message);
    }
    const { size: length } = await handle.stat();
    if (length > maxPixels * 8 + 1024 * 1024) {
      throw new VideoThumbnailError("too_large", `the frame file of ${length} bytes is too large`);
    }
    return await readFile(handle);
  } finally {
    await handle.close();
  }
}

/**
 * Removes `root`'s staging folders that belong to this user and were last
 * modified more than `olderThanMs` ago (left by a killed process); resolves
 * to how many. Anything else in `root` is left alone.
 */
export async function sweepStagingFolders(root: string, olderThanMs: number): Promise<number> {
  const uid = process.getuid?.();
  const cutoff = Date.now() - olderThanMs;
  let removed = 0;
  for (const name of await readdir(root)) {
    if (!name.startsWith(STAGING_PREFIX)) continue;
    const path = join(root, name);
    const stat = await lstat(path).catch(() => undefined);
    if (!stat?.isDirectory() || (uid !== undefined && stat.uid !== uid)) continue;
    if (stat.mtimeMs >= cutoff) continue;
    await rm(path, { recursive: true, force: true });
    removed += 1;
  }
  return removed;
}
