/**
 * Bulk media rows for the console benches (issue 18): bench/console-list-bench.ts
 * and bench/console-bench.ts. Writes `count` media straight into a migrated
 * SQLite database in one transaction (seconds for 100,000): 80 % local from
 * 50 users (`@userN:<server>`), 20 % cached remote from 20 servers, created
 * over the past year, 1 % quarantined, four media types; and 20,000 room
 * references over 200 rooms. Deterministic: every run seeds the same rows.
 * Rows only: no media files exist for them.
 *
 * With `settled`, every row also carries what a server that has run for a
 * while has: its SHA-256 and MD5 and a PDQ outcome (`pdq_status` "none"),
 * so the media-hash backfill finds no work, and, where the schema has the
 * column (migration 0018), blur preview "none" (what the blur-preview
 * backfill leaves for a row without bytes), so that job finds none either. Without it (the listing bench,
 * which starts no server) the rows are as an import would leave them, and a
 * server started on them spends its first minutes backfilling hashes of
 * 100,000 files that do not exist (bench/README.md, "Console: thumbnails").
 */
import SqliteDriver from "better-sqlite3";

const YEAR_MS = 365 * 24 * 3600 * 1000;
const TYPES = ["image/jpeg", "image/png", "video/mp4", "application/pdf"];

/** A small deterministic generator, so every run seeds the same rows. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Seeds `count` media rows (all older than now) into the SQLite database at `path`. */
export function seedListingMedia(
  path: string,
  count: number,
  server: string,
  options: { settled?: boolean } = {},
): void {
  const sqlite = new SqliteDriver(path);
  const random = rng(18);
  const now = Date.now();
  const local = sqlite.prepare(
    `insert into local_media_repository (media_id, media_type, media_length, created_ts,
       upload_name, user_id, quarantined_by, safe_from_quarantine, authenticated)
     values (?, ?, ?, ?, ?, ?, ?, 0, 1)`,
  );
  const remote = sqlite.prepare(
    `insert into remote_media_cache (media_origin, media_id, media_type, media_length,
       created_ts, upload_name, filesystem_id, last_access_ts, quarantined_by, authenticated)
     values (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`,
  );
  const reference = sqlite.prepare(
    `insert into media_references (kind, media_origin, media_id, room_id, event_id, stream_ordering)
     values ('content', ?, ?, ?, ?, ?)`,
  );
  const blurColumn = (
    sqlite.prepare("select name from pragma_table_info('local_media_repository')").all() as {
      name: string;
    }[]
  ).some((column) => column.name === "blur_preview");
  const settle = {
    local: sqlite.prepare(
      `update local_media_repository set sha256 = ?, md5 = ?, pdq_status = 'none',
         pdq_reason = 'seeded'${blurColumn ? ", blur_preview = 'none'" : ""} where media_id = ?`,
    ),
    remote: sqlite.prepare(
      `update remote_media_cache set sha256 = ?, md5 = ?, pdq_status = 'none',
         pdq_reason = 'seeded' where media_origin = ? and media_id = ?`,
    ),
  };
  const hex = (i: number, length: number) => i.toString(16).padStart(length, "0");
  const ids: [string, string][] = [];
  try {
    sqlite.transaction(() => {
      for (let i = 0; i < count; i++) {
        const ts = Math.floor(now - random() * YEAR_MS);
        const type = TYPES[Math.floor(random() * TYPES.length)] as string;
        const length = Math.floor(1000 + random() * 5_000_000);
        const quarantined = random() < 0.01 ? `@mod:${server}` : null;
        const mediaId = `m${String(i).padStart(7, "0")}${Math.floor(random() * 1e6)}`;
        if (i % 5 === 4) {
          const origin = `remote${i % 20}.example`;
          remote.run(origin, mediaId, type, length, ts, null, `fs${i}`, ts, quarantined);
          if (options.settled) settle.remote.run(hex(i, 64), hex(i, 32), origin, mediaId);
          ids.push([origin, mediaId]);
        } else {
          const user = `@user${i % 50}:${server}`;
          local.run(mediaId, type, length, ts, `${mediaId}.bin`, user, quarantined);
          if (options.settled) settle.local.run(hex(i, 64), hex(i, 32), mediaId);
          ids.push([server, mediaId]);
        }
      }
      for (let r = 0; r < 20_000 && ids.length > 0; r++) {
        const [origin, mediaId] = ids[Math.floor(random() * ids.length)] as [string, string];
        reference.run(origin, mediaId, `!room${r % 200}:${server}`, `$e${r}`, r + 1);
      }
    })();
  } finally {
    sqlite.close();
  }
}
