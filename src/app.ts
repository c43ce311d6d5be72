/**
 * The composition root: builds every part of mxcd from the config, wires
 * them together and returns `{ start, stop }`. Nothing else constructs
 * backends or services; there are no module-level singletons.
 */
import type { FastifyInstance } from "fastify";
import { AccountService } from "./accounts/account-service.js";
import { LoginRateLimits } from "./accounts/login-rate-limits.js";
import { PasswordHasher } from "./accounts/password-hash.js";
import { PasswordHashPool } from "./accounts/password-hash-pool.js";
import { SharedSecretRegistration } from "./accounts/shared-secret-registration.js";
import { UserAdminService } from "./accounts/user-admin-service.js";
import { registerCacheMetrics } from "./cache/cache-metrics.js";
import { MediaChanges } from "./cache/media-changes.js";
import { MediaMetadataCache } from "./cache/media-metadata-cache.js";
import { TokenCache } from "./cache/token-cache.js";
import { TokenChanges } from "./cache/token-changes.js";
import { type Config, DEFAULT_ACCESS_TOKEN_CACHE } from "./config/config-schema.js";
import { createAdvisoryLocks } from "./db/advisory-locks.js";
import { createDatabase, type Database } from "./db/database.js";
import { InProcessNotificationBus } from "./db/in-process-notification-bus.js";
import { runMigrations } from "./db/migrate.js";
import { createNotificationBus, type NotificationBus } from "./db/notification-bus.js";
import { createFederation } from "./federation/create-federation.js";
import type { FederationAuth } from "./federation/federation-auth.js";
import type { FederationClient } from "./federation/federation-client.js";
import { FederationMediaFetcher } from "./federation/federation-media-fetcher.js";
import type { KeyRing } from "./federation/key-ring.js";
import type { RequestSigner } from "./federation/x-matrix.js";
import { createAppServiceReceiver } from "./homeserver/app-service-intake.js";
import { createRoomHistorySource } from "./homeserver/room-history-backfill.js";
import { RoomHistoryStatusService } from "./homeserver/room-history-status-service.js";
import { RoomMediaSource } from "./homeserver/room-media-source.js";
import { createTenant, type Tenant } from "./homeserver/tenant.js";
import { registerAccountMetrics } from "./http/account-metrics.js";
import { gateAttachedRoutes } from "./http/attached-routes.js";
import { Auth, type Authenticator, homeserverAuthenticator } from "./http/auth.js";
import { closeWithGrace } from "./http/close-with-grace.js";
import { defaultConsoleDir, loadConsoleAssets } from "./http/console-assets.js";
import { createFastPath, type FastPathSlot } from "./http/fast-path.js";
import {
  createMetricsRegistry,
  registerAccessTokenCacheMetrics,
  registerMediaByteCacheMetrics,
  registerPdqSearchMetrics,
  registerQuarantinePlaceholderMetrics,
} from "./http/http-metrics.js";
import { createHttpServer } from "./http/http-server.js";
import { addMediaNosniff, DownloadHeaderSets } from "./http/media-response.js";
import { createMetricsServer } from "./http/metrics-server.js";
import { registerPreviewMetrics } from "./http/preview-metrics.js";
import { registerRateLimitMetrics } from "./http/rate-limit-metrics.js";
import { registerRemoteFetchMetrics } from "./http/remote-fetch-metrics.js";
import { registerAppServiceRoutes } from "./http/routes/app-service-routes.js";
import { registerBackgroundJobsRoutes } from "./http/routes/background-jobs-routes.js";
import { registerClientVersionsRoutes } from "./http/routes/client-versions-routes.js";
import { registerConsoleRoutes } from "./http/routes/console-routes.js";
import { registerFederationMediaRoutes } from "./http/routes/federation-media-routes.js";
import { registerHealthRoutes } from "./http/routes/health-routes.js";
import { registerKeyServerRoutes } from "./http/routes/key-server-routes.js";
import { registerLoginRoutes } from "./http/routes/login-routes.js";
import { registerMediaAdminRoutes } from "./http/routes/media-admin-routes.js";
import { registerMediaConfigRoutes } from "./http/routes/media-config-routes.js";
import { registerMediaDownloadRoutes } from "./http/routes/media-download-routes.js";
import { registerMediaPreviewRoutes } from "./http/routes/media-preview-routes.js";
import { registerMediaQuarantineRoutes } from "./http/routes/media-quarantine-routes.js";
import { registerMediaThumbnailRoutes } from "./http/routes/media-thumbnail-routes.js";
import { registerMediaUploadRoutes } from "./http/routes/media-upload-routes.js";
import { registerMxcdMediaListRoutes } from "./http/routes/mxcd-media-list-routes.js";
import { registerMxcdMediaLookupRoutes } from "./http/routes/mxcd-media-lookup-routes.js";
import { registerUploadUsageRoutes } from "./http/routes/mxcd-upload-usage-routes.js";
import { registerProfileRoutes } from "./http/routes/profile-routes.js";
import { registerQuarantineFeedRoutes } from "./http/routes/quarantine-feed-routes.js";
import { registerRegistrationAdminRoutes } from "./http/routes/registration-admin-routes.js";
import { registerRoomAdminRoutes } from "./http/routes/room-admin-routes.js";
import { registerRoomEventRoutes } from "./http/routes/room-event-routes.js";
import { registerRoomRoutes } from "./http/routes/room-routes.js";
import { registerUserAdminRoutes } from "./http/routes/user-admin-routes.js";
import { registerWaiterMetrics } from "./http/waiter-metrics.js";
import { registerBlurPreviewBackfillMetrics } from "./jobs/blur-preview-backfill-metrics.js";
import { createBackgroundJobs } from "./jobs/create-background-jobs.js";
import { createBlurPreviewBackfill } from "./jobs/create-blur-preview-backfill.js";
import { createMediaRetention } from "./jobs/create-media-retention.js";
import { createNearDuplicateCheck } from "./jobs/create-near-duplicate-check.js";
import { JobRunner } from "./jobs/job-runner.js";
import { registerMediaRetentionMetrics } from "./jobs/media-retention-metrics.js";
import { registerLogMetrics } from "./logging/log-metrics.js";
import type { Logger } from "./logging/logger.js";
import { AccessTimes } from "./media/access-times.js";
import { createMediaHashing } from "./media/create-media-hashing.js";
import { createUploadQuota } from "./media/create-upload-quota.js";
import { DownloadService } from "./media/download-service.js";
import { registerMd5WorkerMetrics } from "./media/md5-worker-metrics.js";
import { Md5WorkerPool } from "./media/md5-worker-pool.js";
import { MediaAdminService } from "./media/media-admin-service.js";
import { MediaCreateRateLimit } from "./media/media-create-rate-limit.js";
import { MediaDeletionService } from "./media/media-deletion-service.js";
import { registerMediaHashMetrics } from "./media/media-hash-metrics.js";
import type { PdqHasher } from "./media/media-hashing-service.js";
import { MediaListingService } from "./media/media-listing-service.js";
import { NearDuplicateQuarantine, searchFinder } from "./media/near-duplicate-quarantine.js";
import { PdqSearchService, warmsUpAtStart } from "./media/pdq-search-service.js";
import { PendingUploads } from "./media/pending-uploads.js";
import { FeedSignal, QuarantineFeedService } from "./media/quarantine-feed-service.js";
import { QuarantinePlaceholders } from "./media/quarantine-placeholder.js";
import { QuarantineService } from "./media/quarantine-service.js";
import { RemoteDownloadLimiter } from "./media/remote-download-limiter.js";
import { RemoteMediaService } from "./media/remote-media-service.js";
import { ThumbnailService } from "./media/thumbnail-service.js";
import { UploadService } from "./media/upload-service.js";
import type { Dns } from "./net/dns.js";
import { addressPolicy } from "./net/ip-ranges.js";
import { OutboundHttp } from "./net/outbound-http.js";
import type { UrlPreviewsFactory } from "./previews/load-url-previews.js";
import { AccessTokenRepository } from "./repositories/access-token-repository.js";
import { MediaAdminRepository } from "./repositories/media-admin-repository.js";
import { MediaListingRepository } from "./repositories/media-listing-repository.js";
import { MediaRepository } from "./repositories/media-repository.js";
import { MediaStatisticsRepository } from "./repositories/media-statistics-repository.js";
import { PdqHashLogRepository } from "./repositories/pdq-hash-log-repository.js";
import { QuarantineFeedRepository } from "./repositories/quarantine-feed-repository.js";
import { QuarantinePropagationRepository } from "./repositories/quarantine-propagation-repository.js";
import {
  QuarantineCandidates,
  QuarantineRepository,
} from "./repositories/quarantine-repository.js";
import { RateLimitBucketRepository } from "./repositories/rate-limit-bucket-repository.js";
import { RegistrationNonceRepository } from "./repositories/registration-nonce-repository.js";
import { RoomHistoryBackfillRepository } from "./repositories/room-history-backfill-repository.js";
import { UserRepository } from "./repositories/user-repository.js";
import { createRoomServices } from "./rooms/room-services.js";
import type { BlobStore } from "./storage/blob-store.js";
import { CachingBlobStore } from "./storage/caching-blob-store.js";
import { createBlobStore } from "./storage/create-blob-store.js";
import { MediaByteCache } from "./storage/media-byte-cache.js";
import { localContentKey, remoteContentKey, urlCacheKey } from "./storage/media-paths.js";
import { registerThumbnailMetrics } from "./thumbnails/thumbnail-metrics.js";
import { ThumbnailStats } from "./thumbnails/thumbnail-stats.js";
import { Thumbnailer } from "./thumbnails/thumbnailer.js";
import {
  registerVideoThumbnailMetrics,
  VideoThumbnailStats,
} from "./thumbnails/video-thumbnail-metrics.js";
import { createVideoThumbnailer } from "./thumbnails/video-thumbnailer.js";
import { CrossProcessFlight } from "./util/cross-process-flight.js";
import { RateLimitRefusals } from "./util/rate-limit-refusals.js";
import { Semaphore } from "./util/semaphore.js";

