/**
 * A Synapse database and media store made from scratch for import tests:
 * our own DDL with Synapse's table and column names and types
 * (attached-mode.md §5.1) at three schema vintages — 85 (no `authenticated`,
 * no `sha256`, no change stream), 92 (both columns, no change stream) and 94
 * (all three) — on SQLite or
 * PostgreSQL, plus a `media_store` tree in Synapse's layout (§5.2) holding
 * local and remote media, new and legacy thumbnail names, a missing, a
 * truncated and a zero-byte file, a directory where a file should be, a quarantined and a protected row, an
 * origin with a port and one that is an IPv6 literal. `extras` adds rows of
 * its own: more media (URL-preview media written under `url_cache/`),
 * thumbnails (under `url_cache_thumbnails/` when `urlCache`), preview-cache
 * rows and change-stream records.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import type { Engine } from "../../src/db/database.js";
import { freshDatabaseConfig } from "./databases.js";

export type Vintage = 85 | 92 | 94;

export interface FixtureLocal {
  media_id: string;
  media_type: string | null;
  media_length: number | null;
  created_ts: number;
  upload_name: string | null;
  user_id: string;
  quarantined_by: string | null;
  url_cache: string | null;
  last_access_ts: number | null;
  safe_from_quarantine: boolean;
  authenticated: boolean;
  sha256: string | null;
  /** Bytes on disk (undefined: no file). */
  file?: Buffer;
}

export interface FixtureRemote {
  media_origin: string;
  media_id: string;
  media_type: string;
  media_length: number;
  created_ts: number;
  upload_name: string | null;
  filesystem_id: string;
  last_access_ts: number;
  quarantined_by: string | null;
  authenticated: boolean;
  sha256: string | null;
  file: Buffer;
}

export interface FixtureThumbnail {
  media_origin: string | null;
  media_id: string;
  width: number;
  height: number;
  type: string;
  method: string;
  file: Buffer;
  /** Stored under the pre-method file name. */
  legacyName: boolean;
  filesystem_id: string | null;
  /** A URL-preview media's thumbnail (under `url_cache_thumbnails/`). */
  urlCache?: boolean;
}

/** A `local_media_repository_url_cache` row. */
export interface FixturePreview {
  url: string;
  response_code: number;
  etag: string | null;
  expires_ts: number;
  og: string | null;
  media_id: string;
  download_ts: number;
}

/** A `quarantined_media_changes` row (vintage 94). */
export interface FixtureChange {
  stream_id: number;
  origin: string | null;
  media_id: string;
  quarantined: boolean;
}

/** Rows added to the default ones by createSynapseFixture. */
export interface FixtureExtras {
  local?: FixtureLocal[];
  thumbnails?: FixtureThumbnail[];
  previews?: FixturePreview[];
  changes?: FixtureChange[];
}

export interface SynapseFixture {
  readonly engine: Engine;
  readonly vintage: Vintage;
  /**
   * `{ sqlite }`, or `{ postgres }` with a role that may only SELECT, as
   * openSynapseSource wants.
   */
  readonly location: { sqlite: string } | { postgres: string };
  readonly mediaStore: string;
  readonly local: FixtureLocal[];
  readonly remote: FixtureRemote[];
  readonly thumbnails: FixtureThumbnail[];
  /** Adds local rows with files (a Synapse that kept running). */
  addLocal(rows: FixtureLocal[]): Promise<void>;
  /** A fingerprint of the whole source database: equal before and after means unchanged. */
  fingerprint(): Promise<string>;
}

const SERVER = "test.local";
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A plain local row with a file of `size` random bytes. */
export function localRow(mediaId: string, overrides: Partial<FixtureLocal> = {}): FixtureLocal {
  const file = overrides.file ?? randomBytes(300 + (mediaId.charCodeAt(4) % 50));
  return {
    media_id: mediaId,
    media_type: "text/plain",
    media_length: file.length,
    created_ts: 1_600_000_000_000 + mediaId.length,
    upload_name: `${mediaId}.txt`,
    user_id: `@alice:${SERVER}`,
    quarantined_by: null,
    url_cache: null,
    last_access_ts: 1_650_000_000_000,
    safe_from_quarantine: false,
    authenticated: true,
    sha256: sha(file),
    file,
    ...overrides,
  };
}

