/**
 * `mxcd import synapse --verify`: after an import, re-reads both copies of
 * every imported item — Synapse's file (media_store_path or the provider's
 * bucket) and the object in mxcd's store — and checks that their lengths and
 * SHA-256 agree with each other and with what mxcd recorded (the row's
 * `media_length`/`sha256`, a thumbnail's length). A separate, read-only
 * invocation: it writes nothing anywhere and can be run any number of times.
 *
 * It walks the Synapse source in the import's order (keyset pages); rows
 * mxcd does not hold (skipped, missing or mismatched at import time)
 * are counted "not imported" and not read. A few items are read
 * at once; memory is bounded by the stream chunks in flight.
 */
import { createHash } from "node:crypto";
import type { Database } from "../db/database.js";
import { ImportLookupRepository } from "../repositories/import-lookup-repository.js";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";
import { forEachBounded } from "./bounded-each.js";
import { localPlacement, remoteKey, remoteThumbnailKeys, thumbnailItem } from "./import-keys.js";
import { IMPORT_KINDS, type ImportKind, MAX_LISTED } from "./import-report.js";
import type { MediaSource } from "./media-source.js";
import type { SynapseSource, SynapseThumbnail } from "./synapse-source.js";

export interface VerifyCounts {
  /** Imported items read on both sides. */
  checked: number;
  /** Bytes read from mxcd's store. */
  bytes: number;
  agree: number;
  /** Lengths or hashes disagree. */
  differ: number;
  /** The source file or the store object is absent or unreadable. */
  missing: number;
  /** Not in mxcd (not read). */
  notImported: number;
}

export interface VerifyProblem {
  readonly kind: ImportKind;
  readonly item: string;
  readonly outcome: "differ" | "missing";
  readonly problem: string;
}

export interface VerifyResult {
  readonly counts: Record<ImportKind, VerifyCounts>;
  readonly problems: VerifyProblem[];
  problemsNotListed: number;
  /** True when the signal stopped the walk early. */
  stopped: boolean;
}

export interface VerifyOptions {
  /** mxcd's database (read only here). */
  readonly database: Database;
  readonly source: SynapseSource;
  readonly files: MediaSource;
  readonly store: BlobStore;
  readonly batchSize?: number;
  readonly concurrency?: number;
  readonly signal?: AbortSignal;
  /** Source rows walked so far. */
  readonly onProgress?: (processed: number) => void;
}

/** One item to compare: where its bytes are on each side and what mxcd recorded. */
interface Pair {
  readonly kind: ImportKind;
  readonly item: string;
  readonly sourceKey: string;
  readonly destKey: string;
  readonly length: number;
  readonly sha256: string | null;
}

/** Walks every source row and compares the imported ones; see the module note. */
export async function verifySynapseImport(options: VerifyOptions): Promise<VerifyResult> {
  const result: VerifyResult = {
    counts: Object.fromEntries(
      IMPORT_KINDS.map((k) => [
        k,
        { checked: 0, bytes: 0, agree: 0, differ: 0, missing: 0, notImported: 0 },
      ]),
    ) as Record<ImportKind, VerifyCounts>,
    problems: [],
    problemsNotListed: 0,
    stopped: false,
  };
  const batchSize = options.batchSize ?? 500;
  const pairs = new PairFinder(options);
  const compare = (pair: Pair | ImportKind) =>
    typeof pair === "string"
      ? void result.counts[pair].notImported++
      : comparePair(options, pair, result);
  let processed = 0;
  const run = async (found: (Pair | ImportKind)[], rows: number) => {
    await forEachBounded(found, options.concurrency ?? 4, async (p) => compare(p));
    processed += rows;
    options.onProgress?.(processed);
  };
  let after = "";
  for (;;) {
    if (options.signal?.aborted) return { ...result, stopped: true };
    const rows = await options.source.localPage(after, batchSize);
    const thumbs = await options.source.localThumbnails(rows.map((r) => r.mediaId));
    const found: (Pair | ImportKind)[] = [];
    for (const row of rows) found.push(...(await pairs.local(row, thumbs)));
    await run(found, rows.length);
    if (rows.length < batchSize) break;
    after = rows.at(-1)!.mediaId;
  }
  let position = { origin: "", mediaId: "" };
  for (;;) {
    if (options.signal?.aborted) return { ...result, stopped: true };
    const rows = await options.source.remotePage(position, batchSize);
    const found: (Pair | ImportKind)[] = [];
    const origins = [...new Set(rows.map((r) => r.origin))];
    for (const origin of origins) {
      const group = rows.filter((r) => r.origin === origin);
      const thumbs = await options.source.remoteThumbnails(
        origin,
        group.map((r) => r.mediaId),
      );
      for (const row of group) {
        const mine = thumbs.filter((t) => t.mediaId === row.mediaId);
        found.push(...(await pairs.remote(row, mine)));
      }
    }
    await run(found, rows.length);
    if (rows.length < batchSize) break;
    position = { origin: rows.at(-1)!.origin, mediaId: rows.at(-1)!.mediaId };
  }
  return result;
}

/** Turns source rows into pairs to compare (or the kind, when mxcd does not hold the item). */
class PairFinder {
  readonly #lookup = new ImportLookupRepository();
  constructor(private readonly options: VerifyOptions) {}

