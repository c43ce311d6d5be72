/**
 * Read-only access to a Synapse database (attached-mode.md §5.1), for
 * `mxcd import synapse`. Never writes: SQLite is opened with `readonly`
 * (SQLITE_OPEN_READONLY, so a write fails in the driver), PostgreSQL runs
 * every statement in a read-only transaction
 * (`default_transaction_read_only = on` for the session).
 *
 * Which optional columns exist is read from the catalog, not guessed from
 * `schema_version` alone (a partly upgraded database may differ):
 * `authenticated` since delta 86, `sha256` since 91, the
 * `quarantined_media_changes` table since 94. Missing columns read as
 * Synapse's defaults (false, NULL).
 *
 * Pages are keyset-paged on Synapse's unique indexes: local media by
 * `media_id`, the remote cache by `(media_origin, media_id)`; thumbnails
 * are read for the media ids of one page, and so is what the change stream
 * last said about the page's quarantined rows (feed-continuation.ts). The
 * preview cache has no unique key: it is paged by (url, download_ts,
 * media_id), unexpired rows only.
 */
import { resolve } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import type { ImportedThumbnail } from "../repositories/imported-media-repository.js";

/** Which Synapse database to read. */
export type SynapseDatabaseLocation = { sqlite: string } | { postgres: string };

/** What the catalog says about the source. */
export interface SynapseSchema {
  /** `schema_version.version`, or null when the table is absent. */
  readonly version: number | null;
  readonly localAuthenticated: boolean;
  readonly localSha256: boolean;
  readonly remoteAuthenticated: boolean;
  readonly remoteSha256: boolean;
  readonly quarantineChanges: boolean;
  /**
   * The highest `quarantined_media_changes.stream_id` (what a consumer of
   * Synapse's feed has seen at most), or null when the table is absent or empty.
   */
  readonly quarantineStreamMax: number | null;
  /** Whether `local_media_repository_url_cache` (the preview cache) exists. */
  readonly previewCache: boolean;
}

/**
 * What Synapse's change stream last said about an item: true or false from
 * its newest record, null when the stream has no record of it (or there is
 * no stream).
 */
export type StreamState = boolean | null;

/** A `local_media_repository` row, with defaults for columns this vintage lacks. */
export interface SynapseLocalMedia {
  readonly mediaId: string;
  readonly mediaType: string | null;
  readonly mediaLength: number | null;
  readonly createdTs: number;
  readonly uploadName: string | null;
  readonly userId: string | null;
  readonly quarantinedBy: string | null;
  readonly urlCache: string | null;
  readonly lastAccessTs: number | null;
  readonly safeFromQuarantine: boolean;
  readonly authenticated: boolean;
  readonly sha256: string | null;
  /** See StreamState. */
  readonly streamQuarantined: StreamState;
}

/** A `remote_media_cache` row. */
export interface SynapseRemoteMedia {
  readonly origin: string;
  readonly mediaId: string;
  readonly mediaType: string | null;
  readonly mediaLength: number | null;
  readonly createdTs: number;
  readonly uploadName: string | null;
  readonly filesystemId: string;
  readonly lastAccessTs: number | null;
  readonly quarantinedBy: string | null;
  readonly authenticated: boolean;
  readonly sha256: string | null;
  /** See StreamState. */
  readonly streamQuarantined: StreamState;
}

/** A `local_media_repository_url_cache` row (the preview cache). */
export interface SynapsePreview {
  readonly url: string;
  readonly responseCode: number | null;
  readonly expiresTs: number;
  readonly downloadTs: number;
  /** The preview's OpenGraph JSON text. */
  readonly og: string | null;
  /** The url-cache media of the downloaded page or image. */
  readonly mediaId: string;
}

/** Keyset position in the preview cache: (url, download_ts, media_id). */
export interface PreviewKey {
  readonly url: string;
  readonly downloadTs: number;
  readonly mediaId: string;
}

/**
 * A row of either thumbnail table (`filesystemId` only for remote ones):
 * Synapse's columns are the ones mxcd imports as they are.
 */
export type SynapseThumbnail = ImportedThumbnail;

