/**
 * The one configuration schema: it is the source of the config's types, its
 * defaults and its validation. Option names follow Synapse's where Synapse
 * has the same option, so a Synapse admin's media config carries over.
 * Every option is documented in docs/configuration.md; a test keeps that
 * page, the sample config and this schema in step.
 */
import { z } from "zod";
import { isValidServerName } from "../identifiers/server-name.js";
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

/** A duration in milliseconds, or Synapse's notation (`"24h"`). */
const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({ code: "custom", message: 'must be a duration such as 60000, "30s" or "24h"' });
    return z.NEVER;
  }
  return ms;
});

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

const filesystemStore = z.strictObject({
  engine: z.literal("filesystem"),
  /** Root of the media store, in Synapse's media_store_path layout. */
  path: z.string().min(1).default("./data/media"),
});

const memoryStore = z.strictObject({
  /** Bytes kept in process memory and lost on exit: for tests and trials only. */
  engine: z.literal("memory"),
});

export const configSchema = z.strictObject({
  server_name: serverName,
  public_baseurl: z.url({ protocol: /^https?$/ }).optional(),
  listen: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).default(8008),
    })
    .default({ host: "127.0.0.1", port: 8008 }),
  database: z
    .discriminatedUnion("engine", [sqliteDatabase, postgresDatabase])
    .default({ engine: "sqlite", path: "./data/mxcd.sqlite" }),
  media_store: z
    .discriminatedUnion("engine", [filesystemStore, memoryStore])
    .default({ engine: "filesystem", path: "./data/media" }),
  registration_shared_secret: z.string().min(1).nullable().default(null),
  log_level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  max_upload_size: size.default(50 * 1024 * 1024),
  max_image_pixels: size.default(32 * 1024 * 1024),
  dynamic_thumbnails: z.boolean().default(false),
  thumbnail_sizes: z.array(thumbnailSize).default(DEFAULT_THUMBNAIL_SIZES.map((t) => ({ ...t }))),
  max_thumbnail_concurrency: z.number().int().min(1).max(64).default(2),
  enable_authenticated_media: z.boolean().default(true),
  max_pending_media_uploads: z.number().int().min(1).default(5),
  unused_expiration_time: duration.default(24 * 3_600_000),
  media_redaction_policy: z.enum(["none", "quarantine", "delete"]).default("none"),
  /** Seconds a SIGTERM/SIGINT waits for in-flight requests before closing them. */
  shutdown_grace_period: z.number().min(0).max(3600).default(10),
});

/** The config as the YAML file gives it (defaults not yet applied). */
export type ConfigInput = z.input<typeof configSchema>;

/** The validated config with every default applied; frozen at load. */
export type Config = Readonly<
  z.output<typeof configSchema> & {
    /** `public_baseurl`, defaulted to `https://<server_name>/`. */
    public_baseurl: string;
  }
>;
export type DatabaseConfig = Config["database"];
export type MediaStoreConfig = Config["media_store"];
