/**
 * Reading only the start of a response body: previews parse a bounded
 * prefix of a page, and stop reading the rest (the fetch can be aborted as
 * soon as the prefix is in).
 */

/** The bytes read and whether the source had (or may have had) more. */
export interface BodyPrefix {
  bytes: Uint8Array;
  truncated: boolean;
}

/**
 * Reads at most `maxBytes` from `source` and then stops iterating it (which
 * runs the source's `return()`, so a stream is released). Memory is bounded
 * by `maxBytes` plus one chunk.
 */
export async function readBodyPrefix(
  source: AsyncIterable<Uint8Array>,
  maxBytes: number,
): Promise<BodyPrefix> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let truncated = false;
  for await (const chunk of source) {
    const room = maxBytes - total;
    if (chunk.length >= room) {
      chunks.push(chunk.subarray(0, room));
      total += room;
      // Exactly full: more may follow, and a cut character at the end is not an error.
      truncated = true;
      break;
    }
    chunks.push(chunk);
    total += chunk.length;
  }
  return { bytes: concat(chunks, total), truncated };
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return bytes;
}