/** The reader the importer uses; every method is a read. */
export interface SynapseSource {
  schema(): Promise<SynapseSchema>;
  /** Local media with `media_id > after`, in `media_id` order. */
  localPage(after: string, limit: number): Promise<SynapseLocalMedia[]>;
  /** Remote media after `(origin, mediaId)`, in that order. */
  remotePage(
    after: { origin: string; mediaId: string },
    limit: number,
  ): Promise<SynapseRemoteMedia[]>;
  localThumbnails(mediaIds: readonly string[]): Promise<SynapseThumbnail[]>;
  remoteThumbnails(origin: string, mediaIds: readonly string[]): Promise<SynapseThumbnail[]>;
  /**
   * Preview-cache rows after `after` in (url, download_ts, media_id) order
   * that expire after `now`; [] when the table is absent.
   */
  previewPage(after: PreviewKey, now: number, limit: number): Promise<SynapsePreview[]>;
  /** Rows of local media plus the remote cache (for the progress bar). */
  countRows(): Promise<number>;
  close(): Promise<void>;
}

type Row = Record<string, unknown>;

/** The two query primitives the reader needs from a driver; `?` placeholders. */
interface Querier {
  all(sql: string, params: readonly unknown[]): Promise<Row[]>;
  columns(table: string): Promise<Set<string>>;
  close(): Promise<void>;
}

/**
 * A stable name for a source database, without secrets (a PostgreSQL URL
 * keeps its host, port and database, never its user or password).
 */
export function sourceIdentity(location: SynapseDatabaseLocation, mediaStore: string): string {
  let database: string;
  if ("sqlite" in location) database = `sqlite:${resolve(location.sqlite)}`;
  else {
    const url = new URL(location.postgres);
    database = `postgres://${url.host}${url.pathname}`;
  }
  return `${database} with ${resolve(mediaStore)}`;
}

/** Opens the source read-only. */
export async function openSynapseSource(location: SynapseDatabaseLocation): Promise<SynapseSource> {
  const querier =
    "sqlite" in location
      ? sqliteQuerier(location.sqlite)
      : await postgresQuerier(location.postgres);
  return new SqlSynapseSource(querier);
}

function sqliteQuerier(path: string): Querier {
  const db = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
  return {
    all: async (sql, params) => db.prepare(sql).all(...params) as Row[],
    columns: async (table) =>
      new Set((db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name)),
    close: async () => {
      db.close();
    },
  };
}

async function postgresQuerier(url: string): Promise<Querier> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Every later statement, and any transaction, is read-only: a write fails.
    await client.query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY");
  } catch (error) {
    await client.end();
    throw error;
  }
  return {
    all: async (sql, params) => {
      let n = 0;
      const text = sql.replace(/\?/g, () => `$${++n}`);
      return (await client.query(text, params as unknown[])).rows as Row[];
    },
    columns: async (table) => {
      const { rows } = await client.query<{ column_name: string }>(
        `SELECT column_name FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = $1`,
        [table],
      );
      return new Set(rows.map((r) => r.column_name));
    },
    close: () => client.end(),
  };
}

class SqlSynapseSource implements SynapseSource {
  #schema?: Promise<SynapseSchema>;

  constructor(private readonly q: Querier) {}

  schema(): Promise<SynapseSchema> {
    this.#schema ??= this.#readSchema();
    return this.#schema;
  }

