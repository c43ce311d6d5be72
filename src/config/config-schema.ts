/**
 * The one configuration schema: it is the source of the config's types, its
 * defaults and its validation. Option names follow Synapse's where Synapse
 * has the same option, so a Synapse admin's media config carries over.
 * Every option is documented in docs/configuration.md; a test keeps that
 * page, the sample config and this schema in step.
 */
import { z } from "zod";
import { isValidServerName } from "../identifiers/server-name.js";

const serverName = z
  .string()
  .refine(isValidServerName, "must be a valid Matrix server name (host or host:port)");

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