/** Most bytes buffered for a slow first client of a remote fetch (docs/federation.md). */
const REMOTE_TEE_BUFFER_BYTES = 1024 * 1024;

/** A store temp file untouched this long (at least) is swept at start-up. */
const TEMP_SWEEP_MIN_AGE_MS = 10 * 60_000;

export interface App {
  readonly config: Config;
  readonly database: Database;
  readonly store: BlobStore;
  readonly http: FastifyInstance;
  readonly accounts: AccountService;
  /** Background jobs (docs/jobs.md); register extra jobs before start(). */
  readonly jobs: JobRunner;
  /** Whether the reference index holds a room's whole history (attached mode; docs/attached.md). */
  readonly roomHistory: RoomHistoryStatusService;
  /** Signs outbound federation requests (X-Matrix); usable once start() has loaded the key. */
  readonly signer: RequestSigner;
  /** Checks the X-Matrix signature of inbound federation requests. */
  readonly federationAuth: FederationAuth;
  /** Other servers' verify keys (used by federationAuth). */
  readonly keyRing: KeyRing;
  /** Invalidation of the media caches, in this process and the others (cache/media-changes.ts). */
  readonly mediaChanges: MediaChanges;
  /** Coalesced `last_access_ts` writes; `flush()` writes them now (tests, retention). */
  readonly accessTimes: Pick<AccessTimes, "flush">;
  /** The one outbound HTTP client (address policy, size caps, timeouts). */
  readonly outbound: OutboundHttp;
  /** Signed requests to other homeservers, found by spec §4.5 discovery. */
  readonly federation: FederationClient;
  /**
   * Resolves when the PDQ index's background build (`pdq_index.warm_up`)
   * is over, at once when start() began none.
   */
  pdqWarmUp(): Promise<void>;
  /** Migrates the database and starts listening; resolves to the base URL. Idempotent. */
  start(): Promise<string>;
  /** Stops accepting requests, drains in-flight ones (up to the grace period), closes the database. Idempotent. */
  stop(): Promise<void>;
}

