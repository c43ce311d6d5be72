/**
 * Builds the URL-preview service from the config (docs/previews.md), or
 * nothing when `url_preview_enabled` is false. Checks what the config
 * schema cannot (it may not import this layer): `url_preview_url_blacklist`
 * entries and `oembed.additional_providers` files, each error naming the
 * entry or file, so a bad one stops start-up.
 */
import { readFileSync } from "node:fs";
import type { Config } from "../config/config-schema.js";
import type { Database } from "../db/database.js";
import { type UrlCacheMediaDeletion, UrlPreviewExpiryJob } from "../jobs/url-preview-expiry-job.js";
import type { Logger } from "../logging/logger.js";
import type { ContentGate } from "../media/upload-service.js";
import type { Dns } from "../net/dns.js";
import { addressPolicy } from "../net/ip-ranges.js";
import { OutboundHttp } from "../net/outbound-http.js";
import type { MediaRepository } from "../repositories/media-repository.js";
import { UrlPreviewRepository } from "../repositories/url-preview-repository.js";
import type { BlobStore } from "../storage/blob-store.js";
import type { Semaphore } from "../util/semaphore.js";
import { OEmbedProviders } from "./oembed.js";
import { PreviewFetcher } from "./preview-fetcher.js";
import { UrlBlacklist, urlPreviewUrlBlacklistSchema } from "./url-blacklist.js";
import { type PreviewFlight, UrlPreviewService } from "./url-preview-service.js";

/** A config problem found while building previews. */
export class UrlPreviewConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UrlPreviewConfigError";
  }
}

export interface UrlPreviewDeps {
  readonly database: Database;
  /**
   * Turns for fresh fetches (`url_preview_max_concurrent_fetches` permits,
   * `url_preview_fetch_queue_size` waiters); built by the composition root,
   * which also reports its waiters.
   */
  readonly fetchSlots: Semaphore;
  readonly media: MediaRepository;
  readonly store: BlobStore;
  readonly gate: ContentGate;
  readonly logger: Logger;
  /** Called for each stored preview image (thumbnail pre-generation). */
  readonly onImage?: (mediaId: string, mediaType: string, length: number) => void;
  /** Single flight across processes. */
  readonly flight: PreviewFlight;
  /** Address resolution (tests fake DNS); default the system resolver. */
  readonly dns?: Pick<Dns, "lookup">;
  /** Deletes expired url-cache media (MediaDeletionService), for the expiry job. */
  readonly deletion: UrlCacheMediaDeletion;
  /** The clock of the cache and the expiry job (tests move it); default Date.now. */
  readonly now?: () => number;
}

/** What previews consist of: the service, its expiry job, and what closes its connections. */
export interface UrlPreviews {
  readonly service: UrlPreviewService;
  /** The recurring url-preview-expiry job, for the background job runner. */
  readonly expiry: UrlPreviewExpiryJob;
  close(): void;
}

/** Previews built from the config; undefined when previews are off. */
export function createUrlPreviews(config: Config, deps: UrlPreviewDeps): UrlPreviews | undefined {
  if (!config.url_preview_enabled) return undefined;
  const parsed = urlPreviewUrlBlacklistSchema.safeParse(config.url_preview_url_blacklist);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UrlPreviewConfigError(
      `url_preview_url_blacklist.${issue.path.join(".")}: ${issue.message}`,
    );
  }
  const providers = OEmbedProviders.create({
    disableDefaultProviders: config.oembed.disable_default_providers,
    additional: config.oembed.additional_providers.map((path) => ({
      source: path,
      contents: readProvidersFile(path),
    })),
  });
  // The one outbound client, with the preview address policy (the schema
  // made url_preview_ip_range_blacklist required when previews are on).
  const outbound = new OutboundHttp({
    policy: addressPolicy(
      config.url_preview_ip_range_blacklist ?? [],
      config.url_preview_ip_range_whitelist,
    ),
    defaultTimeoutMs: config.url_preview_timeout,
    ...(deps.dns !== undefined && { dns: deps.dns }),
  });
  const cache = new UrlPreviewRepository(deps.database);
  const now = deps.now ?? Date.now;
  const fetcher = new PreviewFetcher(
    outbound,
    {
      maxBytes: config.max_spider_size,
      timeoutMs: config.url_preview_timeout,
      userAgent: config.url_preview_user_agent,
      acceptLanguage: config.url_preview_accept_language.join(", "),
      urlBlacklist: new UrlBlacklist(parsed.data),
    },
    deps.fetchSlots,
  );
  const service = new UrlPreviewService(
    {
      serverName: config.server_name,
      language: config.url_preview_accept_language.join(", "),
      timeoutMs: config.url_preview_timeout,
      authenticatedMedia: config.enable_authenticated_media,
      maxImageBytes: config.max_spider_size,
    },
    fetcher,
    providers,
    cache,
    deps.media,
    deps.store,
    deps.gate,
    deps.logger,
    deps.flight,
    deps.onImage,
    now,
  );
  const expiry = new UrlPreviewExpiryJob({
    cache,
    deletion: deps.deletion,
    logger: deps.logger,
    now,
    intervalMs: config.url_preview_expiry_interval,
  });
  return { service, expiry, close: () => outbound.close() };
}

function readProvidersFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new UrlPreviewConfigError(
      `oembed.additional_providers: cannot read ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}
