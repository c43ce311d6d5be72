/**
 * mxcd's server-wide media listing (docs/admin-api.md "Server-wide media
 * listing"; Synapse has none, synapse#11986): local and cached remote media,
 * newest first, keyset-paged, with filters; the count and size a filter
 * selects; and where one media item is referenced.
 *
 * Local and remote media live in two tables. A page is the merge of two
 * index-ordered reads of `limit + 1` rows each (one per table), never a
 * UNION sorted as a whole: the order (created_ts, local first, origin,
 * media_id — all descending) lets each table be read down its own index
 * from the cursor, and the merge compares only timestamps and the side.
 */
import type {
  MediaListCursor,
  MediaListFilter,
  MediaListingRepository,
  MediaListSummary,
} from "../repositories/media-listing-repository.js";
import type {
  MediaReferenceRepository,
  MediaUsage,
} from "../repositories/media-reference-repository.js";
import type { MediaInfo } from "./media-admin-service.js";

export type {
  MediaListCursor,
  MediaListFilter,
  MediaListSummary,
} from "../repositories/media-listing-repository.js";
export type { MediaUsage } from "../repositories/media-reference-repository.js";

/**
 * A listed item and its blur preview (src/thumbnails/blur-preview.ts), null
 * when none was made (always for cached remote media).
 */
export type ListedMedia = MediaInfo & { readonly blurPreview: string | null };

/** One page: at most `limit` items and, when more may follow, the cursor to continue from. */
export interface MediaListPage {
  readonly media: ListedMedia[];
  readonly next?: MediaListCursor;
}

/** References of one media item; `truncated` when there were more than the bound. */
export interface MediaReferences {
  readonly references: MediaUsage[];
  readonly truncated: boolean;
}

/** At most this many references are reported for one media item. */
export const MAX_REFERENCES = 1000;

export class MediaListingService {
  constructor(
    private readonly deps: {
      readonly listing: Pick<
        MediaListingRepository,
        "sides" | "localPage" | "remotePage" | "summary"
      >;
      readonly references: Pick<MediaReferenceRepository, "usages">;
      /** Whether a media item is known (local, or a cached remote copy). */
      readonly mediaInfo: (origin: string, mediaId: string) => Promise<MediaInfo | undefined>;
    },
  ) {}

  /** One page of `filter`'s media after `after` (null: the newest first). */
  async list(
    filter: MediaListFilter,
    after: MediaListCursor | null,
    limit: number,
  ): Promise<MediaListPage> {
    const { listing } = this.deps;
    const sides = listing.sides(filter);
    const [local, remote] = await Promise.all([
      sides.local ? listing.localPage(filter, after, limit + 1) : [],
      sides.remote ? listing.remotePage(filter, after, limit + 1) : [],
    ]);
    const merged: ListedMedia[] = [];
    let [l, r] = [0, 0];
    while (merged.length <= limit && (l < local.length || r < remote.length)) {
      const a = local[l];
      const b = remote[r];
      // On equal timestamps local media comes first (see the module note).
      if (a !== undefined && (b === undefined || a.createdTs >= b.createdTs)) {
        merged.push({ local: true, media: a, blurPreview: a.blurPreview });
        l++;
      } else if (b !== undefined) {
        merged.push({ local: false, media: b, blurPreview: null });
        r++;
      }
    }
    const media = merged.slice(0, limit);
    const last = media.at(-1);
    if (merged.length <= limit || last === undefined) return { media };
    return {
      media,
      next: {
        ts: last.media.createdTs,
        origin: last.local ? null : last.media.origin,
        mediaId: last.media.mediaId,
      },
    };
  }

  /** How many media `filter` selects and their bytes. */
  summary(filter: MediaListFilter): Promise<MediaListSummary> {
    return this.deps.listing.summary(filter);
  }

  /**
   * Where a media item is referenced (events newest first, then profiles),
   * at most MAX_REFERENCES; undefined when the media is unknown.
   */
  async references(origin: string, mediaId: string): Promise<MediaReferences | undefined> {
    if ((await this.deps.mediaInfo(origin, mediaId)) === undefined) return undefined;
    const found = await this.deps.references.usages(origin, mediaId, MAX_REFERENCES + 1);
    return {
      references: found.slice(0, MAX_REFERENCES),
      truncated: found.length > MAX_REFERENCES,
    };
  }
}