function defaultRows(): Pick<SynapseFixture, "local" | "remote" | "thumbnails"> {
  const image = randomBytes(2000);
  const pdf = randomBytes(700);
  const truncated = randomBytes(100);
  const local: FixtureLocal[] = [
    localRow("AAAAimage000000000000001", {
      media_type: "image/png",
      upload_name: "holiday photo.png",
      file: image,
      media_length: image.length,
      sha256: sha(image),
      last_access_ts: null,
    }),
    localRow("BBBBquarantined000000001", { quarantined_by: `@admin:${SERVER}` }),
    localRow("CCCCprotected00000000001", {
      media_type: "application/pdf",
      upload_name: "report.pdf",
      file: pdf,
      media_length: pdf.length,
      sha256: sha(pdf),
      safe_from_quarantine: true,
      authenticated: false,
    }),
    localRow("DDDDzerobyte000000000001", {
      file: Buffer.alloc(0),
      media_length: 0,
      sha256: sha(Buffer.alloc(0)),
      upload_name: null,
    }),
    localRow("EEEEmissing0000000000001", { file: undefined, media_length: 42 }),
    {
      ...localRow("FFFFtruncated00000000001", { file: truncated.subarray(0, 50) }),
      media_length: 100,
    },
    // Its path is a directory: "not a file".
    localRow("HHHHdirectory00000000001", { file: undefined, media_length: 10 }),
    localRow("GGGGpending0000000000001", {
      file: undefined,
      media_length: null,
      media_type: null,
      upload_name: null,
      sha256: null,
    }),
    localRow("2024-01-01_urlcache00001", { url_cache: "https://example.org/", file: undefined }),
  ];
  const remoteImage = randomBytes(1500);
  const remoteOther = randomBytes(900);
  const remote: FixtureRemote[] = [
    {
      media_origin: "remote.example:8448",
      media_id: "remoteImage1",
      media_type: "image/jpeg",
      media_length: remoteImage.length,
      created_ts: 1_610_000_000_000,
      upload_name: "cat.jpg",
      filesystem_id: "abcdefghijklmnopqrstuvwx",
      last_access_ts: 1_620_000_000_000,
      quarantined_by: null,
      authenticated: true,
      sha256: sha(remoteImage),
      file: remoteImage,
    },
    {
      media_origin: "other.example",
      media_id: "remoteQuarantined",
      media_type: "text/plain",
      media_length: remoteOther.length,
      created_ts: 1_611_000_000_000,
      upload_name: null,
      filesystem_id: "zyxwvutsrqponmlkjihgfedc",
      last_access_ts: 1_621_000_000_000,
      quarantined_by: "system",
      authenticated: false,
      sha256: sha(remoteOther),
      file: remoteOther,
    },
  ];
  const v6 = randomBytes(400);
  remote.push({
    media_origin: "[2001:db8::1]:8448",
    media_id: "ipv6Origin",
    media_type: "application/octet-stream",
    media_length: v6.length,
    created_ts: 1_612_000_000_000,
    upload_name: "blob.bin",
    filesystem_id: "ipvsixipvsixipvsixipvsix",
    last_access_ts: 1_622_000_000_000,
    quarantined_by: null,
    authenticated: true,
    sha256: sha(v6),
    file: v6,
  });
  const thumbnails: FixtureThumbnail[] = [
    thumb(null, "AAAAimage000000000000001", 32, 32, "image/png", "scale", false, null),
    thumb(null, "AAAAimage000000000000001", 96, 96, "image/png", "crop", false, null),
    thumb(
      "remote.example:8448",
      "remoteImage1",
      32,
      32,
      "image/jpeg",
      "crop",
      false,
      "abcdefghijklmnopqrstuvwx",
    ),
    thumb(
      "remote.example:8448",
      "remoteImage1",
      96,
      96,
      "image/jpeg",
      "scale",
      true,
      "abcdefghijklmnopqrstuvwx",
    ),
  ];
  return { local, remote, thumbnails };
}

