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
 */
import type { MediaChange, MediaChanges } from "../cache/media-changes.js";
import { afterCommit } from "../db/after-commit.js";
import type { Database, Db } from "../db/database.js";
import { MatrixError } from "../domain/matrix-error.js";
import type {
  FoundMedia,
  QuarantineCandidates,
  QuarantineRepository,
  Transition,
} from "../repositories/quarantine-repository.js";

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
  ) {}

  /** Runs a feed-writing transaction; wakes feed readers when it committed transitions. */
  async #write<T>(work: (tx: Db) => Promise<T>, changed: (result: T) => boolean): Promise<T> {
    const result = await this.database.transaction(work);
    if (changed(result)) this.feedSignal.notify();
    return result;
  }

  /** Quarantines the targets and their hash siblings as `by`; returns the number of transitions. */
  quarantine(targets: MediaTargets, by: string): Promise<number> {
    return this.#write(
      (tx) => this.#apply(tx, targets, by),
      (n) => n > 0,
    );
  }

  /** Releases the targets and their hash siblings; returns the number of transitions. */
  unquarantine(targets: MediaTargets): Promise<number> {
    return this.#write(
      (tx) => this.#apply(tx, targets, null),
      (n) => n > 0,
    );
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
    return this.#write(
      async (tx) => {
        await this.repository.lockFeed(tx);
        await write(tx);
        const blockedBy = await this.repository.findBlock(tx, origin, mediaId);
        const by =
          blockedBy ?? ((await this.repository.isHashQuarantined(tx, sha256)) ? SYSTEM : null);
        if (!by) return null;
        const changed = await this.repository.updateRemote(
          tx,
          { items: [{ origin, mediaId }] },
          by,
        );
        await this.repository.appendChanges(tx, changed, by, this.now());
        this.#announce(tx, changed);
        return by;
      },
      (by) => by !== null,
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
    return changed.length;
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

function asItem(m: FoundMedia): { origin: string; mediaId: string } {
  return { origin: m.origin!, mediaId: m.mediaId };
}