  async #readSchema(): Promise<SynapseSchema> {
    const local = await this.q.columns("local_media_repository");
    const remote = await this.q.columns("remote_media_cache");
    if (!local.has("media_id") || !remote.has("filesystem_id")) {
      throw new Error(
        "not a Synapse database: local_media_repository or remote_media_cache is missing",
      );
    }
    const versionColumns = await this.q.columns("schema_version");
    let version: number | null = null;
    if (versionColumns.has("version")) {
      const rows = await this.q.all("SELECT version FROM schema_version", []);
      version = rows[0] ? Number(rows[0].version) : null;
    }
    const quarantineChanges = (await this.q.columns("quarantined_media_changes")).has("stream_id");
    let quarantineStreamMax: number | null = null;
    if (quarantineChanges) {
      const rows = await this.q.all(
        "SELECT MAX(stream_id) AS n FROM quarantined_media_changes",
        [],
      );
      quarantineStreamMax = int(rows[0]?.n);
    }
    return {
      version,
      localAuthenticated: local.has("authenticated"),
      localSha256: local.has("sha256"),
      remoteAuthenticated: remote.has("authenticated"),
      remoteSha256: remote.has("sha256"),
      quarantineChanges,
      quarantineStreamMax,
      previewCache: (await this.q.columns("local_media_repository_url_cache")).has("url"),
    };
  }

  /**
   * The newest stream record of each of `items` (origin null = local), as a
   * map from `streamKey`. Synapse's table has no index but its primary key,
   * so this is one scan of the stream per page (the stream is small: it
   * holds quarantine changes only), never one per row.
   */
  async #streamStates(
    items: readonly { origin: string | null; mediaId: string }[],
  ): Promise<Map<string, boolean>> {
    const states = new Map<string, boolean>();
    if (items.length === 0 || !(await this.schema()).quarantineChanges) return states;
    const ids = [...new Set(items.map((i) => i.mediaId))];
    const rows = await this.q.all(
      `SELECT c.origin, c.media_id, c.quarantined FROM quarantined_media_changes c
        WHERE c.stream_id IN (
          SELECT MAX(stream_id) FROM quarantined_media_changes
           WHERE media_id IN (${marks(ids)}) GROUP BY origin, media_id)`,
      ids,
    );
    for (const r of rows)
      states.set(streamKey(text(r.origin), String(r.media_id)), flag(r.quarantined));
    return states;
  }

  /** Each row with its StreamState. */
  async #withStreamStates<T extends { mediaId: string; quarantinedBy: string | null }>(
    rows: readonly T[],
    originOf: (row: T) => string | null,
  ): Promise<(T & { streamQuarantined: StreamState })[]> {
    const states = await this.#streamStates(
      rows.map((r) => ({ origin: originOf(r), mediaId: r.mediaId })),
    );
    return rows.map((r) => ({
      ...r,
      streamQuarantined: states.get(streamKey(originOf(r), r.mediaId)) ?? null,
    }));
  }

  async localPage(after: string, limit: number): Promise<SynapseLocalMedia[]> {
    const s = await this.schema();
    const rows = await this.q.all(
      `SELECT media_id, media_type, media_length, created_ts, upload_name, user_id,
              quarantined_by, url_cache, last_access_ts, safe_from_quarantine,
              ${s.localAuthenticated ? "authenticated" : "NULL AS authenticated"},
              ${s.localSha256 ? "sha256" : "NULL AS sha256"}
         FROM local_media_repository WHERE media_id > ? ORDER BY media_id LIMIT ?`,
      [after, limit],
    );
    const media = rows.map((r) => ({
      mediaId: String(r.media_id),
      mediaType: text(r.media_type),
      mediaLength: int(r.media_length),
      createdTs: int(r.created_ts) ?? 0,
      uploadName: text(r.upload_name),
      userId: text(r.user_id),
      quarantinedBy: text(r.quarantined_by),
      urlCache: text(r.url_cache),
      lastAccessTs: int(r.last_access_ts),
      safeFromQuarantine: flag(r.safe_from_quarantine),
      authenticated: flag(r.authenticated),
      sha256: text(r.sha256),
    }));
    return this.#withStreamStates(media, () => null);
  }

  async remotePage(
    after: { origin: string; mediaId: string },
    limit: number,
  ): Promise<SynapseRemoteMedia[]> {
    const s = await this.schema();
    const rows = await this.q.all(
      `SELECT media_origin, media_id, media_type, media_length, created_ts, upload_name,
              filesystem_id, last_access_ts, quarantined_by,
              ${s.remoteAuthenticated ? "authenticated" : "NULL AS authenticated"},
              ${s.remoteSha256 ? "sha256" : "NULL AS sha256"}
         FROM remote_media_cache
        WHERE media_origin > ? OR (media_origin = ? AND media_id > ?)
        ORDER BY media_origin, media_id LIMIT ?`,
      [after.origin, after.origin, after.mediaId, limit],
    );
    const media = rows.map((r) => ({
      origin: String(r.media_origin),
      mediaId: String(r.media_id),
      mediaType: text(r.media_type),
      mediaLength: int(r.media_length),
      createdTs: int(r.created_ts) ?? 0,
      uploadName: text(r.upload_name),
      filesystemId: String(r.filesystem_id),
      lastAccessTs: int(r.last_access_ts),
      quarantinedBy: text(r.quarantined_by),
      authenticated: flag(r.authenticated),
      sha256: text(r.sha256),
    }));
    return this.#withStreamStates(media, (r) => r.origin);
  }

  async localThumbnails(mediaIds: readonly string[]): Promise<SynapseThumbnail[]> {
    if (mediaIds.length === 0) return [];
    const rows = await this.q.all(
      `SELECT media_id, thumbnail_width, thumbnail_height, thumbnail_type, thumbnail_method,
              thumbnail_length
         FROM local_media_repository_thumbnails WHERE media_id IN (${marks(mediaIds)})`,
      mediaIds,
    );
    return rows.map((r) => thumbnail(r, null, null));
  }

  async remoteThumbnails(origin: string, mediaIds: readonly string[]): Promise<SynapseThumbnail[]> {
    if (mediaIds.length === 0) return [];
    const rows = await this.q.all(
      `SELECT media_id, thumbnail_width, thumbnail_height, thumbnail_type, thumbnail_method,
              thumbnail_length, filesystem_id
         FROM remote_media_cache_thumbnails
        WHERE media_origin = ? AND media_id IN (${marks(mediaIds)})`,
      [origin, ...mediaIds],
    );
    return rows.map((r) => thumbnail(r, origin, String(r.filesystem_id)));
  }

  async previewPage(after: PreviewKey, now: number, limit: number): Promise<SynapsePreview[]> {
    if (!(await this.schema()).previewCache) return [];
    // Row values compare lexicographically on both engines (SQLite 3.15+).
    const rows = await this.q.all(
      `SELECT url, response_code, expires_ts, download_ts, og, media_id
         FROM local_media_repository_url_cache
        WHERE (url, download_ts, media_id) > (?, ?, ?) AND expires_ts > ?
        ORDER BY url, download_ts, media_id LIMIT ?`,
      [after.url, after.downloadTs, after.mediaId, now, limit],
    );
    return rows.map((r) => ({
      url: String(r.url),
      responseCode: int(r.response_code),
      expiresTs: int(r.expires_ts) ?? 0,
      downloadTs: int(r.download_ts) ?? 0,
      og: text(r.og),
      mediaId: String(r.media_id),
    }));
  }

  async countRows(): Promise<number> {
    let total = 0;
    for (const table of ["local_media_repository", "remote_media_cache"]) {
      const rows = await this.q.all(`SELECT COUNT(*) AS n FROM ${table}`, []);
      total += Number(rows[0]?.n ?? 0);
    }
    return total;
  }

  close(): Promise<void> {
    return this.q.close();
  }
}

function thumbnail(r: Row, origin: string | null, filesystemId: string | null): SynapseThumbnail {
  return {
    origin,
    mediaId: String(r.media_id),
    width: int(r.thumbnail_width) ?? 0,
    height: int(r.thumbnail_height) ?? 0,
    contentType: String(r.thumbnail_type),
    method: String(r.thumbnail_method),
    length: int(r.thumbnail_length) ?? 0,
    filesystemId,
  };
}

/** A map key for (origin, media id); local media has origin null. */
function streamKey(origin: string | null, mediaId: string): string {
  return `${origin ?? ""}\n${mediaId}`;
}

function marks(values: readonly unknown[]): string {
  return values.map(() => "?").join(", ");
}

function text(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

/** PostgreSQL returns bigint as a string; SQLite as a number. */
function int(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

/** SQLite stores booleans as 0/1, PostgreSQL as booleans; NULL (absent column) is false. */
function flag(value: unknown): boolean {
  return value === true || value === 1 || value === "1" || value === "t";
}
