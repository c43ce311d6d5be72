/**
 * Advisory locks within one process (SQLite, tests): a set of held names.
 * Also the local half of the PostgreSQL locks, whose session locks are
 * re-entrant and so do not exclude two callers in the same process.
 */
import type { AdvisoryLocks, Lease } from "./advisory-locks.js";

/** AdvisoryLocks that exclude callers of this process only. */
export class InProcessAdvisoryLocks implements AdvisoryLocks {
  readonly #held = new Set<string>();

  async tryAcquire(name: string): Promise<Lease | undefined> {
    if (this.#held.has(name)) return undefined;
    this.#held.add(name);
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        this.#held.delete(name);
      },
    };
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}
}
