/**
 * The quarantine change feed continued from Synapse's (docs/import.md,
 * "Quarantine feed consumers"): an HMA-style consumer polling Synapse's
 * `quarantine_changes` can be pointed at mxcd with its checkpoint unchanged.
 *
 * Design note. Synapse's feed ends at its highest `stream_id` S (schema 94+;
 * no stream before). Two things make mxcd's feed its continuation:
 * 1. Before the import writes anything, mxcd's feed position is raised to S
 *    (never lowered), so every later mxcd record has an id above S and a
 *    `from=S` request is valid. mxcd's own records below S (if any) stay.
 * 2. Each imported item whose state Synapse's stream does not end with gets
 *    one record of its state, in the transaction that inserts its row: a
 *    quarantined item (`quarantined_by` set) without a record of it, or whose
 *    newest record says `quarantined: false` (Synapse records neither the
 *    automatic `system` quarantine at upload nor anything before schema 94),
 *    gets `quarantined: true`; a free item whose newest record says
 *    `quarantined: true` (released behind the stream's back, e.g. in SQL)
 *    gets `quarantined: false`.
 *    Rows already present in mxcd are never recorded again, and a rolled-back
 *    page records nothing, so a killed and re-run import records each item
 *    exactly once. Items Synapse's stream already reported are not repeated.
 *
 * The `quarantine-feed-backfill` job would record the imported items Synapse
 * already reported a second time (it knows only mxcd's feed), so the import
 * runs that job to completion before its first page (synapse-import.ts): it
 * then never sees an imported row.
 */
import type { Tx } from "../db/database.js";
import type { QuarantineRepository, Transition } from "../repositories/quarantine-repository.js";
import type { StreamState } from "./synapse-source.js";

/** An imported row whose state the feed must report (quarantinedBy null: released). */
export interface FeedCandidate extends Transition {
  readonly quarantinedBy: string | null;
}

/** True for a row whose state Synapse's stream does not end with. */
export function missingFromStream(row: {
  quarantinedBy: string | null;
  streamQuarantined: StreamState;
}): boolean {
  return row.quarantinedBy !== null
    ? row.streamQuarantined !== true
    : row.streamQuarantined === true;
}

/**
 * Appends one record per candidate (its state, sha256 and who quarantined
 * it), in `tx`; ids come from the feed position in this transaction, so in
 * commit order. Returns how many were appended.
 */
export async function recordImportedQuarantines(
  tx: Tx,
  quarantine: QuarantineRepository,
  candidates: readonly FeedCandidate[],
  ts: number,
): Promise<number> {
  const byQuarantiner = new Map<string | null, Transition[]>();
  for (const c of candidates) {
    const group = byQuarantiner.get(c.quarantinedBy) ?? [];
    group.push({ origin: c.origin, mediaId: c.mediaId, sha256: c.sha256 });
    byQuarantiner.set(c.quarantinedBy, group);
  }
  for (const [by, transitions] of byQuarantiner) {
    await quarantine.appendChanges(tx, transitions, by, ts);
  }
  return candidates.length;
}
