/**
 * "Tell me when a PDQ hash is recorded" for near-duplicate quarantine
 * (docs/trust-and-safety.md): wraps the stored-hash repository's `record`,
 * used by both the hashing queue and the backfill job, so every recorded
 * hash reaches `hook` once, after its commit. The server's hook drains the
 * `near-duplicate-check` job, which reads the hash from the PDQ hash log:
 * the hook only makes the check prompt; the log makes it certain.
 *
 * Outside a transaction (the queue) the hook is awaited, so a queued item
 * is finished only once its quarantine decision has committed. Inside one
 * (the backfill's batch) it runs after that commit, not awaited: a process
 * that dies in between leaves the hash to the job's next pass (its
 * position in the log is only saved with its checks).
 */
import { afterCommit } from "../db/after-commit.js";
import type { Db } from "../db/database.js";
import type { PdqColumns } from "../domain/media-hashes.js";
import type { Logger } from "../logging/logger.js";
import type { HashSubject, MediaHashRepository } from "../repositories/media-hash-repository.js";

/** Called with each newly recorded PDQ hash; should not throw (a throw is logged). */
export type PdqRecordedHook = (subject: HashSubject, pdq: string) => Promise<unknown>;

/** `hashes` whose `record` also calls `hook` for each recorded hash. */
export function withPdqRecordedHook<R extends Pick<MediaHashRepository, "record">>(
  hashes: R,
  hook: PdqRecordedHook,
  logger: Pick<Logger, "warn">,
): R {
  const run = (subject: HashSubject, pdq: string) =>
    hook(subject, pdq).catch((error: unknown) => {
      logger.warn({ err: error }, "near-duplicate quarantine check failed");
    });
  const record = async (
    subject: HashSubject,
    columns: PdqColumns,
    md5?: string | null,
    db?: Db,
  ) => {
    const recorded = await hashes.record(subject, columns, md5 ?? null, db);
    const pdq = columns.pdq;
    if (!recorded || pdq === null) return recorded;
    if (db?.isTransaction) afterCommit(db, () => void run(subject, pdq));
    else await run(subject, pdq);
    return recorded;
  };
  return Object.assign(Object.create(hashes) as R, { record });
}