function thumb(
  origin: string | null,
  mediaId: string,
  width: number,
  height: number,
  type: string,
  method: string,
  legacyName: boolean,
  filesystemId: string | null,
): FixtureThumbnail {
  return {
    media_origin: origin,
    media_id: mediaId,
    width,
    height,
    type,
    method,
    file: randomBytes(100 + width),
    legacyName,
    filesystem_id: filesystemId,
  };
}

/** `url_cache/<date>/<rest>` pieces of a dated URL-preview id (§5.2). */
function urlCachePieces(id: string): string {
  return `${id.slice(0, 10)}/${id.slice(11)}`;
}

/** The Synapse path of a thumbnail file (§5.2). */
export function thumbnailPath(t: FixtureThumbnail): string {
  const name = `${t.width}-${t.height}-${t.type.replace("/", "-")}${t.legacyName ? "" : `-${t.method}`}`;
  if (t.urlCache) return `url_cache_thumbnails/${urlCachePieces(t.media_id)}/${name}`;
  if (t.media_origin === null) {
    const id = t.media_id;
    return `local_thumbnails/${id.slice(0, 2)}/${id.slice(2, 4)}/${id.slice(4)}/${name}`;
  }
  const fs = t.filesystem_id!;
  return `remote_thumbnail/${t.media_origin}/${fs.slice(0, 2)}/${fs.slice(2, 4)}/${fs.slice(4)}/${name}`;
}

function writeFiles(root: string, rows: Pick<SynapseFixture, "local" | "remote" | "thumbnails">) {
  const put = (rel: string, bytes: Buffer) => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), bytes);
  };
  for (const m of rows.local) {
    if (m.media_id.startsWith("HHHHdirectory")) {
      const id = m.media_id;
      mkdirSync(join(root, `local_content/${id.slice(0, 2)}/${id.slice(2, 4)}/${id.slice(4)}`), {
        recursive: true,
      });
    }
    if (!m.file) continue;
    const id = m.media_id;
    if (m.url_cache !== null) {
      put(`url_cache/${urlCachePieces(id)}`, m.file);
      continue;
    }
    put(`local_content/${id.slice(0, 2)}/${id.slice(2, 4)}/${id.slice(4)}`, m.file);
  }
  for (const r of rows.remote) {
    const fs = r.filesystem_id;
    put(
      `remote_content/${r.media_origin}/${fs.slice(0, 2)}/${fs.slice(2, 4)}/${fs.slice(4)}`,
      r.file,
    );
  }
  for (const t of rows.thumbnails) put(thumbnailPath(t), t.file);
}

