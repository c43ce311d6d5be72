/**
 * Finds stored media (local and cached remote) whose PDQ hash lies within a
 * Hamming distance of a given hash, correct across processes
 * (docs/trust-and-safety.md "Admin API: finding media by hash").
 *
 * - Each process keeps one in-memory PdqIndex (multi-index hashing, ~100
 *   bytes a hash) keyed by the PDQ hash log's stream ids. It is built on
 *   the first query, never at start-up, so a process that never searches
 *   holds nothing.
 * - Before every query the index catches up with the log: a primary-key
 *   range scan `stream_id > last`. Log ids become visible in commit order
 *   (migration 0011-pdq-hash-log.ts), so a hash committed by any process
 *   before the query started is found: there is no staleness window.
 * - Every candidate is verified against its media row: a row that is gone,
 *   or whose `pdq` is no longer the logged one, is dropped from the answer
 *   and from the index. An item logged twice with the same hash (deleted
 *   and fetched again) is answered once, under its newest stream id.
 *
 * Results are ordered by (distance, stream id); `after` continues after a
 * result's `cursor`, so paging is stable while media come and go.
 */
import { PdqIndex } from "../hashing/pdq-index.js";
import type { ExactMatch, PdqHashLogRepository } from "../repositories/pdq-hash-log-repository.js";

/** The largest `maxDistance` accepted (a PDQ hash has 256 bits). */
export const PDQ_MAX_DISTANCE = 256;

/** A position in the (distance, stream id) order of results. */
export interface PdqCursor {
  readonly distance: number;
  readonly streamId: number;
}

export interface PdqSimilarMedia {
  /** The media's server name: this server's name for local media. */
  readonly origin: string;
  readonly mediaId: string;
  readonly local: boolean;
  readonly distance: number;
  /** Pass as `after` to continue after this result. */
  readonly cursor: PdqCursor;
}

export interface FindSimilarOptions {
  /** At most this many results (default: all). */
  readonly limit?: number;
  /** Only results after this one in (distance, stream id) order. */
  readonly after?: PdqCursor;
  /** Leaves this item out (e.g. the item a "similar to" query starts from). */
  readonly exclude?: { readonly origin: string; readonly mediaId: string };
}

export interface PdqSearchStats {
  /** Hashes in this process's index (0 until the first query). */
  indexed: number;
  /** Log records read (load and catch-up). */
  logRead: number;
  /** Candidates dropped by verification (media gone or re-hashed). */
  dropped: number;
}

const PDQ_HEX = /^[0-9a-f]{64}$/;

export class PdqSearchService {
  readonly stats: PdqSearchStats = { indexed: 0, logRead: 0, dropped: 0 };
  #index: PdqIndex | undefined;
  #last = 0;
  #sync: Promise<void> = Promise.resolve();

  constructor(
    private readonly repository: PdqHashLogRepository,
    private readonly serverName: string,
    private readonly options: { readonly batchSize?: number } = {},
  ) {}

  /** True once the index has been built (the first query). */
  get loaded(): boolean {
    return this.#index !== undefined;
  }

  /**
   * Stored media whose PDQ is within `maxDistance` (0–256) of `pdq` (64
   * lowercase hex), ordered by distance then stream id. Throws RangeError
   * on a malformed hash, distance or limit.
   */
  async findSimilar(
    pdq: string,
    maxDistance: number,
    options: FindSimilarOptions = {},
  ): Promise<PdqSimilarMedia[]> {
    if (!PDQ_HEX.test(pdq)) throw new RangeError("pdq must be 64 lowercase hex digits");
    if (!Number.isInteger(maxDistance) || maxDistance < 0 || maxDistance > PDQ_MAX_DISTANCE) {
      throw new RangeError(`maxDistance must be an integer in 0..${PDQ_MAX_DISTANCE}`);
    }
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (!(limit >= 0)) throw new RangeError("limit must be non-negative");
    const index = await this.#catchUp();
    const after = options.after;
    const results: PdqSimilarMedia[] = [];
    if (limit === 0) return results;
    // Candidates after the cursor, verified in slices until the page is full.
    const candidates = index
      .search(pdq, maxDistance)
      .filter(
        (m) =>
          after === undefined ||
          m.distance > after.distance ||
          (m.distance === after.distance && m.id > after.streamId),
      );
    let at = 0;
    while (results.length < limit && at < candidates.length) {
      const slice = candidates.slice(at, at + Math.max(16, Math.min(500, limit - results.length)));
      at += slice.length;
      const verified = new Map(
        (await this.repository.verify(slice.map((m) => m.id))).map((v) => [v.streamId, v]),
      );
      for (const m of slice) {
        const entry = verified.get(m.id);
        if (entry === undefined || entry.current !== entry.pdq || entry.newest !== m.id) {
          // The media row is gone or holds another hash now, or the item
          // was logged again later (it is answered under that record).
          index.remove(m.id);
          this.stats.dropped += 1;
          continue;
        }
        const origin = entry.origin ?? this.serverName;
        if (
          options.exclude !== undefined &&
          options.exclude.origin === origin &&
          options.exclude.mediaId === entry.mediaId
        ) {
          continue;
        }
        results.push({
          origin,
          mediaId: entry.mediaId,
          local: entry.origin === null,
          distance: m.distance,
          cursor: { distance: m.distance, streamId: m.id },
        });
        if (results.length >= limit) break;
      }
    }
    this.stats.indexed = index.size;
    return results;
  }

  /**
   * Media whose `sha256` or `md5` is `hash` (lowercase hex): local first by
   * media id, then cached remote by (origin, media id); after `after`, at
   * most `limit`. `origin` null is local media.
   */
  findExact(
    column: "sha256" | "md5",
    hash: string,
    after: ExactMatch | null,
    limit: number,
  ): Promise<ExactMatch[]> {
    return this.repository.exact(column, hash, after, limit);
  }

  /**
   * The stored PDQ of a media item (`origin` this server's name for local
   * media): `{ pdq }` or, without a hash, `{ pdq: null, reason }`;
   * undefined for unknown media.
   */
  async pdqOf(
    origin: string,
    mediaId: string,
  ): Promise<{ pdq: string; reason?: undefined } | { pdq: null; reason: string } | undefined> {
    const row = await this.repository.pdqOf(origin === this.serverName ? null : origin, mediaId);
    if (row === undefined) return undefined;
    if (row.pdq !== null) return { pdq: row.pdq };
    return { pdq: null, reason: row.status === null ? "not computed yet" : (row.reason ?? "none") };
  }

  /** Builds the index on first use, then reads the log past `last`. Serialised. */
  #catchUp(): Promise<PdqIndex> {
    const run = this.#sync.then(async () => {
      this.#index ??= new PdqIndex();
      const batch = this.options.batchSize ?? 10_000;
      for (;;) {
        const rows = await this.repository.after(this.#last, batch);
        for (const row of rows) {
          this.#index.add(row.streamId, row.pdq);
          this.#last = row.streamId;
        }
        this.stats.logRead += rows.length;
        if (rows.length < batch) break;
      }
      this.stats.indexed = this.#index.size;
      return this.#index;
    });
    this.#sync = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}
