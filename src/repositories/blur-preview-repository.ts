/**
 * The rows of the `blur-preview-backfill` job (src/jobs/blur-preview-backfill-job.ts):
 * local media without a blur preview (migration 0018), newest first, and
 * the writes that record one — or the sentinel NO_BLUR_PREVIEW when none
 * can be made, so the row is not tried again.
 *
 * The walk is a keyset page over `local_media_created_id` (created_ts,
 * media_id) read backwards, the index the console's listing uses: no new
 * index (and no migration) for a walk that runs once per pass.
 */
import type { Database, Tx } from "../db/database.js";
import { keysetPage } from "./keyset.js";

/** Marks an id whose upload is still pending (media-repository.ts). */
const CLAIMED = -1;

/** A position in the walk: the last row seen, newest first. */
export interface BlurPreviewCursor {
  readonly createdTs: number;
  readonly mediaId: string;
}

/** A row without a preview. */
export interface BlurPreviewTodo {
  readonly mediaId: string;
  readonly createdTs: number;
  readonly mediaType: string;
  readonly mediaLength: number;
}

/** A stored thumbnail a preview can be made from. */
export interface PreviewSourceThumbnail {
  readonly width: number;
  readonly height: number;
  readonly contentType: string;
  readonly method: string;
}

export class BlurPreviewRepository {
  constructor(private readonly database: Database) {}

  /**
   * Up to `limit` local images and videos older than `before` (ms) with no
   * preview and no sentinel, after `after` (newest first). Quarantined
   * media, pending uploads and URL-preview media are not listed: no picture
   * is ever made of quarantined media here.
   */
  async todo(
    after: BlurPreviewCursor | null,
    limit: number,
    before: number,
  ): Promise<BlurPreviewTodo[]> {
    const candidates = this.#withoutPreview(before).select([
      "media_id",
      "created_ts",
      "media_type",
      "media_length",
    ]);
    const rows = await keysetPage(
      candidates,
      ["created_ts", "media_id"],
      after && [after.createdTs, after.mediaId],
      "desc",
    )
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      mediaId: r.media_id,
      createdTs: Number(r.created_ts),
      mediaType: r.media_type ?? "",
      mediaLength: Number(r.media_length ?? 0),
    }));
  }

  /** Rows the walk would still list from the start (for the progress bar). */
  async countTodo(before: number): Promise<number> {
    const row = await this.#withoutPreview(before)
      .select((eb) => eb.fn.countAll<string | number>().as("n"))
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /** The rows `todo` walks: see there. */
  #withoutPreview(before: number) {
    return this.database.db
      .selectFrom("local_media_repository")
      .where("created_ts", "<", before)
      .where("blur_preview", "is", null)
      .where("quarantined_by", "is", null)
      .where("url_cache", "is", null)
      .where("media_length", "is not", null)
      .where("media_length", ">", CLAIMED)
      .where((eb) => {
        // Types are compared lowercased, as the upload path does (LIKE is
        // case-sensitive on PostgreSQL).
        const type = eb.fn<string>("lower", ["media_type"]);
        return eb.or([eb(type, "like", "image/%"), eb(type, "like", "video/%")]);
      });
  }

  /**
   * The media's stored `scale` thumbnails (the whole picture, not a crop),
   * smallest first: a video's frame as the upload path rendered it, or an
   * image already decoded and shrunk once.
   */
  async scaleThumbnails(mediaId: string): Promise<PreviewSourceThumbnail[]> {
    const rows = await this.database.db
      .selectFrom("local_media_repository_thumbnails")
      .select(["thumbnail_width", "thumbnail_height", "thumbnail_type", "thumbnail_method"])
      .where("media_id", "=", mediaId)
      .where("thumbnail_method", "=", "scale")
      .orderBy("thumbnail_width")
      .orderBy("thumbnail_height")
      .orderBy("thumbnail_type")
      .execute();
    return rows.map((r) => ({
      width: r.thumbnail_width,
      height: r.thumbnail_height,
      contentType: r.thumbnail_type,
      method: r.thumbnail_method,
    }));
  }

  /**
   * Records `preview` (or NO_BLUR_PREVIEW) for `mediaId` in `tx`, only while
   * the row has none and is not quarantined: a preview made before a
   * quarantine that landed meanwhile is dropped, and one the upload path
   * recorded meanwhile is kept. False when nothing was written.
   */
  async record(tx: Tx, mediaId: string, preview: string): Promise<boolean> {
    const result = await tx
      .updateTable("local_media_repository")
      .set({ blur_preview: preview })
      .where("media_id", "=", mediaId)
      .where("blur_preview", "is", null)
      .where("quarantined_by", "is", null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}
