/**
 * The one configuration schema: it is the source of the config's types, its
 * defaults and its validation. Option names follow Synapse's where Synapse
 * has the same option, so a Synapse admin's media config carries over.
 * Every option is documented in docs/configuration.md; a test keeps that
 * page, the sample config and this schema in step.
 */
import { z } from "zod";
import { isValidServerName } from "../identifiers/server-name.js";
import { userGlobProblem } from "../identifiers/user-glob.js";
import { parseCidr, SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST } from "../net/ip-ranges.js";
import { assertSafeKey } from "../storage/media-paths.js";
import { parseDuration, parseSize } from "./units.js";

const serverName = z
  .string()
  .refine(isValidServerName, "must be a valid Matrix server name (host or host:port)");

/** A size in bytes, or Synapse's notation (`"50M"`). */
const size = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: "custom", message: 'must be a size such as 1048576, "512K" or "50M"' });
    return z.NEVER;
  }
  return bytes;
});

/**
 * A duration with its unit (`"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"`),
 * parsed to milliseconds; the one duration syntax of every option. A bare
 * number is refused: Synapse reads it as milliseconds, mxcd once read
 * `shutdown_grace_period` as seconds, so either guess could be wrong.
 */
const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ms = typeof value === "string" ? parseDuration(value) : undefined;
  if (ms === undefined) {
    const hint =
      typeof value === "number"
        ? ` (a bare number is refused: write "${value}ms" or "${value}s")`
        : "";
    ctx.addIssue({
      code: "custom",
      message: `must be a duration with a unit, such as "500ms", "30s", "5m", "1h" or "2d"${hint}`,
    });
    return z.NEVER;
  }
  return ms;
});

/** A `media_retention` age: at least a second ("0s" would delete media as it is stored). */
const retentionSpan = duration.refine((ms) => ms >= 1000, "must be at least 1s");

/**
 * One `media_upload_limits` window (Synapse's shape): at most `max_size`
 * bytes uploaded by a user within any `time_period` (docs/media.md "Upload limits").
 */
const uploadLimit = z.strictObject({
  time_period: duration.refine((ms) => ms >= 1000, "must be at least 1s"),
  max_size: size,
});

/** A `media_upload_limit_overrides` entry: the first whose glob matches a user applies. */
const uploadLimitOverride = z.strictObject({
  user_glob: z.string().superRefine((glob, ctx) => {
    const problem = userGlobProblem(glob);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }),
  /** Absent: the global windows; null or []: no window applies. */
  media_upload_limits: z.array(uploadLimit).nullable().optional(),
  /** Absent: the global `max_upload_size`. */
  max_upload_size: size.optional(),
});

/** An IP address or CIDR range (`10.0.0.0/8`, `fc00::/7`, `192.168.1.1`). */
const ipRange = z
  .string()
  .refine((text) => parseCidr(text) !== undefined, "must be an IP address or CIDR range");

/** `federation_custom_resolvers` value: an http(s) origin, no path, query or credentials. */
const federationBaseUrl = z.url({ protocol: /^https?$/ }).refine((text) => {
  const url = new URL(text);
  return url.pathname === "/" && !url.search && !url.hash && !url.username && !url.password;
}, "must be a base URL such as https://10.0.0.5:8448 (no path)");

const thumbnailSize = z.strictObject({
  width: z.number().int().min(1).max(10_000),
  height: z.number().int().min(1).max(10_000),
  method: z.enum(["crop", "scale"]),
});

/** Synapse's default `thumbnail_sizes` (also the Matrix spec's suggestion). */
export const DEFAULT_THUMBNAIL_SIZES = [
  { width: 32, height: 32, method: "crop" },
  { width: 96, height: 96, method: "crop" },
  { width: 320, height: 240, method: "scale" },
  { width: 640, height: 480, method: "scale" },
  { width: 800, height: 600, method: "scale" },
] as const;

