/**
 * Near-duplicate quarantine (docs/trust-and-safety.md "Near-duplicate
 * quarantine"): with `quarantine_similar.pdq_max_distance` set, an image
 * quarantined for its own sake — a **source** — also quarantines every
 * stored image whose PDQ hash is within the distance of it — its
 * **targets** — and provenance rows (`quarantine_propagations`) remember
 * which sources hold which target.
 *
 * The rule, in terms of rows (each step inside the caller's quarantine
 * transaction, after the feed lock):
 * - A source is a quarantined image that is not itself held, nor protected:
 *   propagation is not transitive, so a chain of near duplicates cannot
 *   reach unrelated media. Protected media is never a source nor a target.
 * - A direct quarantine (an admin's, by id, room or user; the redaction
 *   policy; a remote block) *claims* the items it touches and their SHA-256
 *   copies: their provenance rows go, so only their own release frees them.
 * - Propagating from a source: each candidate still stored, not protected,
 *   whose current PDQ is within the distance is quarantined (by the same
 *   `quarantined_by`) and held by the source; one already held by another
 *   source is held by this one too; one quarantined directly is left alone.
 * - Releasing items: their own provenance rows go; every target they held
 *   loses that row and is released if no source holds it any more.
 * - A new image whose PDQ arrives (checked once by the near-duplicate-check
 *   job, which reads the PDQ hash log) is quarantined by `system` and held
 *   by every source within the distance; a source whose PDQ arrives after
 *   its quarantine propagates then, by `system`. When the distance is
 *   raised, the job's sweep propagates from every source beyond the old one.
 * - An upload or fetch quarantined for matching a quarantined SHA-256
 *   inherits its copies' provenance: held by their sources when every
 *   quarantined copy is held, direct otherwise.
 *
 * The search for candidates runs before the transaction (it may be slow,
 * and on SQLite a transaction holds the one write lock); every candidate is
 * re-checked inside it, so a stale candidate changes nothing.
 */

import type { Db } from "../db/database.js";
import { hammingDistance } from "../hashing/pdq.js";
import type {
  MediaKey,
  QuarantinePropagationRepository,
} from "../repositories/quarantine-propagation-repository.js";
import type { QuarantineRepository, Transition } from "../repositories/quarantine-repository.js";
import type { PdqSearchService } from "./pdq-search-service.js";

/**
 * Stored images (local and cached remote) whose PDQ is within `maxDistance`
 * of `pdq`, all of them. May be stale: the caller re-checks each.
 */
export type SimilarFinder = (pdq: string, maxDistance: number) => Promise<readonly MediaKey[]>;

/** The indexed search service (src/media/pdq-search-service.ts) as a SimilarFinder: every match. */
export function searchFinder(search: Pick<PdqSearchService, "findSimilar">): SimilarFinder {
  return async (pdq, maxDistance) =>
    (await search.findSimilar(pdq, maxDistance)).map((m) => ({
      origin: m.local ? null : m.origin,
      mediaId: m.mediaId,
    }));
}

/** A source found before the transaction: its PDQ then, and the candidates near it. */
export interface PlannedSource {
  readonly key: MediaKey;
  readonly pdq: string;
  readonly candidates: readonly MediaKey[];
  /**
   * The PDQ hash log's end before the search (an admin's quarantine): the
   * search saw every record up to it, and the transaction reads the later
   * ones itself (see `propagate`).
   */
  readonly loggedUpTo?: number;
}

/** Log records read per query when a quarantine reads the records its search missed. */
const LATE_PAGE = 1000;

/** `quarantined_by` of automatic quarantine. */
const SYSTEM = "system";

export class NearDuplicateQuarantine {
  constructor(
    /** `quarantine_similar.pdq_max_distance`; null: no propagation (provenance is still kept). */
    readonly maxDistance: number | null,
    private readonly find: SimilarFinder,
    private readonly provenance: QuarantinePropagationRepository,
    private readonly rows: Pick<QuarantineRepository, "updateLocal" | "updateRemote">,
    private readonly now: () => number = Date.now,
  ) {}

  /** Candidates near `pdq` (none when off); outside any transaction. */
  async search(pdq: string): Promise<readonly MediaKey[]> {
    if (this.maxDistance === null) return [];
    return this.find(pdq, this.maxDistance);
  }