/** DDL in Synapse's names and types; `bool` and `int8` per engine. */
function ddl(engine: Engine, vintage: Vintage): string[] {
  const bool = engine === "postgres" ? "BOOLEAN" : "BOOLEAN";
  const newer = vintage >= 91;
  return [
    `CREATE TABLE schema_version (lock CHAR(1) NOT NULL DEFAULT 'X' UNIQUE, version INTEGER NOT NULL, upgraded ${bool} NOT NULL)`,
    `CREATE TABLE local_media_repository (media_id TEXT, media_type TEXT, media_length INTEGER,
      created_ts BIGINT, upload_name TEXT, user_id TEXT, quarantined_by TEXT, url_cache TEXT,
      last_access_ts BIGINT, safe_from_quarantine ${bool} NOT NULL DEFAULT FALSE
      ${newer ? `, authenticated ${bool} NOT NULL DEFAULT FALSE, sha256 TEXT` : ""}, UNIQUE (media_id))`,
    `CREATE TABLE local_media_repository_thumbnails (media_id TEXT, thumbnail_width INTEGER,
      thumbnail_height INTEGER, thumbnail_type TEXT, thumbnail_method TEXT, thumbnail_length INTEGER,
      UNIQUE (media_id, thumbnail_width, thumbnail_height, thumbnail_type, thumbnail_method))`,
    `CREATE TABLE remote_media_cache (media_origin TEXT, media_id TEXT, media_type TEXT,
      created_ts BIGINT, upload_name TEXT, media_length INTEGER, filesystem_id TEXT,
      last_access_ts BIGINT, quarantined_by TEXT
      ${newer ? `, authenticated ${bool} NOT NULL DEFAULT FALSE, sha256 TEXT` : ""}, UNIQUE (media_origin, media_id))`,
    `CREATE TABLE remote_media_cache_thumbnails (media_origin TEXT, media_id TEXT,
      thumbnail_width INTEGER, thumbnail_height INTEGER, thumbnail_method TEXT, thumbnail_type TEXT,
      thumbnail_length INTEGER, filesystem_id TEXT,
      UNIQUE (media_origin, media_id, thumbnail_width, thumbnail_height, thumbnail_type, thumbnail_method))`,
    `CREATE TABLE local_media_repository_url_cache (url TEXT, response_code INTEGER, etag TEXT,
      expires_ts BIGINT, og TEXT, media_id TEXT, download_ts BIGINT)`,
    ...(vintage >= 94
      ? [
          `CREATE TABLE quarantined_media_changes (stream_id INTEGER PRIMARY KEY,
            instance_name TEXT NOT NULL, origin TEXT, media_id TEXT NOT NULL, quarantined ${bool} NOT NULL)`,
        ]
      : []),
    `INSERT INTO schema_version (version, upgraded) VALUES (${vintage}, TRUE)`,
  ];
}