/** The tokens `video_thumbnails.command` must name (docs/media.md "Video thumbnails"). */
const VIDEO_COMMAND_TOKENS = ["{input}", "{output}"] as const;

const videoThumbnails = z
  .strictObject({
    /** The argv that writes one PNG frame of `{input}` to `{output}` (no shell); null: off. */
    command: z
      .array(z.string().min(1))
      .min(1)
      .refine(
        (argv) => VIDEO_COMMAND_TOKENS.every((token) => argv.some((arg) => arg.includes(token))),
        'must name both "{input}" and "{output}"',
      )
      .nullable()
      .default(null),
    /** Time from taking a slot to the frame: staging the video and running the command. */
    timeout: duration
      .refine((ms) => ms >= 100 && ms <= 3_600_000, "must be between 100ms and 1h")
      .default(30_000),
    /** Largest video staged for the command; a larger one gets no thumbnail (413). */
    max_source_size: size.default(128 * 1024 * 1024),
    /** Commands running at once in one process (separate from the image thumbnail slots). */
    concurrency: z.number().int().min(1).max(64).default(1),
    /** Folder of the private staging folders; null: the OS temp folder. */
    staging_path: z.string().min(1).nullable().default(null),
  })
  .prefault({});

const sqliteDatabase = z.strictObject({
  engine: z.literal("sqlite"),
  /** File of the SQLite database; created with its folder when missing. */
  path: z.string().min(1).default("./data/mxcd.sqlite"),
});

const postgresDatabase = z.strictObject({
  engine: z.literal("postgres"),
  /** libpq-style connection URL. */
  url: z.string().regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL"),
  /** Size of the connection pool of each process. */
  max_connections: z.number().int().min(1).max(1000).default(10),
});

/** An nginx location prefix: starts and ends with `/`, printable ASCII without spaces. */
export const NGINX_LOCATION = /^\/[\x21-\x7e]*\/$/;

const accelLocation = z
  .string()
  .regex(NGINX_LOCATION, 'must start and end with "/", such as "/_mxcd_internal/"');

const filesystemStore = z.strictObject({
  engine: z.literal("filesystem"),
  /** Root of the media store, in Synapse's media_store_path layout. */
  path: z.string().min(1).default("./data/media"),
  /** Behind nginx: answer with X-Accel-Redirect to `location` + key (docs/deployment.md). */
  accel_redirect: z.strictObject({ location: accelLocation }).nullish(),
});

const memoryStore = z.strictObject({
  /** Bytes kept in process memory and lost on exit: for tests and trials only. */
  engine: z.literal("memory"),
});

/** Object-key prefix of the S3 store: empty, or safe key parts each ending in `/`. */
const s3Prefix = z.string().refine((prefix) => {
  if (prefix === "") return true;
  try {
    return prefix.endsWith("/") && assertSafeKey(prefix.slice(0, -1)) !== "";
  } catch {
    return false;
  }
}, 'must be empty or end in "/", such as "media/" (letters, digits and _ - . [ ] : only)');

/** S3 caps presigned URLs at 7 days; under a second is surely a mistake. */
const presignTtl = duration.refine(
  (ms) => ms >= 1000 && ms <= 7 * 86_400_000,
  "must be between 1s and 7d",
);

const s3Store = z
  .strictObject({
    engine: z.literal("s3"),
    /** The bucket (it must exist); keys are `prefix` + Synapse's media store layout. */
    bucket: z.string().regex(/^[A-Za-z0-9._-]{3,255}$/, "must be an S3 bucket name"),
    /** Endpoint of an S3-compatible service (MinIO, R2, ...); AWS when unset. */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    region: z.string().min(1).default("us-east-1"),
    prefix: s3Prefix.default(""),
    /** Both or neither; neither means the AWS default credential chain. */
    access_key_id: z.string().min(1).optional(),
    secret_access_key: z.string().min(1).optional(),
    /** `endpoint/bucket/key` URLs instead of `bucket.endpoint/key` (MinIO, s3rver). */
    force_path_style: z.boolean().default(false),
    /** Client v1 downloads of local media answer 307 to a presigned URL. */
    presigned_redirects: z.boolean().default(false),
    presigned_url_ttl: presignTtl.default(5 * 60_000),
  })
  .refine(
    (store) => (store.access_key_id === undefined) === (store.secret_access_key === undefined),
    {
      message: "set both access_key_id and secret_access_key, or neither",
      path: ["access_key_id"],
    },
  );

