/**
 * A large Synapse database and media store (schema vintage 94, the DDL of
 * synapse-fixture.ts), made fast: for the import scale test
 * (test/synapse-import-scale.test.ts) and the import bench
 * (bench/import-bench.ts).
 *
 * Every row is a pure function of its index, so a test can recompute any
 * row's bytes and metadata without keeping 100,000 objects: `local(i)`,
 * `remote(j)` and their thumbnails. The mix of a `rows`-row fixture:
 * 70% local media, 15% local thumbnails (three for every 14th local
 * item), 10% cached remote media over four origins, 5% remote thumbnails
 * (two for every 4th remote item, a few under Synapse's legacy name).
 * Among them: quarantined (every 1000th local by an admin, every 500th
 * remote by `system`) and protected local media, `/create`d ids without
 * bytes, and missing files (local media, local thumbnails, remote media).
 * The counts a full import must report are computed as the rows are made
 * (`expected`).
 *
 * Files are tiny (60–139 bytes, made from the item's own key) and written
 * synchronously, one `mkdir` per folder; rows go in with one prepared
 * statement in one transaction (SQLite) or 1,000-row INSERTs (PostgreSQL).
 */
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import {
  emptyTally,
  type ImportCounts,
  type ImportKind,
} from "../../src/importer/import-report.js";
import { ddl } from "./synapse-fixture.js";

/** Where the Synapse tables go: a new SQLite file, or an empty PostgreSQL database. */
export type BulkTarget = { readonly sqlite: string } | { readonly postgres: string };

/** A local media row, as its index makes it. */
export interface BulkLocal {
  readonly mediaId: string;
  readonly mediaType: string;
  /** Null: a `/create`d id that never got bytes. */
  readonly length: number | null;
  readonly uploadName: string;
  readonly quarantinedBy: string | null;
  readonly protected: boolean;
  /** False: the row promises a file that is not there. */
  readonly hasFile: boolean;
  /** Thumbnails ([] for most). */
  readonly thumbnails: readonly BulkThumbnail[];
}

/** A remote media row. */
export interface BulkRemote {
  readonly origin: string;
  readonly mediaId: string;
  readonly filesystemId: string;
  readonly mediaType: string;
  readonly length: number;
  readonly uploadName: string;
  readonly quarantinedBy: string | null;
  readonly hasFile: boolean;
  readonly thumbnails: readonly BulkThumbnail[];
}

export interface BulkThumbnail {
  readonly width: number;
  readonly height: number;
  readonly type: string;
  readonly method: string;
  readonly length: number;
  readonly hasFile: boolean;
  /** Stored under the pre-method name (remote only). */
  readonly legacyName: boolean;
  /** Path relative to the media store. */
  readonly path: string;
}

export interface BulkSynapseFixture {
  /** Synapse's `media_store_path`. */
  readonly mediaStore: string;
  readonly localCount: number;
  readonly remoteCount: number;
  /** Rows over the four tables (what the scale is counted in). */
  readonly rows: number;
  /** Files written, and their bytes. */
  readonly files: number;
  readonly fileBytes: number;
  /** What a full first import reports, per kind. */
  readonly expected: Record<ImportKind, ImportCounts>;
  /** Rows in mxcd after a full import: local, local thumbnails, remote, remote thumbnails. */
  readonly importedRows: readonly [number, number, number, number];
  /** Every quarantined item (origin null: local). */
  readonly quarantined: readonly { origin: string | null; mediaId: string }[];
  local(i: number): BulkLocal;
  remote(j: number): BulkRemote;
}

export const BULK_SERVER_NAME = "test.local";
const ORIGINS = ["alpha.example", "beta.example:8448", "gamma.example", "delta.example"];