/** The services behind the HTTP layer; also used directly by the CLI. */
export interface Services {
  readonly database: Database;
  readonly users: UserRepository;
  readonly accounts: AccountService;
  /** Password hashing, on its own worker threads (docs/configuration.md). */
  readonly passwordPool: PasswordHashPool;
  readonly passwords: PasswordHasher;
  readonly loginLimits: LoginRateLimits;
  readonly registration: SharedSecretRegistration;
  readonly userAdmin: UserAdminService;
  readonly media: MediaRepository;
  /** Media and thumbnail rows through the metadata cache (docs/deployment.md "Caches"). */
  readonly mediaRows: MediaMetadataCache;
  readonly mediaChanges: MediaChanges;
  readonly tokenCache: TokenCache;
  /** Stored media by PDQ distance (src/media/pdq-search-service.ts); its index builds after start-up or on first use. */
  readonly pdqSearch: PdqSearchService;
}

/**
 * Builds the services over a database (no HTTP). `bus` carries cache
 * invalidations to the other processes: `mxcd serve` passes its bus; a
 * one-shot CLI command or a test may leave it out (an in-process bus: its
 * changes then reach running servers only through their caches' TTL).
 */
export function createServices(
  config: Config,
  database: Database,
  bus: NotificationBus = new InProcessNotificationBus(),
): Services {
  const cacheOptions = {
    ttlMs: config.media_cache.metadata_ttl,
    maxEntries: config.media_cache.metadata_max_entries,
  };
  const tokenChanges = new TokenChanges(bus);
  const mediaChanges = new MediaChanges(bus);
  const users = new UserRepository(database, tokenChanges);
  const tokens = new AccessTokenRepository(database, tokenChanges);
  const tokenCache = new TokenCache((hash) => tokens.findOwner(hash), tokenChanges, {
    ...cacheOptions,
    maxEntries: config.media_cache.token_max_entries,
  });
  const media = new MediaRepository(database, mediaChanges);
  const passwordPool = new PasswordHashPool({
    workers: config.password_hash_workers,
    maxQueue: config.password_hash_queue_size,
  });
  const passwords = new PasswordHasher(passwordPool);
  const { address, account, failed_attempts } = config.rc_login;
  const limit = (rc: { per_second: number; burst_count: number }) => ({
    perSecond: rc.per_second,
    burstCount: rc.burst_count,
  });
  const loginLimits = new LoginRateLimits({
    address: limit(address),
    account: limit(account),
    failed_attempts: limit(failed_attempts),
  });
  const accounts = new AccountService(
    config.server_name,
    users,
    tokens,
    passwords,
    loginLimits,
    tokenCache,
  );
  const registration = new SharedSecretRegistration(
    config.registration_shared_secret,
    new RegistrationNonceRepository(database),
    accounts,
  );
  const userAdmin = new UserAdminService(users, accounts);
  return {
    database,
    users,
    accounts,
    passwordPool,
    passwords,
    loginLimits,
    registration,
    userAdmin,
    media,
    mediaRows: new MediaMetadataCache(media, mediaChanges, cacheOptions),
    mediaChanges,
    tokenCache,
    pdqSearch: new PdqSearchService(new PdqHashLogRepository(database), config.server_name),
  };
}

