/**
 * Finds stored media (local and cached remote) whose PDQ hash lies within a
 * Hamming distance of a given hash, correct across processes
 * (docs/trust-and-safety.md "Admin API: finding media by hash").
 *
 * - Each process keeps one in-memory PdqIndex (multi-index hashing, ~120
 *   bytes a hash, all typed arrays) keyed by the PDQ hash log's stream ids.
 *   `warmUp()` (called by the app once it is listening) builds it in the
 *   background when the log has records; with an empty log nothing is
 *   loaded — not even the index module — until the first query.
 * - Building is the catch-up from stream id 0: the log is read in
 *   primary-key batches and added in slices of a few milliseconds, each
 *   followed by a turn of the event loop, so requests keep being served
 *   while 10⁶ hashes load (bench/README.md "PDQ index build").
 * - Queries and the build are serialised: a query arriving during the build
 *   waits for the rest of it (so it is answered from the whole log, never a
 *   part), and a build stopped by an error or `stop` is continued by the
 *   next query from where it stopped.
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
import { performance } from "node:perf_hooks";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { PdqIndex } from "../hashing/pdq-index.js";
import type { MediaKey, PdqHashLogRepository } from "../repositories/pdq-hash-log-repository.js";
import type { MediaInfo } from "./media-admin-service.js";

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

/** `PdqSearchStats.state`: no index yet (empty log at start, or not started). */
export const PDQ_INDEX_IDLE = 0;
/** `PdqSearchStats.state`: the index is loading the log. */
export const PDQ_INDEX_BUILDING = 1;
/** `PdqSearchStats.state`: the index has read the whole log once. */
export const PDQ_INDEX_BUILT = 2;

export interface PdqSearchStats {
  /** Hashes in this process's index (0 before the build; grows while it loads). */
  indexed: number;
  /** PDQ_INDEX_IDLE, PDQ_INDEX_BUILDING or PDQ_INDEX_BUILT. */
  state: number;
  /** How long the build took, from its start to the end of the log (0 before). */
  buildMs: number;
  /** Log records read (load and catch-up). */
  logRead: number;
  /** Candidates dropped by verification (media gone or re-hashed). */
  dropped: number;
}

/** A result with its media row (admin media info). */
export type PdqSimilarMediaRow = PdqSimilarMedia & { readonly media: MediaInfo };

/** One page of the admin API: `next` is set when more rows follow. */
export interface SearchPage<Row, Cursor> {
  readonly rows: readonly Row[];
  readonly next?: Cursor;
}

const PDQ_HEX = /^[0-9a-f]{64}$/;
/** Log records per read (on SQLite a read is synchronous: it is part of a slice). */
const DEFAULT_BATCH = 1000;
/** A slice of loading runs about this long before it lets the event loop turn. */
const SLICE_MS = 4;

/** `pdq_index.warm_up` (docs/configuration.md). */
export type PdqIndexWarmUp = "auto" | "always" | "never";

/**
 * Whether a server builds the index in the background once it listens:
 * `always`; `auto` only when near-duplicate quarantine is on (its checks
 * search at every new hash and every quarantine); `never` not. Otherwise
 * the first look-up builds it (and waits for it).
 */
export function warmsUpAtStart(warmUp: PdqIndexWarmUp, nearDuplicateOn: boolean): boolean {
  return warmUp === "always" || (warmUp === "auto" && nearDuplicateOn);
}

export class PdqSearchService {
  readonly stats: PdqSearchStats = {
    indexed: 0,
    state: PDQ_INDEX_IDLE,
    buildMs: 0,
    logRead: 0,
    dropped: 0,
  };
  #index: PdqIndex | undefined;
  #buildStarted = 0;
  #last = 0;
  #sync: Promise<void> = Promise.resolve();

  constructor(
    private readonly repository: PdqHashLogRepository,
    private readonly serverName: string,
    private readonly options: {
      /** Log records per read (tests use a small one to loop). */
      readonly batchSize?: number;
    } = {},
  ) {}

  /** True once the index has read the whole log (built). */
  get loaded(): boolean {
    return this.stats.state === PDQ_INDEX_BUILT;
  }

