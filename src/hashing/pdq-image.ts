/**
 * TEMPORARY SHIM — replaced at merge by the real PDQ image hasher written on
 * the `pdq` branch (same path, same signature). It hashes nothing: every
 * call answers "no hash, not implemented". Nothing in the tests depends on
 * it; the hashing service takes its hasher as a dependency.
 */

/** Options of `hashImage`: decoding is refused above `maxImagePixels`. */
export interface HashImageOptions {
  readonly maxImagePixels: number;
}

/** PDQ hash (64 lowercase hex) and quality of an image, or why there is none. */
export async function hashImage(
  _input: Buffer | string,
  _options: HashImageOptions,
): Promise<
  { hash: string; quality: number } | { hash: null; quality: number | null; reason: string }
> {
  return { hash: null, quality: null, reason: "not implemented" };
}