/** Test seams of createApp; production passes none. */
export interface AppOptions {
  /**
   * The clock of the URL-preview cache, its expiry job and the media-retention
   * job (tests move it); default Date.now.
   */
  readonly now?: () => number;
  /** The clock of uploads' `created_ts` and of the upload quota windows (tests move it); default Date.now. */
  readonly uploadNow?: () => number;
  /** Address resolution of URL-preview fetches (tests fake DNS); default the system resolver. */
  readonly dns?: Pick<Dns, "lookup">;
  /** The PDQ image hasher (tests pass a fake); default src/hashing/pdq-image.ts. */
  readonly pdqHasher?: PdqHasher;
  /**
   * `createUrlPreviews`, required when `url_preview_enabled` (`loadUrlPreviews`
   * gives it): with previews off their modules are never loaded (memory at rest).
   */
  readonly urlPreviews?: UrlPreviewsFactory;
  /** The built moderation console's folder (tests); default `dist/console/` of this package. */
  readonly consoleDir?: string;
  /** Wraps the media store every service uses (tests watch it); default none. */
  readonly wrapStore?: (store: BlobStore) => BlobStore;
}

export function createApp(config: Config, logger: Logger, options: AppOptions = {}): App {
  const database = createDatabase(config.database);
  // The byte cache of the serving fast path; the store decorator drops a
  // key from it whenever the key is deleted or rewritten (docs/deployment.md).
  const byteCache = new MediaByteCache({
    maxBytes: config.media_cache.max_bytes,
    maxItemBytes: config.media_cache.max_item_bytes,
  });
  const cached = new CachingBlobStore(createBlobStore(config.media_store), byteCache);
  const store: BlobStore = options.wrapStore?.(cached) ?? cached;
  // Cross-process signals and single flight (docs/deployment.md): on
  // PostgreSQL LISTEN/NOTIFY and advisory locks, on SQLite in-process.
  const bus = createNotificationBus(config.database, logger);
  const services = createServices(config, database, bus);
  // Bytes of media that changed in any process (quarantined, deleted,
  // purged) leave the byte cache with its metadata (docs/deployment.md).
  services.mediaChanges.subscribe((change) => {
    if (change.kind === "all") byteCache.clear();
    else byteCache.evict(change);
  });
  const locks = createAdvisoryLocks(config.database, logger);
  const pollMs = config.notification_poll_interval;
  const thumbnailFlight = new CrossProcessFlight(locks, bus, "mxcd_thumbnail", pollMs);
  const remoteFlight = new CrossProcessFlight(locks, bus, "mxcd_remote_media", pollMs);
  const previewFlight = new CrossProcessFlight(locks, bus, "mxcd_url_preview", pollMs);
  const pending = new PendingUploads(bus, pollMs);
  // On the app's clock: media retention compares access times with it.
  const accessTimes = new AccessTimes(services.media, logger, undefined, options.now);
  const md5Workers = new Md5WorkerPool();
  // Refusals of the media rate limits (docs/media.md "Rate limits"), for /metrics.
  const rateRefusals = new RateLimitRefusals();
  const mediaSettings = {
    serverName: config.server_name,
    maxUploadSize: config.max_upload_size,
    authenticatedMedia: config.enable_authenticated_media,
    maxPendingUploads: config.max_pending_media_uploads,
    unusedExpirationMs: config.unused_expiration_time,
    // MD5 of large uploads and fetches on worker threads, started on first use.
    md5: md5Workers,
    refusals: rateRefusals,
  };
  const thumbnailStats = new ThumbnailStats();
  const thumbnailer = new Thumbnailer({
    maxImagePixels: config.max_image_pixels,
    concurrency: config.max_thumbnail_concurrency,
    maxFrames: config.max_thumbnail_frames,
    timeoutSeconds: config.thumbnail_timeout / 1000,
  });
  // Video thumbnails (docs/media.md "Video thumbnails"): null unless configured.
  const videoStats = new VideoThumbnailStats();
  const videoThumbnailer = createVideoThumbnailer(config, videoStats, logger);
  const thumbnails = new ThumbnailService(
    { dynamic: config.dynamic_thumbnails, sizes: config.thumbnail_sizes },
    thumbnailer,
    services.media,
    services.mediaRows,
    store,
    logger,
    thumbnailFlight,
    thumbnailStats,
    videoThumbnailer,
  );
  // MD5/PDQ (docs/trust-and-safety.md "Stored hashes"): PDQ after admission,
  // sharing the thumbnailer's decode slots; the backfill job for the rest.
  const hashing = createMediaHashing(config, {
    database,
    store,
    slots: thumbnailer,
    logger,
    ...(options.pdqHasher && { hasher: options.pdqHasher }),
    // Near-duplicate quarantine of newly hashed images (docs/trust-and-safety.md):
    // the check job reads the hash log; this only makes it run at once.
    onPdqRecorded: () => nearCheck.drain.drain(),
  });
  const feedSignal = new FeedSignal(bus);
  const quarantineRows = new QuarantineRepository();
  const near = new NearDuplicateQuarantine(
    config.quarantine_similar.pdq_max_distance,
    searchFinder(services.pdqSearch),
    new QuarantinePropagationRepository(),
    quarantineRows,
  );
  const quarantine = new QuarantineService(
    config.server_name,
    database,
    quarantineRows,
    new QuarantineCandidates(),
    services.mediaChanges,
    feedSignal,
    Date.now,
    near,
  );
  const nearCheck = createNearDuplicateCheck({ database, near, quarantine, logger });
  const feed = new QuarantineFeedService(
    new QuarantineFeedRepository(database),
    feedSignal,
    pollMs,
  );
  const uploadQuota = createUploadQuota(config, database, logger, options.uploadNow);
  const uploads = new UploadService(
    mediaSettings,
    services.media,
    store,
    pending,
    quarantine,
    locks,
    uploadQuota,
    (id, content) => {
      thumbnails.pregenerate(id, content.mediaType);
      hashing.service.enqueue({
        subject: { kind: "local", mediaId: id },
        key: localContentKey(id),
        mediaType: content.mediaType,
        mediaLength: content.mediaLength,
      });
    },
    options.uploadNow,
  );
  const downloads = new DownloadService(mediaSettings, services.mediaRows, pending);
  // Fresh URL-preview fetches: a bounded number at once, a bounded queue.
  const previewFetchSlots = new Semaphore(config.url_preview_max_concurrent_fetches, {
    maxWaiting: config.url_preview_fetch_queue_size,
  });
  const metrics = createMetricsRegistry();
  registerWaiterMetrics(metrics, {
    async_upload: pending,
    feed,
    remote_fetch: remoteFlight,
    thumbnail: thumbnailFlight,
    url_preview: previewFlight,
    url_preview_fetch: previewFetchSlots,
  });
  registerCacheMetrics(metrics, {
    media_metadata: services.mediaRows.stats,
    access_token: services.tokenCache.stats,
  });
  registerAccountMetrics(metrics, {
    hasher: services.passwords,
    pool: services.passwordPool,
    loginLimits: services.loginLimits,
  });
  const fastPath: FastPathSlot = { handler: undefined };
  const http = createHttpServer({
    logger,
    fastPath,
    metrics,
    trustProxy: config.listen.x_forwarded,
    timeouts: {
      headersMs: config.http_timeouts.headers,
      bodyIdleMs: config.http_timeouts.body_idle,
    },
  });
  registerThumbnailMetrics(metrics, thumbnailStats);
  registerVideoThumbnailMetrics(metrics, videoStats);
  registerMediaHashMetrics(metrics, hashing.service.stats);
  registerMd5WorkerMetrics(metrics, md5Workers);
  registerMediaByteCacheMetrics(metrics, byteCache);
  addMediaNosniff(http);
  const serverName = config.server_name;
  // Attached mode (docs/attached.md): the homeserver is the source of
  // identity, and only the media routes of the proxy table are served.
  const attached = config.mode === "attached";
  if (attached) gateAttachedRoutes(http);
  const tenant = attached ? createAttachedTenant(config) : undefined;
  if (tenant) registerAccessTokenCacheMetrics(metrics, tenant.identity);
  const auth = createAuth(services.accounts, tenant);
  const standalone = !attached;

  // metrics_listen: /metrics on its own (private) listener, not the main one.
  const metricsServer = config.metrics_listen && createMetricsServer(metrics, logger);
  registerHealthRoutes(http, metricsServer ? undefined : metrics);
  if (standalone) {
    // Accounts are the homeserver's in attached mode (it also answers /versions).
    registerClientVersionsRoutes(http);
    registerLoginRoutes(http, { serverName, accounts: services.accounts, auth });
    registerRegistrationAdminRoutes(http, { serverName, registration: services.registration });
    registerUserAdminRoutes(http, { serverName, auth, userAdmin: services.userAdmin });
  }
  const createRate = new MediaCreateRateLimit(
    {
      perSecond: config.rc_media_create.per_second,
      burstCount: config.rc_media_create.burst_count,
    },
    rateRefusals,
    options.now,
  );
  registerRateLimitMetrics(metrics, rateRefusals);
  registerLogMetrics(metrics, logger);
  registerMediaUploadRoutes(http, { auth, uploads, createRate });
  registerMediaConfigRoutes(http, { auth, limits: uploadQuota });
  // URL previews (docs/previews.md): off unless url_preview_enabled.
  if (config.url_preview_enabled && !options.urlPreviews) {
    throw new Error("url_preview_enabled: createApp needs options.urlPreviews (loadUrlPreviews)");
  }
  const previews = options.urlPreviews?.(config, {
    database,
    media: services.media,
    store,
    gate: quarantine,
    logger,
    fetchSlots: previewFetchSlots,
    ...(options.dns !== undefined && { dns: options.dns }),
    flight: previewFlight,
    onImage: (id, type, length) => {
      thumbnails.pregenerate(id, type, true);
      hashing.service.enqueue({
        subject: { kind: "local", mediaId: id },
        key: urlCacheKey(id),
        mediaType: type,
        mediaLength: length,
      });
    },
    // Used only once jobs run, after mediaDeletion (below) exists.
    deletion: {
      deleteLocalMediaItemsIn: (tx, items) => mediaDeletion.deleteLocalMediaItemsIn(tx, items),
    },
    ...(options.now && { now: options.now }),
  });
  if (previews) registerPreviewMetrics(metrics, previews.service, previews.expiry);
  registerMediaPreviewRoutes(http, { auth, previews: previews?.service });
  const mediaAdmin = new MediaAdminRepository(database, services.mediaChanges);
  const mediaAdminService = new MediaAdminService({
    serverName,
    // Attached: the homeserver's users are not in mxcd's table (attachedUsers).
    users: attached ? attachedUsers : services.users,
    media: services.media,
    admin: mediaAdmin,
    statistics: new MediaStatisticsRepository(database),
  });
  registerUploadUsageRoutes(http, {
    auth,
    serverName,
    quota: uploadQuota,
    users: mediaAdminService,
  });
  registerQuarantineFeedRoutes(http, { serverName, auth, feed });
  // Background jobs (docs/jobs.md): started after listening, never awaited.
  // Attached with an admin token: the room-history backfill (docs/attached.md).
  const roomHistorySource = createRoomHistorySource(config);
  const roomHistory = new RoomHistoryStatusService(
    new RoomHistoryBackfillRepository(database),
    config.app_service !== undefined,
  );
  // Media retention (docs/media.md "Retention"): registered when a rule is on.
  const mediaRetention = createMediaRetention(config, {
    // Used only once jobs run, after mediaDeletion (below) exists.
    deletion: {
      deleteLocalMediaItemsIn: (tx, items) => mediaDeletion.deleteLocalMediaItemsIn(tx, items),
      purgeRemoteItemsIn: (tx, items) => mediaDeletion.purgeRemoteItemsIn(tx, items),
    },
    logger,
    ...(options.now && { now: options.now }),
  });
  if (mediaRetention) registerMediaRetentionMetrics(metrics, mediaRetention.stats);
  // Blur previews of media stored without one (docs/console.md), on the thumbnailer's slots.
  const blurPreviewBackfill = createBlurPreviewBackfill(config, {
    database,
    store,
    thumbnailer,
    logger,
  });
  if (blurPreviewBackfill) registerBlurPreviewBackfillMetrics(metrics, blurPreviewBackfill.stats);
  const backgroundJobs = createBackgroundJobs({
    feedSignal,
    ...(previews && { urlPreviewExpiry: previews.expiry }),
    mediaHashBackfill: hashing.backfill,
    nearDuplicateCheck: nearCheck.job,
    ...(mediaRetention && { mediaRetention }),
    ...(blurPreviewBackfill && { blurPreviewBackfill }),
    ...(roomHistorySource && {
      roomHistory: { history: roomHistorySource.history, database, logger },
    }),
  });
  const jobs = new JobRunner(database, backgroundJobs, logger);
  if (standalone) registerBackgroundJobsRoutes(http, { auth, jobs });
  // Rooms, profiles and the media-reference index (docs/rooms.md). The media
  // service enforces media_redaction_policy by being passed as `moderation`.
  // The redaction policy acts through the media services built below
  // (the deletion service needs the rooms' reference index in turn).
  const moderation = {
    uploaderOf: async (mediaId: string) =>
      (await services.media.getLocal(mediaId))?.userId ?? undefined,
    quarantineLocalMedia: async (mediaId: string, by: "system") => {
      await quarantine.quarantineExactLocal(mediaId, by);
    },
    deleteLocalMedia: async (mediaId: string) => {
      await mediaDeletion.deleteLocalMedia(mediaId);
    },
  };
  const roomServices = createRoomServices({
    config,
    database,
    accounts: services.accounts,
    logger,
    moderation,
  });
  if (standalone) {
    registerRoomRoutes(http, { auth, ...roomServices });
    registerRoomEventRoutes(http, { auth, ...roomServices });
    registerProfileRoutes(http, { auth, profiles: roomServices.profiles });
  }
  // Attached: room media listing and room quarantine merge the index with the
  // homeserver's list (docs/attached.md); the room list and details in the
  // same file are gated off (attached-routes.ts).
  const roomMedia = tenant
    ? new RoomMediaSource(
        {
          serverName,
          homeserver: tenant.homeserver,
          adminAccessToken: config.homeserver?.admin_access_token ?? null,
          index: roomServices.admin,
          quarantine,
          logger,
        },
        roomHistory,
      )
    : undefined;
  registerRoomAdminRoutes(http, {
    auth,
    admin: roomServices.admin,
    media: roomMedia ?? roomServices.admin,
  });
  registerMediaQuarantineRoutes(http, {
    serverName,
    auth,
    quarantine,
    admin: mediaAdminService,
    rooms: roomMedia ?? quarantine,
  });
  // The moderation console (docs/console.md), unless `console.enabled: false`.
  if (config.console.enabled) {
    const consoleDir = options.consoleDir ?? defaultConsoleDir();
    const assets = loadConsoleAssets(consoleDir);
    if (!assets) logger.warn({ dir: consoleDir }, "moderation console not built: npm run build");
    registerConsoleRoutes(http, { assets, mode: config.mode, serverName });
  }
  // mxcd's own admin API: media by hash (docs/trust-and-safety.md).
  registerMxcdMediaLookupRoutes(http, { auth, search: services.pdqSearch });
  // mxcd's own admin API: the server-wide media listing (docs/admin-api.md).
  const listing = new MediaListingService({
    listing: new MediaListingRepository(database, serverName),
    references: roomServices.references,
    mediaInfo: (origin, mediaId) => mediaAdminService.mediaInfo(origin, mediaId),
  });
  registerMxcdMediaListRoutes(http, { serverName, auth, listing });
  // Media admin listing and deletion (docs/admin-api.md).
  const mediaDeletion = new MediaDeletionService(
    { serverName },
    mediaAdmin,
    roomServices.references,
    store,
    logger,
  );
  registerMediaAdminRoutes(http, {
    serverName,
    auth,
    admin: mediaAdminService,
    deletion: mediaDeletion,
  });
  // The application-service event feed (docs/attached.md "Application service").
  if (config.app_service) {
    const receiver = createAppServiceReceiver({
      ...{ config, database, logger, moderation, references: roomServices.references },
      registrationPath: config.app_service.registration,
    });
    registerAppServiceRoutes(http, { receiver });
  }

  // Federation: keys, signing, outbound requests, inbound auth (docs/federation.md).
  const federation = createFederation(config, logger);
  const { signer, outbound, keyRing } = federation;
  const federationAuth = federation.auth;
  // Attached: the homeserver publishes the keys (attached-mode.md §2).
  if (standalone) registerKeyServerRoutes(http, { serverKeys: federation.serverKeys });

  // Remote media: fetched over federation, cached and served (docs/federation.md).
  const remote = new RemoteMediaService(
    {
      maxSize: config.max_upload_size,
      authenticatedMedia: config.enable_authenticated_media,
      blockedOrigins: config.prevent_media_downloads_from,
      failureTtlMs: config.remote_media_failure_ttl,
      failureCacheSize: config.remote_media_failure_cache_size,
      teeBufferBytes: REMOTE_TEE_BUFFER_BYTES,
      md5: md5Workers,
    },
    services.media,
    services.mediaRows,
    store,
    quarantine,
    new FederationMediaFetcher(federation.client, outbound, config.max_upload_size),
    logger,
    remoteFlight,
    (row) =>
      hashing.service.enqueue({
        subject: { kind: "remote", origin: row.origin, mediaId: row.mediaId },
        key: remoteContentKey(row.origin, row.filesystemId),
        mediaType: row.mediaType,
        mediaLength: row.mediaLength ?? 0,
      }),
    new RemoteDownloadLimiter(
      {
        burstBytes: config.remote_media_download_burst_count,
        bytesPerSecond: config.remote_media_download_per_second,
      },
      new RateLimitBucketRepository(database),
      rateRefusals,
      logger,
      options.now,
    ),
  );
  registerRemoteFetchMetrics(metrics, remote);
  const mediaReaders = { serverName, downloads, remote, thumbnails, store, accessTimes };
  // Quarantined media on the client routes (docs/trust-and-safety.md).
  const placeholders = new QuarantinePlaceholders({
    ...config.quarantine_placeholder,
    thumbnailSizes: config.thumbnail_sizes,
  });
  registerQuarantinePlaceholderMetrics(metrics, placeholders);
  registerPdqSearchMetrics(metrics, services.pdqSearch.stats);
  const mediaStore = config.media_store;
  const serving = {
    store,
    cache: byteCache,
    headers: new DownloadHeaderSets(),
    accelLocation:
      mediaStore.engine === "filesystem" ? (mediaStore.accel_redirect?.location ?? null) : null,
  };
  registerMediaDownloadRoutes(http, {
    ...mediaReaders,
    serving,
    auth,
    placeholders,
    presignedRedirects:
      mediaStore.engine === "s3" && mediaStore.presigned_redirects
        ? { ttlMs: mediaStore.presigned_url_ttl }
        : undefined,
  });
  registerMediaThumbnailRoutes(http, { ...mediaReaders, serving, auth, placeholders });
  registerFederationMediaRoutes(http, { ...mediaReaders, federationAuth });

  // Cache hits of downloads and thumbnails ahead of Fastify (docs/deployment.md); standalone
  // only: attached mode's tokens are the homeserver's.
  if (standalone && config.media_cache.fast_path) {
    fastPath.handler = createFastPath({
      serverName,
      accounts: services.accounts,
      tokenCache: services.tokenCache,
      rows: services.mediaRows,
      thumbnails,
      serving,
      accessTimes,
      authenticatedMedia: config.enable_authenticated_media,
      presignedRedirects: mediaStore.engine === "s3" && mediaStore.presigned_redirects,
      metrics,
    });
  }

  // Start-up sweep of temp files left by writes killed with their process
  // (docs/media.md): in the background, never blocking start-up. A temp file
  // untouched this long has no live writer: a live upload or fetch writes at
  // least every body_idle / federation_request_timeout, or is cut off.
  const sweepAbort = new AbortController();
  let sweep: Promise<void> = Promise.resolve();
  const sweepAfterMs = Math.max(
    TEMP_SWEEP_MIN_AGE_MS,
    2 * config.http_timeouts.body_idle,
    2 * config.federation_request_timeout,
  );
  const sweepTemporaryFiles = () => {
    if (!store.sweepTemporaryFiles) return;
    sweep = store.sweepTemporaryFiles(sweepAfterMs, sweepAbort.signal).then(
      (removed) => {
        if (removed > 0) logger.info({ removed }, "removed abandoned temporary files");
      },
      (error: unknown) => logger.warn({ err: error }, "sweeping temporary files failed"),
    );
  };

  // The PDQ index builds in the background once the server listens, when
  // the log has hashes and `pdq_index.warm_up` asks for it (else on the
  // first look-up; src/media/pdq-search-service.ts); stop() aborts it.
  const pdqWarmUpAbort = new AbortController();
  let pdqWarmUp: Promise<void> = Promise.resolve();
  const warmUpPdqIndex = () => {
    pdqWarmUp = services.pdqSearch.warmUp(pdqWarmUpAbort.signal).then(
      (built) => {
        if (built)
          logger.info({ hashes: built.hashes, ms: Math.round(built.ms) }, "built the PDQ index");
      },
      (error: unknown) => {
        if (!pdqWarmUpAbort.signal.aborted)
          logger.warn({ err: error }, "building the PDQ index failed");
      },
    );
  };

  let started: Promise<string> | undefined;
  let stopped: Promise<void> | undefined;

  return {
    config,
    database,
    store,
    http,
    accounts: services.accounts,
    jobs,
    roomHistory,
    signer,
    federationAuth,
    keyRing,
    mediaChanges: services.mediaChanges,
    accessTimes,
    outbound,
    federation: federation.client,
    pdqWarmUp: () => pdqWarmUp,
    start() {
      started ??= (async () => {
        const signingKey = await federation.loadSigningKey();
        logger.info({ key_id: signingKey.keyId }, "loaded the signing key");
        const { applied } = await runMigrations(database);
        if (applied.length > 0) logger.info({ applied }, "applied schema migrations");
        // Listening for other processes before the first request is taken.
        await Promise.all([bus.start(), locks.start()]);
        accessTimes.start();
        uploadQuota.start();
        const address = await http.listen({ host: config.listen.host, port: config.listen.port });
        logger.info({ address, server_name: serverName }, "mxcd is listening");
        if (metricsServer && config.metrics_listen) {
          const { host, port } = config.metrics_listen;
          const metricsAddress = await metricsServer.start(host, port);
          logger.info({ address: metricsAddress }, "metrics listener is listening");
        }
        sweepTemporaryFiles();
        // Staging folders of video runs killed with a previous process, in the background.
        videoThumbnailer?.sweepStaging().then(
          (removed) => {
            if (removed > 0) logger.info({ removed }, "removed abandoned video staging folders");
          },
          (error: unknown) => logger.warn({ err: error }, "sweeping video staging folders failed"),
        );
        await jobs.start();
        const nearOn = config.quarantine_similar.pdq_max_distance !== null;
        if (warmsUpAtStart(config.pdq_index.warm_up, nearOn)) warmUpPdqIndex();
        return address;
      })();
      return started;
    },
    stop() {
      stopped ??= (async () => {
        await Promise.all([
          closeWithGrace(http, config.shutdown_grace_period, logger),
          metricsServer?.stop(),
          jobs.stop(),
        ]);
        sweepAbort.abort();
        pdqWarmUpAbort.abort();
        await Promise.all([sweep, pdqWarmUp]);
        // Running video commands are killed rather than waited for.
        videoThumbnailer?.stop();
        await thumbnails.drain();
        await hashing.service.stop();
        await accessTimes.stop();
        uploadQuota.stop();
        outbound.close();
        previews?.close();
        tenant?.close();
        roomHistorySource?.close();
        await store.close?.();
        await Promise.all([
          bus.stop(),
          locks.stop(),
          services.passwordPool.close(),
          md5Workers.close(),
        ]);
        await database.close();
      })();
      return stopped;
    },
  };
}

