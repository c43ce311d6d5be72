/**
 * Bulk media rows for the console benches (issue 18): bench/console-list-bench.ts
 * and bench/console-bench.ts. Writes `count` media straight into a migrated
 * SQLite database in one transaction (seconds for 100,000): 80 % local from
 * 50 users (`@userN:<server>`), 20 % cached remote from 20 servers, created
 * over the past year, 1 % quarantined, four media types; and 20,000 room
 * references over 200 rooms. Deterministic: every run seeds the same rows.
 * Rows only: no media files exist for them.
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
export function seedListingMedia(path: string, count: number, server: string): void {
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
          ids.push([origin, mediaId]);
        } else {
          const user = `@user${i % 50}:${server}`;
          local.run(mediaId, type, length, ts, `${mediaId}.bin`, user, quarantined);
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
