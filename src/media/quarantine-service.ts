/**
 * The quarantine algorithm behind every quarantine path (Synapse admin API
 * §4, made exact): in one transaction, the named media plus every local and
 * cached remote copy with the same SHA-256 change state; protected local
 * media is never quarantined; only real transitions are written, counted and
 * recorded in the change feed, in that same transaction.
 *
 * Quarantining uncached remote media records a block that quarantines it the
 * moment it is fetched. Batch quarantines (a user's or a room's media) run as
 * a series of bounded transactions, so memory stays bounded and no lock is
 * held for long.
 *
 * This service is the one writer of `quarantined_by` and
 * `safe_from_quarantine` (imports aside, which only insert): every
 * transition and every protection change is published on MediaChanges after
 * its commit, before the caller answers, so every cache forgets the item
 * (docs/deployment.md "Caches").
 *
 * Near-duplicate quarantine (NearDuplicateQuarantine, off unless
 * `quarantine_similar.pdq_max_distance` is set) runs inside the same
 * transactions: an admin's quarantine also takes the images near the named
 * ones, a release frees what it held, and `pdqRecorded` acts when a hash
 * arrives. Its provenance is kept whatever the setting.
 */
import type { MediaChange, MediaChanges } from "../cache/media-changes.js";
import { afterCommit } from "../db/after-commit.js";
import type { Database, Db } from "../db/database.js";
import { MatrixError } from "../domain/matrix-error.js";
import {
  type MediaKey,
  QuarantinePropagationRepository,
} from "../repositories/quarantine-propagation-repository.js";
import type {
  FoundMedia,
  QuarantineCandidates,
  QuarantineRepository,
  Transition,
} from "../repositories/quarantine-repository.js";
import { NearDuplicateQuarantine, type PlannedSource } from "./near-duplicate-quarantine.js";

export interface MediaTargets {
  readonly local: readonly string[];
  readonly remote: readonly { origin: string; mediaId: string }[];
}

/** `quarantined_by` of automatic quarantine (hash matches, redaction policy). */
export const SYSTEM = "system";

const BATCH = 500;

export class QuarantineService {
  constructor(
    private readonly serverName: string,
    private readonly database: Database,
    private readonly repository: QuarantineRepository,
    private readonly candidates: QuarantineCandidates,
    /** Told every changed row after its commit (cache invalidation). */
    private readonly changes: MediaChanges,
    /** Told after every commit that added feed records (long-poll wake-up). */
    private readonly feedSignal: { notify(): void } = { notify() {} },
    private readonly now: () => number = Date.now,
    /** Near-duplicate propagation; default off (provenance still kept). */
    private readonly near: NearDuplicateQuarantine = new NearDuplicateQuarantine(
      null,
      async () => [],
      new QuarantinePropagationRepository(),
      repository,
      now,
    ),
  ) {}