  /** Before a quarantine: the PDQ of each named target and what is near it. */
  async plan(db: Db, targets: readonly MediaKey[]): Promise<PlannedSource[]> {
    if (this.maxDistance === null) return [];
    const planned: PlannedSource[] = [];
    for (const key of targets) {
      const row = await this.provenance.read(db, key);
      if (!row?.pdq) continue;
      // Before the search: log ids are visible in commit order, so the search sees all up to it.
      const loggedUpTo = await this.provenance.logEnd(db);
      planned.push({ key, pdq: row.pdq, candidates: await this.search(row.pdq), loggedUpTo });
    }
    return planned;
  }

  /**
   * The keys among `targets` that `planned` left out for want of a PDQ and
   * that have one now (none when off): their hash arrived during the quarantine.
   */
  async hashedSince(
    db: Db,
    targets: readonly MediaKey[],
    planned: readonly PlannedSource[],
  ): Promise<MediaKey[]> {
    if (this.maxDistance === null) return [];
    const searched = new Set(planned.map((p) => keyText(p.key)));
    const late: MediaKey[] = [];
    for (const key of targets) {
      if (searched.has(keyText(key))) continue;
      if ((await this.provenance.read(db, key))?.pdq) late.push(key);
    }
    return late;
  }

  /** A direct quarantine claims these items and their SHA-256 copies. */
  async claim(tx: Db, keys: readonly MediaKey[], hashes: readonly string[]): Promise<void> {
    await this.provenance.dropTargets(tx, keys);
    await this.provenance.dropTargets(tx, await this.provenance.withHashes(tx, hashes));
  }