type Exec = (sql: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

function localInsert(vintage: Vintage, m: FixtureLocal): [string, unknown[]] {
  const cols = [
    "media_id",
    "media_type",
    "media_length",
    "created_ts",
    "upload_name",
    "user_id",
    "quarantined_by",
    "url_cache",
    "last_access_ts",
    "safe_from_quarantine",
    ...(vintage >= 91 ? ["authenticated", "sha256"] : []),
  ];
  const values = [
    m.media_id,
    m.media_type,
    m.media_length,
    m.created_ts,
    m.upload_name,
    m.user_id,
    m.quarantined_by,
    m.url_cache,
    m.last_access_ts,
    m.safe_from_quarantine,
    ...(vintage >= 91 ? [m.authenticated, m.sha256] : []),
  ];
  return [
    `INSERT INTO local_media_repository (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`,
    values,
  ];
}

async function insertAll(
  exec: Exec,
  vintage: Vintage,
  rows: Pick<SynapseFixture, "local" | "remote" | "thumbnails">,
) {
  for (const m of rows.local) await exec(...localInsert(vintage, m));
  for (const r of rows.remote) {
    const cols = [
      "media_origin",
      "media_id",
      "media_type",
      "created_ts",
      "upload_name",
      "media_length",
      "filesystem_id",
      "last_access_ts",
      "quarantined_by",
      ...(vintage >= 91 ? ["authenticated", "sha256"] : []),
    ];
    const values = [
      r.media_origin,
      r.media_id,
      r.media_type,
      r.created_ts,
      r.upload_name,
      r.media_length,
      r.filesystem_id,
      r.last_access_ts,
      r.quarantined_by,
      ...(vintage >= 91 ? [r.authenticated, r.sha256] : []),
    ];
    await exec(
      `INSERT INTO remote_media_cache (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`,
      values,
    );
  }
  for (const t of rows.thumbnails) {
    if (t.media_origin === null) {
      await exec("INSERT INTO local_media_repository_thumbnails VALUES (?, ?, ?, ?, ?, ?)", [
        t.media_id,
        t.width,
        t.height,
        t.type,
        t.method,
        t.file.length,
      ]);
    } else {
      await exec(
        `INSERT INTO remote_media_cache_thumbnails (media_origin, media_id, thumbnail_width,
          thumbnail_height, thumbnail_method, thumbnail_type, thumbnail_length, filesystem_id)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          t.media_origin,
          t.media_id,
          t.width,
          t.height,
          t.method,
          t.type,
          t.file.length,
          t.filesystem_id,
        ],
      );
    }
  }
}

const TABLES = [
  "schema_version",
  "local_media_repository",
  "local_media_repository_thumbnails",
  "remote_media_cache",
  "remote_media_cache_thumbnails",
  "local_media_repository_url_cache",
];

async function insertExtras(exec: Exec, extras: FixtureExtras): Promise<void> {
  for (const p of extras.previews ?? []) {
    await exec(
      `INSERT INTO local_media_repository_url_cache
        (url, response_code, etag, expires_ts, og, media_id, download_ts) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      [p.url, p.response_code, p.etag, p.expires_ts, p.og, p.media_id, p.download_ts],
    );
  }
  for (const c of extras.changes ?? []) {
    await exec(
      `INSERT INTO quarantined_media_changes (stream_id, instance_name, origin, media_id, quarantined)
        VALUES (?, 'master', ?, ?, ?)`,
      [c.stream_id, c.origin, c.media_id, c.quarantined],
    );
  }
}

/** Builds the fixture: database (of `engine`, at `vintage`) and media store. */
export async function createSynapseFixture(
  engine: Engine,
  vintage: Vintage,
  extras: FixtureExtras = {},
): Promise<SynapseFixture> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-synapse-"));
  const mediaStore = join(dir, "media_store");
  const rows = defaultRows();
  rows.local.push(...(extras.local ?? []));
  rows.thumbnails.push(...(extras.thumbnails ?? []));
  writeFiles(mediaStore, rows);
  let exec: Exec;
  let location: SynapseFixture["location"];
  let fingerprint: () => Promise<string>;
  let readerSetup: string[] = [];
  if (engine === "sqlite") {
    const path = join(dir, "homeserver.db");
    const open = () => new BetterSqlite3(path);
    exec = async (sql, params = []) => {
      const db = open();
      try {
        const statement = db.prepare(sql);
        const values = params.map((p) => (typeof p === "boolean" ? Number(p) : p));
        if (statement.reader) return statement.all(...values) as Record<string, unknown>[];
        statement.run(...values);
        return [];
      } finally {
        db.close();
      }
    };
    location = { sqlite: path };
    fingerprint = async () => createHash("sha256").update(readFileSync(path)).digest("hex");
  } else {
    const config = await freshDatabaseConfig("postgres");
    if (config.engine !== "postgres") throw new Error("unreachable");
    exec = async (sql, params = []) => {
      const client = new pg.Client({ connectionString: config.url });
      await client.connect();
      try {
        let n = 0;
        return (
          await client.query(
            sql.replace(/\?/g, () => `$${++n}`),
            params,
          )
        ).rows;
      } finally {
        await client.end();
      }
    };
    // The importer reads as a role that may only SELECT: any write it tried would fail.
    const reader = `synapse_reader_${randomBytes(4).toString("hex")}`;
    readerSetup = [
      `CREATE ROLE ${reader} LOGIN`,
      `GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${reader}`,
    ];
    const readerUrl = new URL(config.url);
    readerUrl.username = reader;
    location = { postgres: readerUrl.toString() };
    fingerprint = async () => {
      const hash = createHash("sha256");
      for (const table of [...TABLES, ...(vintage >= 94 ? ["quarantined_media_changes"] : [])]) {
        hash.update(JSON.stringify(await exec(`SELECT * FROM ${table} ORDER BY 1, 2, 3`)));
      }
      return hash.digest("hex");
    };
  }
  for (const statement of ddl(engine, vintage)) await exec(statement);
  await insertAll(exec, vintage, rows);
  await insertExtras(exec, extras);
  for (const statement of readerSetup) await exec(statement);
  return {
    engine,
    vintage,
    location,
    mediaStore,
    ...rows,
    addLocal: async (more) => {
      writeFiles(mediaStore, { local: more, remote: [], thumbnails: [] });
      for (const m of more) await exec(...localInsert(vintage, m));
      rows.local.push(...more);
    },
    fingerprint,
  };
}