  /** Runs a feed-writing transaction; wakes feed readers when it committed transitions. */
  async #write<T>(work: (tx: Db) => Promise<T>, changed: (result: T) => boolean): Promise<T> {
    const result = await this.database.transaction(work);
    if (changed(result)) this.feedSignal.notify();
    return result;
  }

  /**
   * Quarantines the targets and their hash siblings as `by`, and (when
   * configured) their near duplicates, also as `by`; returns the number of
   * transitions.
   */
  async quarantine(targets: MediaTargets, by: string): Promise<number> {
    const keys = keysOf(targets);
    // The search is outside the transaction; propagate() re-checks each candidate.
    const planned = await this.near.plan(this.database.db, keys);
    const n = await this.#write(
      async (tx) => (await this.#apply(tx, targets, by)) + (await this.#propagate(tx, planned, by)),
      (n) => n > 0,
    );
    // A named image whose PDQ was computed meanwhile was not searched, and the
    // check job may have checked its hash before it was quarantined: its near
    // images are taken now (docs/trust-and-safety.md "A quarantine racing a new hash").
    const late = await this.near.plan(
      this.database.db,
      await this.near.hashedSince(this.database.db, keys, planned),
    );
    if (late.length === 0) return n;
    return (
      n +
      (await this.#write(
        async (tx) => {
          await this.repository.lockFeed(tx);
          return this.#propagate(tx, late, by);
        },
        (m) => m > 0,
      ))
    );
  }

  /** Propagates from the planned sources in `tx` (after the feed lock) and records the transitions. */
  async #propagate(tx: Db, planned: readonly PlannedSource[], by: string): Promise<number> {
    const near = await this.near.propagate(tx, planned, by);
    await this.#record(tx, near, by);
    return near.length;
  }

  /**
   * Releases the targets and their hash siblings, and whatever near
   * duplicates only they held; returns the number of transitions.
   */
  unquarantine(targets: MediaTargets): Promise<number> {
    return this.#write(
      (tx) => this.#apply(tx, targets, null),
      (n) => n > 0,
    );
  }

  /**
   * In `tx` (a batch of the `near-duplicate-check` job, which reads the PDQ
   * hash log): the near-duplicate check of one recorded hash, by `system`
   * (see NearDuplicateQuarantine.hashed); `candidates` were searched before
   * the transaction. Returns the number of transitions.
   */
  async checkHashed(
    tx: Db,
    key: MediaKey,
    pdq: string,
    candidates: readonly MediaKey[],
  ): Promise<number> {
    await this.repository.lockFeed(tx);
    return this.#recordNear(tx, await this.near.hashed(tx, key, pdq, candidates));
  }

  /**
   * In `tx` (the same job's sweep after the distance was raised): propagates
   * from `key` when it is a source, to candidates farther than `beyond` (see
   * NearDuplicateQuarantine.sweep). Returns the number of transitions.
   */
  async sweepSource(
    tx: Db,
    key: MediaKey,
    pdq: string,
    candidates: readonly MediaKey[],
    beyond: number | null,
  ): Promise<number> {
    await this.repository.lockFeed(tx);
    return this.#recordNear(tx, await this.near.sweep(tx, { key, pdq, candidates }, beyond));
  }

  /** Records `system`'s near-duplicate transitions in `tx`; wakes feed readers after its commit. */
  async #recordNear(tx: Db, changed: readonly Transition[]): Promise<number> {
    await this.#record(tx, changed, SYSTEM);
    if (changed.length > 0) afterCommit(tx, () => this.feedSignal.notify());
    return changed.length;
  }

  /** Feed records and cache announcements for transitions made in `tx`. */
  async #record(tx: Db, changed: readonly Transition[], by: string | null): Promise<void> {
    await this.repository.appendChanges(tx, changed, by, this.now());
    this.#announce(tx, changed);
  }

  /**
   * Quarantines one local media item only, without hash propagation: for the
   * redaction policy, whose media may have identical copies still in use.
   * Returns whether it was a transition.
   */
  quarantineExactLocal(mediaId: string, by: string): Promise<boolean> {
    return this.#write(async (tx) => {
      await this.repository.lockFeed(tx);
      const changed = await this.repository.updateLocal(tx, { ids: [mediaId] }, by);
      // Now quarantined for its own sake (if not protected): no longer held by a near duplicate.
      await this.near.claim(tx, [{ origin: null, mediaId }], []);
      await this.repository.appendChanges(tx, changed, by, this.now());
      this.#announce(tx, changed);
      return changed.length > 0;
    }, Boolean);
  }

  /** Publishes the changed rows once `tx` has committed. */
  #announce(tx: Db, changed: readonly Transition[]): void {
    if (changed.length === 0) return;
    const list = changed.map(
      (t): MediaChange =>
        t.origin === null
          ? { kind: "local", mediaId: t.mediaId }
          : { kind: "remote", origin: t.origin, mediaId: t.mediaId },
    );
    afterCommit(tx, () => this.changes.publishMany(list));
  }

  /** Splits one mxc into local/remote targets. */
  targetsOf(origin: string, mediaId: string): MediaTargets {
    return origin === this.serverName
      ? { local: [mediaId], remote: [] }
      : { local: [], remote: [{ origin, mediaId }] };
  }

  /** Quarantines every unquarantined local media of `userId`, batch by batch. */
  async quarantineUser(userId: string, by: string): Promise<number> {
    let total = 0;
    let after = "";
    for (;;) {
      const ids = await this.candidates.userMedia(this.database.db, userId, after, BATCH);
      if (ids.length === 0) return total;
      total += await this.quarantine({ local: ids, remote: [] }, by);
      after = ids[ids.length - 1]!;
    }
  }

  /** Quarantines every media referenced by content of `roomId` (reference index), batch by batch. */
  async quarantineRoom(roomId: string, by: string): Promise<number> {
    let total = 0;
    let after = { origin: "", mediaId: "" };
    for (;;) {
      const page = await this.candidates.roomMedia(this.database.db, roomId, after, BATCH);
      if (page.length === 0) return total;
      total += await this.quarantine(
        {
          local: page.filter((m) => m.origin === this.serverName).map((m) => m.mediaId),
          remote: page.filter((m) => m.origin !== this.serverName),
        },
        by,
      );
      after = page[page.length - 1]!;
    }
  }

  /** Marks local media safe from quarantine; 404 M_NOT_FOUND when unknown. */
  async setProtected(mediaId: string, safe: boolean): Promise<void> {
    const result = await this.database.db
      .updateTable("local_media_repository")
      .set({ safe_from_quarantine: safe })
      .where("media_id", "=", mediaId)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 0) {
      throw new MatrixError("M_NOT_FOUND", "Unknown media");
    }
    this.changes.publish({ kind: "local", mediaId });
  }

  /**
   * Stores new local content (an upload) in one transaction with its hash
   * check. `write` stores the content without touching its quarantine state
   * (an async upload's id may have been quarantined, or protected, while it
   * waited for its bytes); then, if the bytes match quarantined media, the
   * item is quarantined by `system` as an ordinary transition, with its
   * feed record. Returns whether that happened.
   */
  admitLocal(mediaId: string, sha256: string, write: (tx: Db) => Promise<void>): Promise<boolean> {
    return this.#write(async (tx) => {
      await this.repository.lockFeed(tx);
      await write(tx);
      if (!(await this.repository.isHashQuarantined(tx, sha256))) return false;
      const changed = await this.repository.updateLocal(tx, { ids: [mediaId] }, SYSTEM);
      if (changed.length > 0) await this.near.inherit(tx, { origin: null, mediaId }, sha256);
      await this.repository.appendChanges(tx, changed, SYSTEM, this.now());
      this.#announce(tx, changed);
      return changed.length > 0;
    }, Boolean);
  }

  /**
   * Stores newly fetched remote media (`write` inserts it unquarantined), then
   * quarantines it in the same transaction — by whoever blocked this mxc
   * before it was cached, else by `system` when its bytes match quarantined
   * media — with its feed record. Returns who quarantined it, or null.
   */
  admitRemote(
    origin: string,
    mediaId: string,
    sha256: string,
    write: (tx: Db) => Promise<void>,
  ): Promise<string | null> {
    let released = 0;
    return this.#write(
      async (tx) => {
        await this.repository.lockFeed(tx);
        await write(tx);
        const blockedBy = await this.repository.findBlock(tx, origin, mediaId);
        const by =
          blockedBy ?? ((await this.repository.isHashQuarantined(tx, sha256)) ? SYSTEM : null);
        if (!by) {
          // Not quarantined, so it holds and is held by nothing (cached again after a purge):
          // the targets it held are released, records that must wake feed readers too.
          const freed = await this.near.release(tx, [{ origin, mediaId }]);
          await this.#record(tx, freed, null);
          released = freed.length;
          return null;
        }
        const changed = await this.repository.updateRemote(
          tx,
          { items: [{ origin, mediaId }] },
          by,
        );
        // A block is direct; a hash match inherits its copies' provenance.
        if (changed.length > 0)
          await this.near.inherit(tx, { origin, mediaId }, blockedBy ? null : sha256);
        await this.repository.appendChanges(tx, changed, by, this.now());
        this.#announce(tx, changed);
        return by;
      },
      (by) => by !== null || released > 0,
    );
  }

  /** True when this uncached remote mxc is blocked (quarantined before arrival). */
  isBlocked(origin: string, mediaId: string): Promise<boolean> {
    return this.repository.findBlock(this.database.db, origin, mediaId).then(Boolean);
  }

  async #apply(tx: Db, targets: MediaTargets, by: string | null): Promise<number> {
    await this.repository.lockFeed(tx);
    const quarantining = by !== null;
    const local = await this.repository.findLocal(tx, targets.local, quarantining);
    const remote = await this.repository.findRemote(tx, targets.remote);
    await this.#updateBlocks(tx, targets, remote, by);

    const found = [...local, ...remote];
    const hashes = [...new Set(found.flatMap((m) => (m.sha256 ? [m.sha256] : [])))];
    const byId = (origin: "local" | "remote") =>
      found.filter((m) => !m.sha256 && (m.origin === null) === (origin === "local"));
    const changed: Transition[] = [
      ...(await this.repository.updateLocal(tx, { ids: byId("local").map((m) => m.mediaId) }, by)),
      ...(await this.repository.updateLocal(tx, { hashes }, by)),
      ...(await this.repository.updateRemote(tx, { items: byId("remote").map(asItem) }, by)),
      ...(await this.repository.updateRemote(tx, { hashes }, by)),
    ];
    await this.repository.appendChanges(tx, changed, by, this.now());
    this.#announce(tx, changed);
    if (quarantining) {
      await this.near.claim(tx, found, hashes);
      return changed.length;
    }
    // Releases: what the released items held near them goes too, unless held by another source.
    const freed = await this.near.release(tx, [...found, ...changed]);
    await this.#record(tx, freed, null);
    return changed.length + freed.length;
  }

  /** Quarantine of uncached remote media becomes a block; release removes it. */
  async #updateBlocks(tx: Db, targets: MediaTargets, cached: FoundMedia[], by: string | null) {
    const isCached = (t: { origin: string; mediaId: string }) =>
      cached.some((c) => c.origin === t.origin && c.mediaId === t.mediaId);
    for (const target of targets.remote) {
      if (by === null) await this.repository.removeBlock(tx, target.origin, target.mediaId);
      else if (!isCached(target)) {
        await this.repository.addBlock(tx, target.origin, target.mediaId, by, this.now());
      }
    }
  }
}

function keysOf(targets: MediaTargets): MediaKey[] {
  return [
    ...targets.local.map((mediaId) => ({ origin: null, mediaId })),
    ...targets.remote.map((r) => ({ origin: r.origin, mediaId: r.mediaId })),
  ];
}

function asItem(m: FoundMedia): { origin: string; mediaId: string } {
  return { origin: m.origin!, mediaId: m.mediaId };
}
