/** The one check every blob store applies to a requested byte range. */
import type { ByteRange } from "./blob-store.js";

/** Throws RangeError unless `range` is whole numbers with 0 ≤ start ≤ end. */
export function assertByteRange(range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`invalid byte range ${start}-${end}`);
  }
}
