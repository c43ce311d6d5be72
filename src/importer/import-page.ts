/**
 * The rows one import page (one batch of synapse-import-job.ts) will
 * insert, collected while its files are probed and written at the end of
 * the page in multi-row statements (ImportedMediaRepository's `…Many`
 * forms), inside the page's transaction. One INSERT per table per page
 * instead of one per row: per-row statements made the import wait on the
 * database for most of its time on PostgreSQL (bench/README.md, "Import").
 *
 * The counts come from what the statements report inserted: every row not
 * inserted was already there (an earlier run), so it counts as "present".
 * So do the feed records (feed-continuation.ts): a row's candidate is
 * returned only when the row was inserted now, never for one an earlier run
 * (which wrote its record) had inserted.
 */
import type { Tx } from "../db/database.js";
import type {
  ImportedLocalMedia,
  ImportedMediaRepository,
  ImportedRemoteMedia,
  ImportedThumbnail,
} from "../repositories/imported-media-repository.js";
import type { QuarantineRepository } from "../repositories/quarantine-repository.js";
import { type FeedCandidate, recordImportedQuarantines } from "./feed-continuation.js";
import { count, type ImportKind, type ImportTally } from "./import-report.js";

interface Pending<T> {
  readonly row: T;
  readonly kind: ImportKind;
  /** The feed record the row needs if it is inserted now. */
  readonly feed: FeedCandidate | undefined;
}

export class ImportPage {
  readonly #local: Pending<ImportedLocalMedia>[] = [];
  readonly #remote: Pending<ImportedRemoteMedia>[] = [];
  readonly #thumbnails: Pending<ImportedThumbnail>[] = [];

  /** A local row, counted under `kind` (`local` or `url_cache`). */
  addLocal(row: ImportedLocalMedia, kind: ImportKind, feed?: FeedCandidate): void {
    this.#local.push({ row, kind, feed });
  }

  addRemote(row: ImportedRemoteMedia, feed?: FeedCandidate): void {
    this.#remote.push({ row, kind: "remote", feed });
  }

  /** A local (origin null) or remote thumbnail, counted under `kind`. */
  addThumbnail(row: ImportedThumbnail, kind: ImportKind): void {
    this.#thumbnails.push({ row, kind, feed: undefined });
  }

  /**
   * `write`, then the feed records of the rows inserted now (at `ts`);
   * returns how many were appended.
   *
   * The feed's lock comes first when a record may follow, as in an upload
   * (QuarantineService.admitLocal: the feed's lock, then the row). A row's
   * insert row-locks its user's upload totals (migration 0019's triggers)
   * until the page commits; an upload of that user in the same minute, hour
   * or day waits for them while holding the feed's lock, so a page taking
   * the feed's lock after its rows could deadlock with it on PostgreSQL.
   */
  async writeWithFeed(
    tx: Tx,
    media: ImportedMediaRepository,
    quarantine: QuarantineRepository,
    tally: ImportTally,
    ts: number,
  ): Promise<number> {
    const pending = [...this.#local, ...this.#remote];
    if (pending.some((p) => p.feed !== undefined)) await quarantine.lockFeed(tx);
    const feed = await this.#write(tx, media, tally);
    return recordImportedQuarantines(tx, quarantine, feed, ts);
  }

  /**
   * Inserts everything collected and counts it (in place) as imported or
   * present; returns the feed candidates of the rows inserted now.
   */
  async #write(
    tx: Tx,
    media: ImportedMediaRepository,
    tally: ImportTally,
  ): Promise<FeedCandidate[]> {
    const feed: FeedCandidate[] = [];
    const settle = <T>(pending: Pending<T>[], inserted: Set<string>, key: (row: T) => string) => {
      for (const p of pending) {
        const isNew = inserted.has(key(p.row));
        count(tally, p.kind, isNew ? "imported" : "present");
        if (isNew && p.feed) feed.push(p.feed);
      }
    };
    const local = await media.insertLocalMany(
      tx,
      this.#local.map((p) => p.row),
    );
    settle(this.#local, new Set(local), (r) => r.mediaId);
    const remote = await media.insertRemoteMany(
      tx,
      this.#remote.map((p) => p.row),
    );
    const remoteKey = (r: { origin: string; mediaId: string }) => `${r.origin}/${r.mediaId}`;
    settle(this.#remote, new Set(remote.map(remoteKey)), remoteKey);
    for (const kind of new Set(this.#thumbnails.map((p) => p.kind))) {
      const rows = this.#thumbnails.filter((p) => p.kind === kind).map((p) => p.row);
      const inserted = await media.insertThumbnailsMany(tx, rows);
      for (let i = 0; i < rows.length; i++) {
        count(tally, kind, i < inserted ? "imported" : "present");
      }
    }
    return feed;
  }
}