  /**
   * Propagates from each planned source still a source; returns the
   * transitions (by `by`). Called after the feed lock: images whose hash was
   * logged after the plan's search are read from the log here, because the
   * check job may have checked them before this transaction quarantined
   * their source (docs/trust-and-safety.md "A quarantine racing a new hash").
   */
  async propagate(tx: Db, planned: readonly PlannedSource[], by: string): Promise<Transition[]> {
    const changed: Transition[] = [];
    const since = Math.min(...planned.flatMap((p) => p.loggedUpTo ?? []));
    const late = Number.isFinite(since) ? await this.#loggedSince(tx, since) : [];
    for (const source of planned) {
      const row = await this.provenance.read(tx, source.key);
      if (!row || row.quarantinedBy === null || row.protected || row.pdq !== source.pdq) continue;
      if (await this.provenance.isHeld(tx, source.key)) continue;
      const candidates = new Map(source.candidates.map((c) => [keyText(c), c]));
      for (const l of late) {
        if (this.#near(l.pdq, source.pdq)) candidates.set(keyText(l.key), l.key);
      }
      changed.push(
        ...(await this.#fromSource(tx, { ...source, candidates: [...candidates.values()] }, by)),
      );
    }
    return changed;
  }

  /** Stored images logged after `after` whose current PDQ is the logged one. */
  async #loggedSince(tx: Db, after: number): Promise<{ key: MediaKey; pdq: string }[]> {
    const end = await this.provenance.logEnd(tx);
    const found: { key: MediaKey; pdq: string }[] = [];
    for (let from = after; from < end; ) {
      const page = await this.provenance.logPage(tx, from, end, LATE_PAGE);
      for (const e of page) if (e.current === e.pdq) found.push({ key: e.key, pdq: e.pdq });
      if (page.length < LATE_PAGE) break;
      from = page[page.length - 1]!.streamId;
    }
    return found;
  }

  /**
   * After these items were released (or asked to be): drops their provenance
   * and releases the targets no source holds any more. Returns those releases.
   */
  async release(tx: Db, released: readonly MediaKey[]): Promise<Transition[]> {
    await this.provenance.dropTargets(tx, released);
    const targets = await this.provenance.dropSources(tx, released);
    const free: MediaKey[] = [];
    for (const t of targets) if (!(await this.provenance.isHeld(tx, t))) free.push(t);
    return this.#set(tx, free, null);
  }

  /**
   * An item admitted quarantined because its SHA-256 matches quarantined
   * media: held by its copies' sources when every quarantined copy is held,
   * else direct. A stale provenance row (a remote item cached again) goes.
   */
  async inherit(tx: Db, key: MediaKey, sha256: string | null): Promise<void> {
    await this.provenance.dropTargets(tx, [key]);
    if (sha256 === null) return;
    const sources = new Map<string, MediaKey>();
    for (const copy of await this.provenance.quarantinedWithHash(tx, sha256)) {
      if (copy.origin === key.origin && copy.mediaId === key.mediaId) continue;
      const held = await this.provenance.sourcesOf(tx, copy);
      if (held.length === 0) return;
      for (const s of held) sources.set(`${s.origin}/${s.mediaId}`, s);
    }
    for (const s of sources.values()) await this.provenance.add(tx, key, s, this.now());
  }

  /**
   * The PDQ of `key` was recorded: quarantine it by `system` when a source is
   * near, or propagate from it when it is a source. Returns the transitions
   * (all by `system`).
   */
  async hashed(
    tx: Db,
    key: MediaKey,
    pdq: string,
    candidates: readonly MediaKey[],
  ): Promise<Transition[]> {
    const row = await this.provenance.read(tx, key);
    if (!row || row.pdq !== pdq || this.maxDistance === null) return [];
    if (row.quarantinedBy !== null) {
      if (row.protected || (await this.provenance.isHeld(tx, key))) return [];
      return this.#fromSource(tx, { key, pdq, candidates }, SYSTEM);
    }
    if (row.protected) return [];
    const sources: MediaKey[] = [];
    for (const c of candidates) {
      if (same(c, key)) continue;
      const r = await this.provenance.read(tx, c);
      if (!r || r.quarantinedBy === null || r.protected || !this.#near(r.pdq, pdq)) continue;
      if (!(await this.provenance.isHeld(tx, c))) sources.push(c);
    }
    if (sources.length === 0) return [];
    const changed = await this.#set(tx, [key], SYSTEM);
    for (const s of changed.length > 0 ? sources : []) {
      await this.provenance.add(tx, key, s, this.now());
    }
    return changed;
  }

  /**
   * The sweep after `pdq_max_distance` was raised (or turned on): when
   * `source` is still a source with this PDQ, propagates from it by
   * `system` to the candidates farther than `beyond` (the distance every
   * older hash was already checked at; null: none was). Nearer ones were
   * considered then, and one an admin released since stays released.
   */
  async sweep(tx: Db, source: PlannedSource, beyond: number | null): Promise<Transition[]> {
    if (this.maxDistance === null) return [];
    const row = await this.provenance.read(tx, source.key);
    if (!row || row.quarantinedBy === null || row.protected || row.pdq !== source.pdq) return [];
    if (await this.provenance.isHeld(tx, source.key)) return [];
    return this.#fromSource(tx, source, SYSTEM, beyond);
  }

  async #fromSource(
    tx: Db,
    source: PlannedSource,
    by: string,
    beyond: number | null = null,
  ): Promise<Transition[]> {
    const changed: Transition[] = [];
    for (const c of source.candidates) {
      if (same(c, source.key)) continue;
      const r = await this.provenance.read(tx, c);
      if (!r || r.protected || !this.#near(r.pdq, source.pdq)) continue;
      if (beyond !== null && hammingDistance(r.pdq!, source.pdq) <= beyond) continue;
      if (r.quarantinedBy === null) {
        const now = await this.#set(tx, [c], by);
        if (now.length > 0) await this.provenance.add(tx, c, source.key, this.now());
        changed.push(...now);
      } else if (await this.provenance.isHeld(tx, c)) {
        await this.provenance.add(tx, c, source.key, this.now());
      }
    }
    return changed;
  }

  #near(pdq: string | null, other: string): boolean {
    return (
      pdq !== null && this.maxDistance !== null && hammingDistance(pdq, other) <= this.maxDistance
    );
  }

  /** Quarantines (`by`) or releases (null) exactly these items where that is a transition. */
  async #set(tx: Db, keys: readonly MediaKey[], by: string | null): Promise<Transition[]> {
    const local = keys.filter((k) => k.origin === null).map((k) => k.mediaId);
    const remote = keys.flatMap((k) =>
      k.origin === null ? [] : [{ origin: k.origin, mediaId: k.mediaId }],
    );
    return [
      ...(await this.rows.updateLocal(tx, { ids: local }, by)),
      ...(await this.rows.updateRemote(tx, { items: remote }, by)),
    ];
  }
}

function keyText(k: MediaKey): string {
  return `${k.origin ?? ""}/${k.mediaId}`;
}

function same(a: MediaKey, b: MediaKey): boolean {
  return a.origin === b.origin && a.mediaId === b.mediaId;
}
