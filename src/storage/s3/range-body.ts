/**
 * Holding an S3 server to the byte range asked for. HTTP lets a server ignore
 * `Range` (200 with the whole object), and some S3 emulators answer a wider
 * range than asked (s3rver 3.7 treats `bytes=0-0` as "from 0 to the end").
 * `rangeBody` cuts such a body down to the requested bytes; a body that is
 * already exactly right (what AWS S3 sends) is returned untouched.
 */
import { Readable } from "node:stream";
import type { ByteRange } from "../blob-store.js";

/** `bytes 3-6/16` (or `bytes 3-6/*`), as in the Content-Range response header. */
const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/**
 * The bytes of `range` out of `body`, which holds the object from the start
 * of `contentRange` (from byte 0 when absent). Throws, destroying `body`, when
 * the body starts after the requested start (nothing could fix that).
 */
export function rangeBody(
  body: Readable,
  contentRange: string | undefined,
  range: ByteRange,
): Readable {
  const served = CONTENT_RANGE.exec(contentRange ?? "");
  const bodyStart = served ? Number(served[1]) : 0;
  const bodyEnd = served ? Number(served[2]) : Number.POSITIVE_INFINITY;
  if (bodyStart > range.start) {
    body.destroy();
    throw new Error(`S3 answered ${contentRange} for bytes ${range.start}-${range.end}`);
  }
  if (bodyStart === range.start && bodyEnd <= range.end) return body;
  const length = range.end - range.start + 1;
  return Readable.from(window(body, range.start - bodyStart, length), { objectMode: false });
}

/** Skips `skip` bytes of `body`, then yields at most `length`; stops reading after them. */
async function* window(body: Readable, skip: number, length: number): AsyncGenerator<Buffer> {
  let seen = 0;
  let remaining = length;
  // Returning from the loop destroys `body`, releasing its connection.
  for await (const chunk of body as AsyncIterable<Buffer>) {
    const from = Math.max(0, skip - seen);
    seen += chunk.length;
    if (from >= chunk.length) continue;
    const piece = chunk.subarray(from, from + remaining);
    remaining -= piece.length;
    yield piece;
    if (remaining === 0) return;
  }
}
