/**
 * The read side of Synapse's media admin API (synapse-media-admin.md A1, A3,
 * A15): one media item's info, a page of a user's media, per-user usage.
 * Routes call this instead of the repositories, so the HTTP layer never
 * reaches the database (docs/architecture.md, the layer rules).
 *
 * The query and row types are the repositories' own; they are re-exported
 * here as this service's vocabulary.
 */
import type {
  MediaAdminRepository,
  UserMediaPage,
} from "../repositories/media-admin-repository.js";
import type { LocalMedia, MediaRepository, RemoteMedia } from "../repositories/media-repository.js";
import type {
  MediaStatisticsQuery,
  MediaStatisticsRepository,
  UserMediaUsage,
} from "../repositories/media-statistics-repository.js";
import type { UserRepository } from "../repositories/user-repository.js";

export {
  USER_MEDIA_ORDER_BY,
  type UserMediaPage,
} from "../repositories/media-admin-repository.js";
export type { LocalMedia, RemoteMedia } from "../repositories/media-repository.js";
export {
  MEDIA_STATISTICS_ORDER_BY,
  type MediaStatisticsQuery,
} from "../repositories/media-statistics-repository.js";

/** A media item as the admin media-info route reports it: local or a cached remote copy. */
export type MediaInfo =
  | { readonly local: true; readonly media: LocalMedia }
  | { readonly local: false; readonly media: RemoteMedia };

export class MediaAdminService {
  constructor(
    private readonly deps: {
      readonly serverName: string;
      readonly users: Pick<UserRepository, "get">;
      readonly media: Pick<MediaRepository, "getLocal" | "getRemote">;
      readonly admin: Pick<MediaAdminRepository, "countUserMedia" | "listUserMedia">;
      readonly statistics: Pick<MediaStatisticsRepository, "usage">;
    },
  ) {}

  /** Whether a (local) user account exists; the admin routes answer 404 otherwise. */
  async userExists(userId: string): Promise<boolean> {
    return (await this.deps.users.get(userId)) !== undefined;
  }

  /** One page of a user's media and how many they have in all. */
  async userMedia(page: UserMediaPage): Promise<{ media: LocalMedia[]; total: number }> {
    const total = await this.deps.admin.countUserMedia(page.userId);
    const media = await this.deps.admin.listUserMedia(page);
    return { media, total };
  }

  /** Local media, or the cached copy of remote media; undefined when unknown. */
  async mediaInfo(origin: string, mediaId: string): Promise<MediaInfo | undefined> {
    if (origin === this.deps.serverName) {
      const media = await this.deps.media.getLocal(mediaId);
      return media && { local: true, media };
    }
    const media = await this.deps.media.getRemote(origin, mediaId);
    return media && { local: false, media };
  }

  /** One page of per-user media usage (A15) and how many users match. */
  usage(query: MediaStatisticsQuery): Promise<{ users: UserMediaUsage[]; total: number }> {
    return this.deps.statistics.usage(query);
  }
}