/** A signing key id, `ed25519:<version>` (Matrix spec, "Key IDs"). */
const signingKeyId = z
  .string()
  .regex(/^ed25519:[A-Za-z0-9_]+$/, 'must be a key id such as "ed25519:a_AbCd"');

/** Base64 of a 32-byte ed25519 public key (43 characters, padding optional). */
const verifyKey = z
  .string()
  .regex(/^[A-Za-z0-9+/]{43}=?$/, "must be an ed25519 public key in base64");

/** Synapse's `old_signing_keys` entry: a public key we no longer sign with. */
const oldSigningKey = z.strictObject({
  key: verifyKey,
  expired_ts: z.number().int().min(0),
});

/** Synapse's `trusted_key_servers` entry: a notary to ask for other servers' keys. */
const trustedKeyServer = z.strictObject({
  server_name: serverName,
  verify_keys: z.record(signingKeyId, verifyKey).optional(),
  /** Accepted for Synapse configs; mxcd always checks the notary's signature. */
  accept_keys_insecurely: z.boolean().optional(),
});

/** Synapse's rate-limit pair (`per_second`, `burst_count`). */
const rateLimit = (perSecond: number, burstCount: number) =>
  z
    .strictObject({
      per_second: z.number().positive().default(perSecond),
      burst_count: z.number().int().min(1).default(burstCount),
    })
    .default({ per_second: perSecond, burst_count: burstCount });

/** Synapse's `rc_login`, with Synapse's defaults. */
const rcLogin = z
  .strictObject({
    address: rateLimit(0.003, 5),
    account: rateLimit(0.003, 5),
    failed_attempts: rateLimit(0.17, 3),
  })
  .default({
    address: { per_second: 0.003, burst_count: 5 },
    account: { per_second: 0.003, burst_count: 5 },
    failed_attempts: { per_second: 0.17, burst_count: 3 },
  });

/** A Matrix user id (`@localpart:server`), checked loosely; `admins` entries. */
const userId = z
  .string()
  .regex(/^@[^:\s]+:[^\s]+$/, 'must be a Matrix user id such as "@alice:example.org"');

/** `homeserver.base_url`: an http(s) URL without query, fragment or credentials. */
const homeserverBaseUrl = z.url({ protocol: /^https?$/ }).refine((text) => {
  const url = new URL(text);
  return !url.search && !url.hash && !url.username && !url.password;
}, 'must be a URL such as "http://synapse:8008" (no query or credentials)');

/** The homeserver mxcd is attached to (attached mode only; docs/attached.md). */
const homeserver = z.strictObject({
  /** Its internal address (never the public one, which the proxy routes back to mxcd). */
  base_url: homeserverBaseUrl,
  /** How admins are recognised: Synapse's admin probe, the whois probe, or `admins` only. */
  admin_api: z.enum(["synapse", "matrix", "none"]).default("synapse"),
  /** A homeserver admin's token for the homeserver's room media list and the room-history
   * backfill; null: room media is asked with the caller's token and there is no backfill. */
  admin_access_token: z.string().min(1).nullable().default(null),
  request_timeout: duration
    .refine((ms) => ms >= 1 && ms <= 600_000, "must be between 1ms and 10m")
    .default(30_000),
  /** Consecutive failures before mxcd stops asking for a while (MMR's `backoffAt`). */
  failure_threshold: z.number().int().min(1).max(1_000_000).default(10),
});

