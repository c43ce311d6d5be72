/**
 * FALLBACK similarity search for near-duplicate quarantine: a plain scan of
 * every stored PDQ hash, in keyset pages of `PAGE` rows (bounded memory),
 * comparing each in TypeScript. O(stored hashes) per query: correct across
 * processes (it reads the database), but meant to be replaced by the
 * indexed search service (src/media/pdq-search-service.ts) once merged.
 */
import type { Db } from "../db/database.js";
import { hammingDistance } from "../hashing/pdq.js";
import type { MediaKey } from "../repositories/quarantine-propagation-repository.js";
import type { SimilarFinder } from "./near-duplicate-quarantine.js";

const PAGE = 1000;

/** A SimilarFinder over `db` by full scan (see the note above). */
export function scanSimilarFinder(db: () => Db): SimilarFinder {
  return async (pdq, maxDistance) => {
    const found: MediaKey[] = [];
    let after = "";
    for (;;) {
      const rows = await db()
        .selectFrom("local_media_repository")
        .select(["media_id", "pdq"])
        .where("pdq", "is not", null)
        .where("media_id", ">", after)
        .orderBy("media_id")
        .limit(PAGE)
        .execute();
      for (const r of rows) {
        if (hammingDistance(r.pdq!, pdq) <= maxDistance)
          found.push({ origin: null, mediaId: r.media_id });
      }
      if (rows.length < PAGE) break;
      after = rows[rows.length - 1]!.media_id;
    }
    let from = { origin: "", mediaId: "" };
    for (;;) {
      const rows = await db()
        .selectFrom("remote_media_cache")
        .select(["media_origin", "media_id", "pdq"])
        .where("pdq", "is not", null)
        .where((eb) =>
          eb(eb.refTuple("media_origin", "media_id"), ">", eb.tuple(from.origin, from.mediaId)),
        )
        .orderBy("media_origin")
        .orderBy("media_id")
        .limit(PAGE)
        .execute();
      for (const r of rows) {
        if (hammingDistance(r.pdq!, pdq) <= maxDistance) {
          found.push({ origin: r.media_origin, mediaId: r.media_id });
        }
      }
      if (rows.length < PAGE) break;
      const last = rows[rows.length - 1]!;
      from = { origin: last.media_origin, mediaId: last.media_id };
    }
    return found;
  };
}
