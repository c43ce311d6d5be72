/**
 * The hashes mxcd stores for every media item beside its SHA-256
 * (docs/trust-and-safety.md "Stored hashes"): MD5 of the bytes, and the PDQ
 * perceptual hash of images with its quality. Shared by the repositories
 * (which write the admission state) and the hashing service and job.
 */

/** The stored hashes of one media item, null until computed. */
export interface MediaHashes {
  /** Lowercase hex MD5 of the bytes. */
  readonly md5: string | null;
  /** PDQ hash, 64 lowercase hex; null when not computed or when there is none. */
  readonly pdq: string | null;
  /** PDQ quality 0-100; null when not computed or the image could not be decoded. */
  readonly pdqQuality: number | null;
}

/** What a PDQ hasher returns (src/hashing/pdq-image.ts). */
export type PdqOutcome =
  | { readonly hash: string; readonly quality: number }
  | { readonly hash: null; readonly quality: number | null; readonly reason: string };

/** `pdq_status` values; a null status means "not computed yet". */
export type PdqStatus = "hashed" | "none";

/** The `pdq_*` columns as written. */
export interface PdqColumns {
  readonly pdq: string | null;
  readonly pdq_quality: number | null;
  readonly pdq_status: PdqStatus | null;
  readonly pdq_reason: string | null;
}

/** Reason stored for media the PDQ hasher never looks at. */
export const NOT_AN_IMAGE = "not an image";

/**
 * True for content the hasher should see: the types the thumbnailer takes
 * (`image/*`; the bytes are sniffed again before decoding).
 */
export function isPdqCandidate(mediaType: string | null): boolean {
  return mediaType?.toLowerCase().startsWith("image/") ?? false;
}

/**
 * The `pdq_*` columns of newly admitted content: "not computed yet" for an
 * image (the hashing queue or the backfill computes it), "none, not an
 * image" for anything else, so non-images never enter the backfill's list.
 */
export function admissionPdqColumns(mediaType: string | null): PdqColumns {
  return isPdqCandidate(mediaType)
    ? { pdq: null, pdq_quality: null, pdq_status: null, pdq_reason: null }
    : { pdq: null, pdq_quality: null, pdq_status: "none", pdq_reason: NOT_AN_IMAGE };
}

/** The `pdq_*` columns recording a hasher's outcome (a quality is kept only when an integer). */
export function outcomePdqColumns(outcome: PdqOutcome): PdqColumns {
  const quality =
    outcome.quality !== null && Number.isInteger(outcome.quality) ? outcome.quality : null;
  if (outcome.hash !== null && /^[0-9a-f]{64}$/.test(outcome.hash)) {
    return { pdq: outcome.hash, pdq_quality: quality, pdq_status: "hashed", pdq_reason: null };
  }
  const reason = outcome.hash === null ? outcome.reason : "hasher returned a malformed hash";
  return { pdq: null, pdq_quality: quality, pdq_status: "none", pdq_reason: reason.slice(0, 200) };
}