  async local(
    row: Awaited<ReturnType<SynapseSource["localPage"]>>[number],
    thumbs: SynapseThumbnail[],
  ): Promise<(Pair | ImportKind)[]> {
    const mine = thumbs.filter((t) => t.mediaId === row.mediaId);
    // URL-preview media lives under url_cache/ and url_cache_thumbnails/.
    const { kind, thumbKind, contentKey, thumbnailKey } = localPlacement(row);
    const recorded = await this.#lookup.local(this.options.database.db, row.mediaId);
    const key = safe(contentKey);
    if (!recorded || key === undefined) return [kind, ...mine.map(() => thumbKind)];
    const out: (Pair | ImportKind)[] = [
      {
        kind,
        item: row.mediaId,
        sourceKey: key,
        destKey: key,
        ...recorded,
        length: recorded.mediaLength,
      },
    ];
    for (const t of mine) {
      const k = safe(() => thumbnailKey(t));
      out.push(await this.#thumbnail(t, thumbKind, k, k));
    }
    return out;
  }

  async remote(
    row: Awaited<ReturnType<SynapseSource["remotePage"]>>[number],
    thumbs: SynapseThumbnail[],
  ): Promise<(Pair | ImportKind)[]> {
    const recorded = await this.#lookup.remote(this.options.database.db, row.origin, row.mediaId);
    const key = safe(() => remoteKey(row));
    if (!recorded || key === undefined) {
      return ["remote", ...thumbs.map(() => "remote_thumbnail" as const)];
    }
    const item = `${row.origin}/${row.mediaId}`;
    const out: (Pair | ImportKind)[] = [
      {
        kind: "remote",
        item,
        sourceKey: key,
        destKey: key,
        ...recorded,
        length: recorded.mediaLength,
      },
    ];
    for (const t of thumbs) {
      const keys = remoteThumbnailKeys(row, t);
      const k = safe(keys.key);
      // The import copied a legacy-named file to the current name; the source may only have the old one.
      let source = k;
      if (k !== undefined && !(await this.options.files.probe(k)).ok) {
        source = safe(keys.legacyKey);
      }
      out.push(await this.#thumbnail(t, "remote_thumbnail", source, k));
    }
    return out;
  }

  async #thumbnail(
    t: SynapseThumbnail,
    kind: ImportKind,
    sourceKey: string | undefined,
    destKey: string | undefined,
  ): Promise<Pair | ImportKind> {
    const length = await this.#lookup.thumbnail(this.options.database.db, t);
    if (length === undefined || sourceKey === undefined || destKey === undefined) return kind;
    const item = thumbnailItem(t);
    return { kind, item, sourceKey, destKey, length, sha256: null };
  }
}

/** Reads both sides of one pair and counts the outcome. */
async function comparePair(options: VerifyOptions, pair: Pair, result: VerifyResult) {
  const counts = result.counts[pair.kind];
  counts.checked++;
  const [source, stored] = await Promise.all([
    digest(() => options.files.read(pair.sourceKey)),
    digest(() => options.store.read(pair.destKey)),
  ]);
  const list = (outcome: "differ" | "missing", problem: string) => {
    counts[outcome]++;
    if (result.problems.length < MAX_LISTED) {
      result.problems.push({ kind: pair.kind, item: pair.item, outcome, problem });
    } else result.problemsNotListed++;
  };
  if (typeof stored !== "string") counts.bytes += stored.size;
  if (typeof source === "string") return list("missing", `Synapse's file: ${source}`);
  if (typeof stored === "string") return list("missing", `mxcd's object: ${stored}`);
  const expected = pair.sha256 ?? source.sha256;
  if (stored.size !== pair.length || stored.sha256 !== expected) {
    return list("differ", `mxcd's object: ${stored.size} bytes, sha256 ${stored.sha256}`);
  }
  if (source.size !== pair.length || source.sha256 !== expected) {
    return list("differ", `Synapse's file: ${source.size} bytes, sha256 ${source.sha256}`);
  }
  counts.agree++;
}

/** Size and SHA-256 of a stream, or why it could not be read. */
async function digest(
  open: () => Promise<NodeJS.ReadableStream>,
): Promise<{ size: number; sha256: string } | string> {
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const chunk of await open()) {
      size += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
    }
  } catch (error) {
    return error instanceof BlobNotFoundError ? "missing" : "unreadable";
  }
  return { size, sha256: hash.digest("hex") };
}

/** The key, or undefined when an id or origin is not a safe path component. */
function safe(key: () => string): string | undefined {
  try {
    return key();
  } catch {
    return undefined;
  }
}

/** The verify table, then every listed problem. */
export function formatVerifyReport(result: VerifyResult): string {
  const head = ["kind", "checked", "MiB", "agree", "differ", "missing", "not imported"];
  const rows = IMPORT_KINDS.map((kind) => {
    const c = result.counts[kind];
    const mib = (c.bytes / 1024 / 1024).toFixed(1);
    return [kind, c.checked, mib, c.agree, c.differ, c.missing, c.notImported].map(String);
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  const out = [line(head), ...rows.map(line)];
  for (const p of result.problems) out.push(`${p.outcome} ${p.kind} ${p.item}: ${p.problem}`);
  if (result.problemsNotListed > 0) out.push(`... and ${result.problemsNotListed} more not listed`);
  return out.join("\n");
}

/** Items that differ or are missing (the command exits non-zero when > 0). */
export function verifyDisagreements(result: VerifyResult): number {
  return IMPORT_KINDS.reduce((n, k) => n + result.counts[k].differ + result.counts[k].missing, 0);
}