/** An attached tenant and what closes its connections. */
type AttachedTenant = Tenant & { close(): void };

/**
 * The one tenant of attached mode: `server_name` and `homeserver`. Its
 * connections go only to `homeserver.base_url`, an address from the admin's
 * config (usually private), so the federation address policy does not apply.
 */
function createAttachedTenant(config: Config): AttachedTenant {
  const settings = config.homeserver;
  if (!settings) throw new Error("mode: attached needs homeserver (checked by the config)");
  const cache = config.access_token_cache ?? DEFAULT_ACCESS_TOKEN_CACHE;
  const transport = new OutboundHttp({
    policy: addressPolicy([], ["0.0.0.0/0", "::/0"]),
    defaultTimeoutMs: settings.request_timeout,
  });
  const tenant = createTenant(
    {
      serverName: config.server_name,
      baseUrl: settings.base_url,
      adminApi: settings.admin_api,
      requestTimeoutMs: settings.request_timeout,
      failureThreshold: settings.failure_threshold,
      admins: config.admins ?? [],
      cache: {
        ttlMs: cache.ttl,
        negativeTtlMs: cache.negative_ttl,
        adminTtlMs: cache.admin_ttl,
        maxEntries: cache.max_entries,
      },
    },
    transport,
  );
  return { ...tenant, close: () => transport.close() };
}

/**
 * Standalone: mxcd's accounts. Attached: the request's tenant's homeserver
 * (one tenant now; chosen by Host once there are several), with `user_id`
 * passed on for application-service masquerading.
 */
function createAuth(accounts: AccountService, tenant: Tenant | undefined): Auth {
  if (!tenant) return new Auth(() => accounts);
  const authenticator: Authenticator = homeserverAuthenticator(tenant.identity);
  return new Auth(() => authenticator, { masquerade: true });
}

/**
 * Attached mode's user look-up for the media admin routes: mxcd has no
 * accounts, so any user of this server is taken to exist (an unknown one has
 * no media); docs/attached.md.
 */
const attachedUsers = {
  async get(userId: string) {
    return {
      userId,
      passwordHash: null,
      admin: false,
      deactivated: false,
      creationTs: 0,
      userType: null,
      displayname: null,
      avatarUrl: null,
    };
  },
};
