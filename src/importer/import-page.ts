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
 */
import type { Tx } from "../db/database.js";
import type {
  ImportedLocalMedia,
  ImportedMediaRepository,
  ImportedRemoteMedia,
  ImportedThumbnail,
} from "../repositories/imported-media-repository.js";
import type { ImportTally } from "./import-report.js";

export class ImportPage {
  readonly #local: ImportedLocalMedia[] = [];
  readonly #remote: ImportedRemoteMedia[] = [];
  readonly #thumbnails: ImportedThumbnail[] = [];

  addLocal(row: ImportedLocalMedia): void {
    this.#local.push(row);
  }

  addRemote(row: ImportedRemoteMedia): void {
    this.#remote.push(row);
  }

  /** A local (origin null) or remote thumbnail. */
  addThumbnail(row: ImportedThumbnail): void {
    this.#thumbnails.push(row);
  }

  /** Inserts everything collected and counts it (in place) as imported or present. */
  async write(tx: Tx, media: ImportedMediaRepository, tally: ImportTally): Promise<void> {
    const local = (await media.insertLocalMany(tx, this.#local)).length;
    tally.counts.local.imported += local;
    tally.counts.local.present += this.#local.length - local;
    const remote = (await media.insertRemoteMany(tx, this.#remote)).length;
    tally.counts.remote.imported += remote;
    tally.counts.remote.present += this.#remote.length - remote;
    for (const kind of ["local_thumbnail", "remote_thumbnail"] as const) {
      const rows = this.#thumbnails.filter(
        (t) => (t.origin === null) === (kind === "local_thumbnail"),
      );
      const inserted = await media.insertThumbnailsMany(tx, rows);
      tally.counts[kind].imported += inserted;
      tally.counts[kind].present += rows.length - inserted;
    }
  }
}