/** The cache of the homeserver's answers about access tokens (attached mode only). */
const accessTokenCache = z.strictObject({
  ttl: duration.default(60_000),
  negative_ttl: duration.default(5_000),
  admin_ttl: duration.default(60_000),
  max_entries: z.number().int().min(1).max(10_000_000).default(100_000),
});

/** `access_token_cache` with every default, for an attached config that omits it. */
export const DEFAULT_ACCESS_TOKEN_CACHE = accessTokenCache.parse({});

const configObject = z.strictObject({
  /** `standalone` (own accounts and rooms) or `attached` (in front of a homeserver). */
  mode: z.enum(["standalone", "attached"]).default("standalone"),
  server_name: serverName,
  // Attached mode (docs/attached.md): required or refused by mode, below.
  homeserver: homeserver.optional(),
  access_token_cache: accessTokenCache.optional(),
  admins: z.array(userId).optional(),
  listen: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).default(8008),
      /** Synapse's listener option: take the client address from X-Forwarded-For. */
      x_forwarded: z.boolean().default(false),
    })
    .default({ host: "127.0.0.1", port: 8008, x_forwarded: false }),
  /** A listener of its own for `GET /metrics`; unset: /metrics is on `listen`. */
  metrics_listen: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.number().int().min(1).max(65535),
    })
    .optional(),
  database: z
    .discriminatedUnion("engine", [sqliteDatabase, postgresDatabase])
    .default({ engine: "sqlite", path: "./data/mxcd.sqlite" }),
  media_store: z
    .discriminatedUnion("engine", [filesystemStore, memoryStore, s3Store])
    .default({ engine: "filesystem", path: "./data/media" }),
  /** The hot path's caches (docs/deployment.md "Caches" and "Serving fast path"). */
  media_cache: z
    .strictObject({
      /** Bytes of small blobs and thumbnails kept in memory; 0 turns the byte cache off. */
      max_bytes: size.default(64 * 1024 * 1024),
      /** Largest blob the byte cache keeps. */
      max_item_bytes: size.default(1024 * 1024),
      // Metadata and access-token caches (src/cache/): lifetime of an entry
      // (the backstop for a lost invalidation) and their bounds (0: off).
      metadata_ttl: duration
        .refine((ms) => ms >= 1 && ms <= 3_600_000, "must be between 1ms and 1h")
        .default(10_000),
      metadata_max_entries: z.number().int().min(0).max(10_000_000).default(10_000),
      token_max_entries: z.number().int().min(0).max(10_000_000).default(10_000),
      /** Answer cache hits of downloads and thumbnails before Fastify (http/fast-path.ts). */
      fast_path: z.boolean().default(true),
    })
    .prefault({}),
  registration_shared_secret: z.string().min(1).nullable().default(null),
  // Login and password hashing (docs/configuration.md).
  rc_login: rcLogin,
  /** Worker threads that hash passwords, off libuv's threadpool. */
  password_hash_workers: z.number().int().min(1).max(64).default(2),
  /** Password hashes that may wait for a worker; more are refused with 429. */
  password_hash_queue_size: z.number().int().min(0).max(100_000).default(64),
  log_level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  max_upload_size: size.default(50 * 1024 * 1024),
  max_image_pixels: size.default(32 * 1024 * 1024),
  /**
   * PDQ decode floor (docs/trust-and-safety.md "PDQ decode cost"): null (the
   * default) hashes at full resolution as HMA; a number lets JPEG/WebP decode
   * at 1/2–1/8 scale while the shorter side stays at least that many pixels.
   */
  pdq_decode_min_side: z.number().int().min(512).max(65_536).nullable().default(null),
  dynamic_thumbnails: z.boolean().default(false),
  thumbnail_sizes: z.array(thumbnailSize).default(DEFAULT_THUMBNAIL_SIZES.map((t) => ({ ...t }))),
  max_thumbnail_concurrency: z.number().int().min(1).max(64).default(2),
  /** Frames an animated thumbnail may have; a longer animation gets a still (docs/media.md). */
  max_thumbnail_frames: z.number().int().min(1).default(1000),
  /** Time budget of one thumbnail render, rounded up to whole seconds (docs/media.md). */
  thumbnail_timeout: duration
    .refine((ms) => ms >= 1000 && ms <= 3_600_000, "must be between 1s and 1h")
    .default(10_000),
  /** Image thumbnails of `video/*` media from one frame (docs/media.md "Video thumbnails"); off by default. */
  video_thumbnails: videoThumbnails,
  /**
   * The `blur-preview-backfill` job (docs/console.md "How the grid loads"):
   * blur previews for local media stored without one; mxcd's own option.
   */
  enable_blur_preview_backfill: z.boolean().default(true),
  enable_authenticated_media: z.boolean().default(true),
  max_pending_media_uploads: z.number().int().min(1).default(5),
  /** `POST /create` per user (docs/media.md "Rate limits"), Synapse's defaults. */
  rc_media_create: rateLimit(10, 50),
  /** Leaky bucket of uncached remote fetches, by user or IP (docs/media.md "Rate limits"). */
  remote_media_download_burst_count: size
    .refine((bytes) => bytes >= 1, "must be at least 1 byte")
    .default(500 * 1024 * 1024),
  remote_media_download_per_second: size
    .refine((bytes) => bytes >= 1, "must be at least 1 byte per second")
    .default(87 * 1024),
  unused_expiration_time: duration.default(24 * 3_600_000),
  /** Per-user upload quotas (docs/media.md "Upload limits"); [] : none. */
  media_upload_limits: z.array(uploadLimit).default([]),
  media_upload_limit_overrides: z.array(uploadLimitOverride).default([]),
  /** `info_uri` of 403 M_USER_LIMIT_EXCEEDED; null: mxcd's page at https://<server_name>/_mxcd/media_upload_limit. */
  media_upload_limit_info_uri: z
    .url({ protocol: /^https?$/ })
    .nullable()
    .default(null),
  /** Synapse's `media_retention` plus `local_media_max_age` (docs/media.md "Retention"). */
  media_retention: z
    .strictObject({
      local_media_lifetime: retentionSpan.nullable().default(null),
      remote_media_lifetime: retentionSpan.nullable().default(null),
      local_media_max_age: retentionSpan.nullable().default(null),
      check_interval: duration
        .refine((ms) => ms >= 100 && ms <= 86_400_000, "must be between 100ms and 1d")
        .default(3_600_000),
    })
    .prefault({}),
  prevent_media_downloads_from: z.array(serverName).default([]),
  remote_media_failure_ttl: duration.default(30_000),
  remote_media_failure_cache_size: z.number().int().min(1).max(1_000_000).default(10_000),
  media_redaction_policy: z.enum(["none", "quarantine", "delete"]).default("none"),
  /** Placeholder PNGs for quarantined media on client routes (docs/trust-and-safety.md); off: 404. */
  quarantine_placeholder: z
    .strictObject({
      thumbnails: z.boolean().default(false),
      downloads: z.boolean().default(false),
    })
    .prefault({}),
  /**
   * Near-duplicate quarantine (docs/trust-and-safety.md): quarantining an
   * image also takes stored images within this PDQ distance; null: off.
   */
  quarantine_similar: z
    .strictObject({
      pdq_max_distance: z.number().int().min(0).max(64).nullable().default(null),
    })
    .prefault({}),
  /** The moderation console at /_mxcd/console/ (docs/console.md); `enabled: false`: 404. */
  console: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
  /**
   * The in-memory PDQ similarity index (docs/trust-and-safety.md "How a PDQ
   * look-up works"): `auto` builds it at start only when near-duplicate
   * quarantine is on, else on the first look-up; `always` at start; `never`
   * on first use only.
   */
  pdq_index: z
    .strictObject({
      warm_up: z.enum(["auto", "always", "never"]).default("auto"),
    })
    .prefault({}),
  /** The application-service event feed (docs/attached.md); unset: no transactions route. */
  app_service: z
    .strictObject({
      registration: z.string().min(1),
      /** Room-history backfill (attached mode); unset: `admin_api` when there is an admin token. */
      backfill: z.enum(["admin_api", "none"]).optional(),
    })
    .optional(),
  // Federation: keys and request signing (docs/configuration.md).
  signing_key_path: z.string().min(1).default("./data/signing.key"),
  old_signing_keys: z.record(signingKeyId, oldSigningKey).default({}),
  key_refresh_interval: duration.default(86_400_000),
  trusted_key_servers: z.array(trustedKeyServer).default([]),
  // Federation: outbound requests (docs/configuration.md).
  ip_range_blacklist: z.array(ipRange).default([...SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST]),
  ip_range_whitelist: z.array(ipRange).default([]),
  federation_custom_resolvers: z
    .record(serverName, federationBaseUrl, {
      error: (issue) => (issue.code === "invalid_key" ? "must be a Matrix server name" : undefined),
    })
    .default({}),
  federation_verify_certificates: z.boolean().default(true),
  federation_request_timeout: duration.default(60_000),
  /** Connection limits of the HTTP listener (docs/deployment.md, "Timeouts"). */
  http_timeouts: z
    .strictObject({
      headers: duration.refine((ms) => ms >= 1, "must be at least 1ms").default(60_000),
      body_idle: duration.refine((ms) => ms >= 1, "must be at least 1ms").default(60_000),
    })
    .default({ headers: 60_000, body_idle: 60_000 }),
  /** How long a SIGTERM/SIGINT waits for in-flight requests before closing them. */
  shutdown_grace_period: duration
    .refine((ms) => ms <= 3_600_000, "must be at most 1h")
    .default(10_000),
  /**
   * How often a request waiting on another process (async upload, feed
   * long-poll, remote fetch, thumbnail) re-checks the database when no
   * notification woke it (docs/deployment.md).
   */
  notification_poll_interval: duration
    .refine((ms) => ms >= 10 && ms <= 3_600_000, "must be between 10ms and 1h")
    .default(500),
  // URL previews (docs/previews.md); Synapse's names where Synapse has the option.
  url_preview_enabled: z.boolean().default(false),
  /** Required when previews are on (checked below), as in Synapse. */
  url_preview_ip_range_blacklist: z.array(ipRange).optional(),
  url_preview_ip_range_whitelist: z.array(ipRange).default([]),
  /**
   * Synapse's list of URL-part patterns. Checked in detail (entry and part
   * named) by the previews module's schema when the app is built: the config
   * layer may not import a service module.
   */
  url_preview_url_blacklist: z.array(z.record(z.string(), z.unknown())).default([]),
  max_spider_size: size.default(10 * 1024 * 1024),
  /** Fresh preview fetches running at once per process (each may buffer max_spider_size). */
  url_preview_max_concurrent_fetches: z.number().int().min(1).max(1000).default(10),
  /** Fresh preview fetches that may wait for a turn; one more is refused with 429. */
  url_preview_fetch_queue_size: z.number().int().min(0).max(100_000).default(50),
  url_preview_accept_language: z.array(z.string().min(1)).default(["en"]),
  url_preview_user_agent: z
    .string()
    .min(1)
    .refine((text) => !/[\r\n]/.test(text), "must be one line")
    .default("mxcd (bot; URL previews)"),
  url_preview_timeout: duration
    .refine((ms) => ms >= 1000 && ms <= 600_000, "must be between 1s and 10m")
    .default(30_000),
  /** How often the URL-preview expiry job looks for expired rows and images (docs/previews.md). */
  url_preview_expiry_interval: duration
    .refine((ms) => ms >= 100 && ms <= 86_400_000, "must be between 100ms and 1d")
    .default(60_000),
  oembed: z
    .strictObject({
      disable_default_providers: z.boolean().default(false),
      additional_providers: z.array(z.string().min(1)).default([]),
    })
    .default({ disable_default_providers: false, additional_providers: [] }),
});