  /**
   * Builds the index now, in slices that yield to the event loop, when the
   * log has records; does nothing (and loads nothing) when it is empty or
   * the index exists. Resolves with the size and the build's duration, or
   * undefined when nothing was built; rejects when `signal` aborts (the next
   * query continues the build) or the database fails.
   */
  async warmUp(signal?: AbortSignal): Promise<{ hashes: number; ms: number } | undefined> {
    if (this.#index !== undefined) return undefined;
    if ((await this.repository.newestStreamId()) === 0) return undefined;
    await this.#catchUp(signal);
    return { hashes: this.stats.indexed, ms: this.stats.buildMs };
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
   * One page of `findSimilar` with each row's media (one query per page for
   * the rows, not one per row); a row deleted meanwhile is left out, and
   * `next` still continues after the page.
   */
  async findSimilarPage(
    pdq: string,
    maxDistance: number,
    options: FindSimilarOptions & { readonly limit: number },
  ): Promise<SearchPage<PdqSimilarMediaRow, PdqCursor>> {
    const found = await this.findSimilar(pdq, maxDistance, {
      ...options,
      limit: options.limit + 1,
    });
    const page = found.slice(0, options.limit);
    const rows = new Map(
      (await this.repository.media(page.map((m) => this.#key(m)))).map((row) => [
        keyText(row.local ? null : row.media.origin, row.media.mediaId),
        row,
      ]),
    );
    const withMedia: PdqSimilarMediaRow[] = [];
    for (const m of page) {
      const media = rows.get(keyText(this.#key(m).origin, m.mediaId));
      if (media !== undefined) withMedia.push({ ...m, media });
    }
    const last = page.at(-1);
    return { rows: withMedia, ...(found.length > options.limit && last && { next: last.cursor }) };
  }

  /**
   * One page of the media whose `sha256` or `md5` is `hash` (lowercase
   * hex), with their rows: local first by media id, then cached remote by
   * (origin, media id), after `after` (`origin` null: local). One or two
   * queries a page.
   */
  async findExactPage(
    column: "sha256" | "md5",
    hash: string,
    after: MediaKey | null,
    limit: number,
  ): Promise<SearchPage<MediaInfo, MediaKey>> {
    const found = await this.repository.exact(column, hash, after, limit + 1);
    const rows = found.slice(0, limit);
    const last = rows.at(-1);
    return {
      rows,
      ...(found.length > limit &&
        last && {
          next: { origin: last.local ? null : last.media.origin, mediaId: last.media.mediaId },
        }),
    };
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

  #key(m: PdqSimilarMedia): MediaKey {
    return { origin: m.local ? null : m.origin, mediaId: m.mediaId };
  }

  /** Builds the index on first use, then reads the log past `last`. Serialised. */
  #catchUp(signal?: AbortSignal): Promise<PdqIndex> {
    const run = this.#sync.then(() => this.#load(signal));
    this.#sync = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Reads the log past `last` into the index (creating it first), in slices
   * of about SLICE_MS with a turn of the event loop between them. Whatever
   * it has added when it stops (abort, error) stays consistent with `last`.
   */
  async #load(signal: AbortSignal | undefined): Promise<PdqIndex> {
    let index = this.#index;
    if (index === undefined) {
      this.stats.state = PDQ_INDEX_BUILDING;
      this.#buildStarted = performance.now();
      // Loaded on first use: a process with an empty log never holds it.
      const { PdqIndex } = await import("../hashing/pdq-index.js");
      // It grows a page at a time as the log is read: no step sized by the whole log.
      index = new PdqIndex();
      this.#index = index;
    }
    const batch = this.options.batchSize ?? DEFAULT_BATCH;
    let sliceStart = performance.now();
    const breathe = async () => {
      this.stats.indexed = index.size;
      if (performance.now() - sliceStart < SLICE_MS) return;
      await nextTurn();
      signal?.throwIfAborted();
      sliceStart = performance.now();
    };
    for (;;) {
      signal?.throwIfAborted();
      const rows = await this.repository.hashesAfter(this.#last, batch);
      for (let i = 0; i < rows.length; i++) {
        const row = rows[i] as (typeof rows)[number];
        index.add(row.streamId, row.pdq);
        this.#last = row.streamId;
        // Often: the first adds touch fresh pages of the bucket heads (a page fault each).
        if ((i & 15) === 15) await breathe();
      }
      this.stats.logRead += rows.length;
      if (rows.length < batch) break;
      await breathe();
    }
    this.stats.indexed = index.size;
    if (this.stats.state !== PDQ_INDEX_BUILT) {
      this.stats.state = PDQ_INDEX_BUILT;
      this.stats.buildMs = performance.now() - this.#buildStarted;
    }
    return index;
  }
}

/** A media key as one string (origin null: local). */
function keyText(origin: string | null, mediaId: string): string {
  return `${origin ?? ""}/${mediaId}`;
}