/** The bytes of a bulk file: its key repeated to `length`. */
export function bulkBytes(key: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  out.fill(`${key}|`);
  return out;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
/** Two base-32 characters: spreads files over 32 × 32 folders. */
const fan = (n: number) => (n % 1024).toString(32).padStart(2, "0");
const split = (id: string) => `${id.slice(0, 2)}/${id.slice(2, 4)}/${id.slice(4)}`;
const thumbName = (t: Omit<BulkThumbnail, "path">) =>
  `${t.width}-${t.height}-${t.type.replace("/", "-")}${t.legacyName ? "" : `-${t.method}`}`;

function letters(n: number, width: number): string {
  let out = "";
  for (let k = 0; k < width; k++) {
    out += String.fromCharCode(97 + (n % 26));
    n = Math.floor(n / 26);
  }
  return out;
}

export function bulkLocal(i: number): BulkLocal {
  const mediaId = `${fan(i % 32)}${fan(Math.floor(i / 32) % 32)}bulk${String(i).padStart(10, "0")}`;
  const image = i % 3 === 0;
  const thumbnails: BulkThumbnail[] = [];
  if (i % 14 === 0) {
    const sizes = [
      [32, 32, "crop"],
      [96, 96, "crop"],
      [320, 240, "scale"],
    ] as const;
    for (const [k, [width, height, method]] of sizes.entries()) {
      const t = {
        width,
        height,
        type: "image/jpeg",
        method,
        length: 60 + ((i + k) % 80),
        hasFile: !(k === 2 && i % 1400 === 0),
        legacyName: false,
      };
      thumbnails.push({ ...t, path: `local_thumbnails/${split(mediaId)}/${thumbName(t)}` });
    }
  }
  return {
    mediaId,
    mediaType: image ? "image/jpeg" : "application/octet-stream",
    length: i % 1000 === 3 ? null : 60 + (i % 80),
    uploadName: `file ${i}.${image ? "jpg" : "bin"}`,
    quarantinedBy: i % 1000 === 11 ? `@admin:${BULK_SERVER_NAME}` : null,
    protected: i % 1000 === 13,
    hasFile: i % 1000 !== 3 && i % 250 !== 7,
    thumbnails,
  };
}

export function bulkRemote(j: number): BulkRemote {
  const filesystemId = `${letters(j % 32, 2)}${letters(Math.floor(j / 32) % 32, 2)}${letters(j, 20)}`;
  const thumbnails: BulkThumbnail[] = [];
  const origin = ORIGINS[j % ORIGINS.length]!;
  if (j % 4 === 0) {
    for (const [k, [width, height, method]] of [
      [32, 32, "crop"],
      [96, 96, "scale"],
    ].entries()) {
      const t = {
        width: width as number,
        height: height as number,
        type: "image/png",
        method: method as string,
        length: 60 + ((j + k) % 80),
        hasFile: true,
        legacyName: k === 1 && j % 1000 === 0,
      };
      thumbnails.push({
        ...t,
        path: `remote_thumbnail/${origin}/${split(filesystemId)}/${thumbName(t)}`,
      });
    }
  }
  return {
    origin,
    mediaId: `rbulk${String(j).padStart(10, "0")}`,
    filesystemId,
    mediaType: j % 2 === 0 ? "image/png" : "application/octet-stream",
    length: 60 + (j % 80),
    uploadName: `remote ${j}.${j % 2 === 0 ? "png" : "bin"}`,
    quarantinedBy: j % 500 === 1 ? "system" : null,
    hasFile: j % 400 !== 5,
    thumbnails,
  };
}

/** The file of a local or remote item (the row's own bytes). */
export function bulkFileBytes(item: BulkLocal | BulkRemote): Buffer {
  const key = "origin" in item ? `${item.origin}/${item.mediaId}` : item.mediaId;
  return bulkBytes(key, item.length ?? 0);
}

export function bulkThumbnailBytes(t: BulkThumbnail): Buffer {
  return bulkBytes(t.path, t.length);
}

/** Sizes for a fixture of about `rows` rows (exactly `rows` when divisible by 100). */
function sizes(rows: number): { localCount: number; remoteCount: number } {
  // 70% + 15% (3 per 14th) ≈ 85% local side; 10% + 5% (2 per 4th) remote.
  return { localCount: Math.round(rows * 0.7), remoteCount: Math.round(rows * 0.1) };
}

interface TableRows {
  readonly table: string;
  readonly columns: readonly string[];
  readonly rows: unknown[][];
}

/**
 * Writes the media store under `dir/media_store` and the tables into
 * `target` (or each of several targets: the same rows in each).
 * `rows` is the total over the four tables (default 100,000).
 */
export async function writeBulkSynapseFixture(
  dir: string,
  target: BulkTarget | readonly BulkTarget[],
  rows = 100_000,
): Promise<BulkSynapseFixture> {
  const { localCount, remoteCount } = sizes(rows);
  const mediaStore = join(dir, "media_store");
  const expected: Record<ImportKind, ImportCounts> = emptyTally().counts;
  const quarantined: { origin: string | null; mediaId: string }[] = [];
  const folders = new Set<string>();
  let files = 0;
  let fileBytes = 0;
  const put = (rel: string, bytes: Buffer) => {
    const path = join(mediaStore, rel);
    const folder = dirname(path);
    if (!folders.has(folder)) {
      mkdirSync(folder, { recursive: true });
      folders.add(folder);
    }
    writeFileSync(path, bytes);
    files += 1;
    fileBytes += bytes.length;
  };
  const localRows: unknown[][] = [];
  const localThumbRows: unknown[][] = [];
  for (let i = 0; i < localCount; i++) {
    const m = bulkLocal(i);
    const bytes = m.length === null ? null : bulkFileBytes(m);
    localRows.push([
      m.mediaId,
      m.length === null ? null : m.mediaType,
      m.length,
      1_600_000_000_000 + i,
      m.uploadName,
      `@user${i % 100}:${BULK_SERVER_NAME}`,
      m.quarantinedBy,
      null,
      i % 2 === 0 ? null : 1_650_000_000_000 + i,
      m.protected,
      i % 5 !== 0,
      bytes && sha256(bytes),
    ]);
    if (bytes && m.hasFile) put(`local_content/${split(m.mediaId)}`, bytes);
    const fine = m.length !== null && m.hasFile;
    if (m.length === null) expected.local.skipped += 1;
    else if (!m.hasFile) expected.local.missing += 1;
    else expected.local.imported += 1;
    if (fine && m.quarantinedBy) quarantined.push({ origin: null, mediaId: m.mediaId });
    for (const t of m.thumbnails) {
      localThumbRows.push([m.mediaId, t.width, t.height, t.type, t.method, t.length]);
      if (t.hasFile) put(t.path, bulkThumbnailBytes(t));
      expected.local_thumbnail[!fine ? "skipped" : t.hasFile ? "imported" : "missing"] += 1;
    }
  }
  const remoteRows: unknown[][] = [];
  const remoteThumbRows: unknown[][] = [];
  for (let j = 0; j < remoteCount; j++) {
    const r = bulkRemote(j);
    const bytes = bulkFileBytes(r);
    remoteRows.push([
      r.origin,
      r.mediaId,
      r.mediaType,
      1_610_000_000_000 + j,
      r.uploadName,
      r.length,
      r.filesystemId,
      1_620_000_000_000 + j,
      r.quarantinedBy,
      j % 3 !== 0,
      sha256(bytes),
    ]);
    if (r.hasFile) put(`remote_content/${r.origin}/${split(r.filesystemId)}`, bytes);
    expected.remote[r.hasFile ? "imported" : "missing"] += 1;
    if (r.hasFile && r.quarantinedBy) quarantined.push({ origin: r.origin, mediaId: r.mediaId });
    for (const t of r.thumbnails) {
      remoteThumbRows.push([
        r.origin,
        r.mediaId,
        t.width,
        t.height,
        t.method,
        t.type,
        t.length,
        r.filesystemId,
      ]);
      if (t.hasFile) put(t.path, bulkThumbnailBytes(t));
      expected.remote_thumbnail[!r.hasFile ? "skipped" : t.hasFile ? "imported" : "missing"] += 1;
    }
  }
  const tables: TableRows[] = [
    {
      table: "local_media_repository",
      columns: [
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
        "authenticated",
        "sha256",
      ],
      rows: localRows,
    },
    {
      table: "local_media_repository_thumbnails",
      columns: [
        "media_id",
        "thumbnail_width",
        "thumbnail_height",
        "thumbnail_type",
        "thumbnail_method",
        "thumbnail_length",
      ],
      rows: localThumbRows,
    },
    {
      table: "remote_media_cache",
      columns: [
        "media_origin",
        "media_id",
        "media_type",
        "created_ts",
        "upload_name",
        "media_length",
        "filesystem_id",
        "last_access_ts",
        "quarantined_by",
        "authenticated",
        "sha256",
      ],
      rows: remoteRows,
    },
    {
      table: "remote_media_cache_thumbnails",
      columns: [
        "media_origin",
        "media_id",
        "thumbnail_width",
        "thumbnail_height",
        "thumbnail_method",
        "thumbnail_type",
        "thumbnail_length",
        "filesystem_id",
      ],
      rows: remoteThumbRows,
    },
  ];
  for (const t of Array.isArray(target) ? target : [target as BulkTarget]) {
    if ("sqlite" in t) insertSqlite(t.sqlite, tables);
    else await insertPostgres(t.postgres, tables);
  }
  return {
    mediaStore,
    localCount,
    remoteCount,
    rows: tables.reduce((sum, t) => sum + t.rows.length, 0),
    files,
    fileBytes,
    expected,
    importedRows: [
      expected.local.imported,
      expected.local_thumbnail.imported,
      expected.remote.imported,
      expected.remote_thumbnail.imported,
    ],
    quarantined,
    local: bulkLocal,
    remote: bulkRemote,
  };
}

function insertSqlite(path: string, tables: readonly TableRows[]): void {
  const db = new BetterSqlite3(path);
  try {
    db.pragma("journal_mode = WAL");
    for (const statement of ddl("sqlite", 94)) db.exec(statement);
    db.transaction(() => {
      for (const { table, columns, rows } of tables) {
        const insert = db.prepare(
          `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
        );
        for (const row of rows) {
          insert.run(...row.map((v) => (typeof v === "boolean" ? Number(v) : v)));
        }
      }
    })();
  } finally {
    db.close();
  }
}

/** Rows per multi-row INSERT (12 columns × 1,000 stays under PostgreSQL's 65,535 parameters). */
const PG_CHUNK = 1000;

async function insertPostgres(url: string, tables: readonly TableRows[]): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query("BEGIN");
    for (const statement of ddl("postgres", 94)) await client.query(statement);
    for (const { table, columns, rows } of tables) {
      for (let start = 0; start < rows.length; start += PG_CHUNK) {
        const chunk = rows.slice(start, start + PG_CHUNK);
        let n = 0;
        const tuples = chunk.map(() => `(${columns.map(() => `$${++n}`).join(", ")})`);
        await client.query(
          `INSERT INTO ${table} (${columns.join(", ")}) VALUES ${tuples.join(", ")}`,
          chunk.flat(),
        );
      }
    }
    await client.query("COMMIT");
  } finally {
    await client.end();
  }
}
