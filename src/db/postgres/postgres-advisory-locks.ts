/**
 * Advisory locks across processes on PostgreSQL (see advisory-locks.ts for
 * the contract).
 *
 * Design note: session-scoped locks (`pg_try_advisory_lock`) held on ONE
 * dedicated connection per process, not transaction-scoped ones.
 * - A transaction-scoped lock lives as long as an open transaction, which
 *   pins a pool connection for the whole guarded work — minutes for a large
 *   remote fetch. The work itself needs pool connections too (the fetch
 *   writes its row), so as many concurrent fetches as the pool has
 *   connections would deadlock the pool. One dedicated session serves every
 *   lock of the process, whatever their number, and holds no transaction
 *   open.
 * - Session locks are re-entrant per session, so this process's own callers
 *   are excluded by an in-process set first.
 * - A dead process cannot keep a lock: its socket closes and PostgreSQL ends
 *   the session, releasing its locks (TCP keep-alive covers a vanished host).
 * - A lock whose session broke is silently gone; `release` then does
 *   nothing. While disconnected, `tryAcquire` grants a local-only lease: the
 *   work may then run in two processes, which it must tolerate anyway.
 * - An unlock that fails would leave the lock held by a live session, so the
 *   session is recycled instead (which releases everything it held).
 *
 * Keys are the first 8 bytes of SHA-256("mxcd-flight:" + name) as a signed
 * bigint: a different prefix from the job locks (src/jobs/job-lock.ts), and
 * a collision only makes unrelated work wait, never wrong.
 */
import { createHash } from "node:crypto";
import type { Logger } from "../../logging/logger.js";
import type { AdvisoryLocks, Lease } from "../advisory-locks.js";
import { InProcessAdvisoryLocks } from "../in-process-advisory-locks.js";
import { DedicatedConnection } from "./dedicated-connection.js";

/** The bigint key (as text) of the advisory lock named `name`. */
export function advisoryLockKey(name: string): string {
  return createHash("sha256").update(`mxcd-flight:${name}`).digest().readBigInt64BE(0).toString();
}

/** AdvisoryLocks shared by every process on one PostgreSQL database. */
export class PostgresAdvisoryLocks implements AdvisoryLocks {
  readonly #local = new InProcessAdvisoryLocks();
  readonly #connection: DedicatedConnection;

  constructor(url: string, logger: Logger) {
    this.#connection = new DedicatedConnection({ url, applicationName: "mxcd-locks", logger });
  }

  async tryAcquire(name: string): Promise<Lease | undefined> {
    const local = await this.#local.tryAcquire(name);
    if (!local) return undefined;
    const client = this.#connection.client;
    const generation = this.#connection.generation;
    if (!client) return local;
    const key = advisoryLockKey(name);
    let locked: boolean;
    try {
      const { rows } = await this.#connection.query<{ locked: boolean }>(
        client,
        "select pg_try_advisory_lock(cast($1 as bigint)) as locked",
        [key],
      );
      locked = rows[0]?.locked === true;
    } catch {
      return local; // The session broke: no lock to hold (see the design note).
    }
    if (!locked) {
      await local.release();
      return undefined;
    }
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        if (this.#connection.client === client && this.#connection.generation === generation) {
          await this.#connection
            .query(client, "select pg_advisory_unlock(cast($1 as bigint))", [key])
            .catch(() => this.#connection.recycle(client));
        }
        await local.release();
      },
    };
  }

  start(): Promise<void> {
    return this.#connection.start();
  }

  stop(): Promise<void> {
    return this.#connection.stop();
  }
}
