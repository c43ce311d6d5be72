/**
 * "Run this once the change is committed", for repositories that write
 * inside a caller's transaction and must announce the change afterwards
 * (cache invalidation, docs/deployment.md "Caches"). A repository calls
 * `afterCommit(db, fn)` right after its statement: on a transaction, `fn`
 * runs when `Database.transaction` has committed it (and never on rollback);
 * outside one, the statement was its own commit, so `fn` runs at once.
 */
import type { Db, Tx } from "./database.js";

/** Callbacks of open transactions; a rolled-back one's entry is garbage with its `tx`. */
const pending = new WeakMap<object, Array<() => void>>();

/** Runs `callback` after `db`'s commit (at once when `db` is not a transaction). */
export function afterCommit(db: Db, callback: () => void): void {
  if (!db.isTransaction) {
    callback();
    return;
  }
  let callbacks = pending.get(db);
  if (!callbacks) {
    callbacks = [];
    pending.set(db, callbacks);
  }
  callbacks.push(callback);
}

/** Runs `work` in a transaction of `db`, then the callbacks registered on it (see above). */
export async function transactionWithCallbacks<T>(
  db: Db,
  work: (tx: Tx) => Promise<T>,
): Promise<T> {
  let used: object | undefined;
  const result = await db.transaction().execute((tx) => {
    used = tx;
    return work(tx);
  });
  const callbacks = used && pending.get(used);
  if (used) pending.delete(used);
  for (const callback of callbacks ?? []) callback();
  return result;
}