export const configSchema = configObject
  .superRefine(checkAttachedKeys)
  .superRefine(checkUrlPreviewKeys);

/**
 * Previews fetch any URL a user sends, so they need an explicit IP range
 * blacklist, as in Synapse: turning them on without one is a start-up error.
 */
function checkUrlPreviewKeys(
  config: { url_preview_enabled: boolean; url_preview_ip_range_blacklist?: unknown },
  ctx: z.RefinementCtx,
): void {
  if (config.url_preview_enabled && config.url_preview_ip_range_blacklist === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["url_preview_ip_range_blacklist"],
      message:
        "is required with url_preview_enabled: true (list the private ranges previews must never fetch; see docs/previews.md)",
    });
  }
}

/**
 * The attached-mode keys are required in attached mode and refused in
 * standalone, where they would do nothing: a config that sets them in the
 * wrong mode is surely a mistake (docs/attached.md).
 */
function checkAttachedKeys(
  config: {
    mode: "standalone" | "attached";
    server_name: string;
    homeserver?: { admin_api: string; admin_access_token: string | null } | undefined;
    access_token_cache?: unknown;
    admins?: readonly string[] | undefined;
    old_signing_keys: Readonly<Record<string, unknown>>;
    app_service?: { backfill?: "admin_api" | "none" | undefined } | undefined;
  },
  ctx: z.RefinementCtx,
): void {
  const problem = (key: string, message: string) =>
    ctx.addIssue({ code: "custom", path: [key], message });
  if (config.app_service?.backfill === "admin_api") {
    const backfill = (message: string) =>
      ctx.addIssue({ code: "custom", path: ["app_service", "backfill"], message });
    if (config.mode === "standalone") backfill("admin_api is only allowed with mode: attached");
    else if (!config.homeserver?.admin_access_token) {
      backfill("admin_api needs homeserver.admin_access_token (a homeserver admin's token)");
    }
  }
  if (config.mode === "standalone") {
    for (const key of ["homeserver", "access_token_cache", "admins"] as const) {
      if (config[key] !== undefined) problem(key, "only allowed with mode: attached");
    }
    return;
  }
  // mxcd publishes no key document in attached mode (the homeserver does), so
  // an old key listed here would silently stay unpublished (docs/attached.md).
  if (Object.keys(config.old_signing_keys).length > 0) {
    problem(
      "old_signing_keys",
      "does nothing with mode: attached: list old keys in the homeserver's config",
    );
  }
  if (config.homeserver === undefined) {
    problem("homeserver", "is required with mode: attached (homeserver.base_url at least)");
  } else if (config.homeserver.admin_api === "none" && (config.admins ?? []).length === 0) {
    problem("admins", "must list at least one admin when homeserver.admin_api is none");
  }
  (config.admins ?? []).forEach((admin, index) => {
    if (!admin.endsWith(`:${config.server_name}`)) {
      ctx.addIssue({
        code: "custom",
        path: ["admins", index],
        message: `must be a user of server_name (${config.server_name})`,
      });
    }
  });
}

/** The config as the YAML file gives it (defaults not yet applied). */
export type ConfigInput = z.input<typeof configSchema>;

/** The validated config with every default applied (durations in ms); frozen at load. */
export type Config = Readonly<z.output<typeof configSchema>>;
export type DatabaseConfig = Config["database"];
export type MediaStoreConfig = Config["media_store"];
