/**
 * Near-duplicate quarantine tests' shared parts (docs/trust-and-safety.md
 * "Near-duplicate quarantine"): a fake PDQ hasher whose hash is written in
 * the image bytes, feed and row checks, and a model of the rule (every row,
 * every provenance row) with random operations on the real service.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import type { Database, Db } from "../../src/db/database.js";
import type { PdqOutcome } from "../../src/domain/media-hashes.js";
import { hammingDistance } from "../../src/hashing/pdq.js";
import { createNearDuplicateCheck } from "../../src/jobs/create-near-duplicate-check.js";
import {
  NearDuplicateQuarantine,
  searchFinder,
} from "../../src/media/near-duplicate-quarantine.js";
import { PdqSearchService } from "../../src/media/pdq-search-service.js";
import { QuarantineService } from "../../src/media/quarantine-service.js";
import { MediaHashRepository } from "../../src/repositories/media-hash-repository.js";
import { PdqHashLogRepository } from "../../src/repositories/pdq-hash-log-repository.js";
import { QuarantinePropagationRepository } from "../../src/repositories/quarantine-propagation-repository.js";
import {
  QuarantineCandidates,
  QuarantineRepository,
} from "../../src/repositories/quarantine-repository.js";
import type { TestServer } from "./test-server.js";

export const ADMIN = "/_synapse/admin/v1";
export const D = 10;
export const PNG_MAGIC = Buffer.from("\x89PNG\r\n\x1a\n", "latin1");
export const REMOTE = "remote.example";

/** `base` with its first `n` bits flipped (bit k = hex digit k/4). */
export function flip(base: string, n: number, from = 0): string {
  const digits = base.split("").map((c) => Number.parseInt(c, 16));
  for (let k = from; k < from + n; k++) digits[k >> 2]! ^= 8 >> (k & 3);
  return digits.map((d) => d.toString(16)).join("");
}

export const BASE = createHash("sha256").update("base").digest("hex");
export const INSIDE = flip(BASE, D);
export const OUTSIDE = flip(BASE, D + 1);
export const FAR = flip(BASE, 100);

/** Fake PDQ hasher: the hash is written in the image's bytes after the PNG magic. */
export class WrittenPdqHasher {
  #gate: Promise<void> = Promise.resolve();
  #open = () => {};
  block(): void {
    this.#gate = new Promise((resolve) => {
      this.#open = resolve;
    });
  }
  release(): void {
    this.#open();
  }
  readonly hash = async (input: Buffer | string): Promise<PdqOutcome> => {
    await this.#gate;
    const text = Buffer.from(input).subarray(PNG_MAGIC.length, PNG_MAGIC.length + 64);
    return { hash: text.toString("latin1"), quality: 90 };
  };
}

/** An "image" whose fake PDQ is `pdq` (a random nonce keeps the SHA-256 unique). */
export function image(pdq: string, nonce = randomBytes(8).toString("hex")): Buffer {
  return Buffer.concat([PNG_MAGIC, Buffer.from(`${pdq}${nonce}`)]);
}

/** Replays the feed from 0: ids gapless, transitions alternating; returns the final state per item. */
export async function replayFeed(db: Db): Promise<Map<string, boolean>> {
  const records = await db
    .selectFrom("quarantined_media_changes")
    .selectAll()
    .orderBy("stream_id")
    .execute();
  const state = new Map<string, boolean>();
  let expected = Number(records[0]?.stream_id ?? 0);
  for (const r of records) {
    assert.equal(Number(r.stream_id), expected, "gapless ids");
    expected += 1;
    const key = `${r.origin ?? ""}/${r.media_id}`;
    assert.notEqual(Boolean(r.quarantined), state.get(key) ?? false, `duplicate for ${key}`);
    state.set(key, Boolean(r.quarantined));
  }
  const { position } = await db
    .selectFrom("quarantine_stream")
    .select("position")
    .executeTakeFirstOrThrow();
  if (records.length > 0) assert.equal(Number(position), expected - 1, "position = last id");
  return state;
}

/** Every row's quarantine state, keyed as replayFeed's. */
export async function rowStates(db: Db): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  for (const r of await db
    .selectFrom("local_media_repository")
    .select(["media_id", "quarantined_by"])
    .execute()) {
    out.set(`/${r.media_id}`, r.quarantined_by);
  }
  for (const r of await db
    .selectFrom("remote_media_cache")
    .select(["media_origin", "media_id", "quarantined_by"])
    .execute()) {
    out.set(`${r.media_origin}/${r.media_id}`, r.quarantined_by);
  }
  return out;
}

export async function assertFeedMatchesRows(db: Db): Promise<void> {
  const feed = await replayFeed(db);
  for (const [key, by] of await rowStates(db)) {
    assert.equal(feed.get(key) ?? false, by !== null, `feed vs row ${key}`);
  }
}

/** Feed records of one local item, as [quarantined, quarantined_by] pairs. */
export async function feedOf(db: Db, mediaId: string): Promise<[boolean, string | null][]> {
  const rows = await db
    .selectFrom("quarantined_media_changes")
    .select(["quarantined", "quarantined_by"])
    .where("media_id", "=", mediaId)
    .orderBy("stream_id")
    .execute();
  return rows.map((r) => [Boolean(r.quarantined), r.quarantined_by]);
}

// The model.

/** Deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Byte variants for one run: each a SHA-256 and the PDQ of its image (copies
 * share both). PDQs chain around D: 0-4 in, 0-9 in, 0-12 out but 4-12 in,
 * and a far pair. Each run has its own base, so runs on one database never
 * come near each other.
 */
export function variantsFor(run: string) {
  const base = createHash("sha256").update(`base-${run}`).digest("hex");
  const far = flip(base, 128, 64);
  const hashes = [base, flip(base, 4), flip(base, 9), flip(base, 12), far, flip(far, 3)];
  return Array.from({ length: 9 }, (_, v) => ({
    sha: createHash("sha256").update(`variant-${run}-${v}`).digest("hex"),
    pdq: hashes[v % hashes.length]!,
  }));
}

export interface ModelItem {
  readonly key: string;
  readonly origin: string | null;
  readonly mediaId: string;
  readonly sha: string;
  readonly pdq: string;
}

export interface ModelRow {
  by: string | null;
  pdq: string | null;
  protected: boolean;
}

/** The rule, operation by operation, on plain maps (see NearDuplicateQuarantine). */
export class Model {
  readonly rows = new Map<string, ModelRow>();
  readonly edges = new Set<string>(); // `${target}|${source}`
  readonly blocks = new Map<string, string>();
  constructor(
    readonly items: readonly ModelItem[],
    readonly d: number,
  ) {}

  #item(key: string): ModelItem {
    return this.items.find((i) => i.key === key)!;
  }
  #sha(key: string): string {
    return this.#item(key).sha;
  }
  held(key: string): boolean {
    for (const e of this.edges) if (e.startsWith(`${key}|`)) return true;
    return false;
  }
  #dropTargets(keys: Iterable<string>): void {
    for (const k of keys)
      for (const e of [...this.edges]) if (e.startsWith(`${k}|`)) this.edges.delete(e);
  }
  #siblings(key: string): string[] {
    return [...this.rows.keys()].filter((k) => this.#sha(k) === this.#sha(key));
  }
  #near(a: string | null, b: string | null): boolean {
    return a !== null && b !== null && hammingDistance(a, b) <= this.d;
  }
  #candidates(pdq: string): string[] {
    return [...this.rows].filter(([, r]) => this.#near(r.pdq, pdq)).map(([k]) => k);
  }
  #fromSource(source: string, pdq: string, by: string): void {
    for (const c of this.#candidates(pdq)) {
      if (c === source) continue;
      const r = this.rows.get(c)!;
      if (r.protected) continue;
      if (r.by === null) {
        r.by = by;
        this.edges.add(`${c}|${source}`);
      } else if (this.held(c)) this.edges.add(`${c}|${source}`);
    }
  }

  quarantine(key: string, by: string): void {
    const row = this.rows.get(key);
    const item = this.#item(key);
    if (!row) {
      if (item.origin !== null) this.blocks.set(key, this.blocks.get(key) ?? by);
      return;
    }
    // A protected item is not found at all: not even its copies are taken (as before).
    if (row.protected) return;
    for (const k of this.#siblings(key)) {
      const r = this.rows.get(k)!;
      if (r.by === null && !r.protected) r.by = by;
    }
    this.#dropTargets(this.#siblings(key));
    if (row.pdq !== null && row.by !== null && !this.held(key)) this.#fromSource(key, row.pdq, by);
  }

  unquarantine(key: string): void {
    const row = this.rows.get(key);
    if (!row) {
      this.blocks.delete(key);
      return;
    }
    const released = [key];
    for (const k of [key, ...this.#siblings(key)]) {
      const r = this.rows.get(k)!;
      if (r.by !== null) {
        r.by = null;
        released.push(k);
      }
    }
    this.#dropTargets(released);
    const targets = new Set<string>();
    for (const e of [...this.edges]) {
      const [t, s] = e.split("|") as [string, string];
      if (released.includes(s)) {
        this.edges.delete(e);
        targets.add(t);
      }
    }
    for (const t of targets) if (!this.held(t)) this.rows.get(t)!.by = null;
  }

  protect(key: string, safe: boolean): void {
    const row = this.rows.get(key);
    if (row && this.#item(key).origin === null) row.protected = safe;
  }

  admit(key: string): void {
    const item = this.#item(key);
    const sha = this.#sha(key);
    this.#dropTargets([key]);
    const row: ModelRow = { by: null, pdq: null, protected: false };
    const hashMatch = [...this.rows].some(([k, r]) => r.by !== null && this.#sha(k) === sha);
    const blockedBy = item.origin === null ? undefined : this.blocks.get(key);
    this.rows.set(key, row);
    const by = blockedBy ?? (hashMatch ? "system" : null);
    if (by === null) return;
    row.by = by;
    if (blockedBy) return;
    const sources = new Set<string>();
    for (const [k, r] of this.rows) {
      if (k === key || r.by === null || this.#sha(k) !== sha) continue;
      const held = [...this.edges].filter((e) => e.startsWith(`${k}|`));
      if (held.length === 0) return;
      for (const e of held) sources.add(e.split("|")[1]!);
    }
    for (const s of sources) this.edges.add(`${key}|${s}`);
  }

  hash(key: string): void {
    const row = this.rows.get(key);
    if (!row || row.pdq !== null) return;
    const pdq = this.#item(key).pdq;
    row.pdq = pdq;
    if (row.protected) return;
    if (row.by !== null) {
      if (!this.held(key)) this.#fromSource(key, pdq, "system");
      return;
    }
    const sources = this.#candidates(pdq).filter(
      (c) =>
        c !== key && this.rows.get(c)!.by !== null && !this.rows.get(c)!.protected && !this.held(c),
    );
    if (sources.length === 0) return;
    row.by = "system";
    for (const s of sources) this.edges.add(`${key}|${s}`);
  }
}

/**
 * The service under test on `database`, with the fallback scan as its
 * search, and a drain of the `near-duplicate-check` job over it (the job
 * row and lock are the server's: one consumer whoever drains).
 */
export function serviceOn(database: Database, server: TestServer) {
  const rows = new QuarantineRepository();
  const near = new NearDuplicateQuarantine(
    D,
    searchFinder(new PdqSearchService(new PdqHashLogRepository(database), "test.local")),
    new QuarantinePropagationRepository(),
    rows,
  );
  const service = new QuarantineService(
    "test.local",
    database,
    rows,
    new QuarantineCandidates(),
    server.app.mediaChanges,
    { notify() {} },
    Date.now,
    near,
  );
  const { drain } = createNearDuplicateCheck({
    database,
    near,
    quarantine: service,
    logger: quiet,
  });
  return { service, drain };
}

export const quiet = { info() {} };

/** Runs one random operation on the service (and the model, when given). */
export async function operate(
  random: () => number,
  items: readonly ModelItem[],
  { service, drain }: ReturnType<typeof serviceOn>,
  database: Database,
  model?: Model,
): Promise<string> {
  const db = database.db;
  const item = items[Math.floor(random() * items.length)]!;
  const target = { local: [] as string[], remote: [] as { origin: string; mediaId: string }[] };
  if (item.origin === null) target.local.push(item.mediaId);
  else target.remote.push({ origin: item.origin, mediaId: item.mediaId });
  const variant = item;
  const roll = random();
  if (roll < 0.25) {
    const by = random() < 0.5 ? "@admin:test.local" : "@mod:test.local";
    await service.quarantine(target, by);
    model?.quarantine(item.key, by);
    return `quarantine ${item.key}`;
  }
  if (roll < 0.45) {
    await service.unquarantine(target);
    model?.unquarantine(item.key);
    return `unquarantine ${item.key}`;
  }
  if (roll < 0.5 && item.origin === null) {
    const safe = random() < 0.5;
    await db
      .updateTable("local_media_repository")
      .set({ safe_from_quarantine: safe })
      .where("media_id", "=", item.mediaId)
      .execute();
    model?.protect(item.key, safe);
    return `protect ${item.key} ${safe}`;
  }
  if (roll < 0.75) {
    const exists = await admitted(db, item);
    if (exists) return "noop";
    if (item.origin === null) {
      await service.admitLocal(item.mediaId, variant.sha, async (tx) => {
        await tx
          .insertInto("local_media_repository")
          .values({
            media_id: item.mediaId,
            media_type: "image/png",
            media_length: 1,
            created_ts: Date.now(),
            upload_name: null,
            user_id: "@u:test.local",
            quarantined_by: null,
            url_cache: null,
            last_access_ts: null,
            safe_from_quarantine: false,
            authenticated: true,
            sha256: variant.sha,
          })
          .onConflict((oc) => oc.doNothing())
          .execute();
      });
    } else {
      await service.admitRemote(item.origin, item.mediaId, variant.sha, async (tx) => {
        await tx
          .insertInto("remote_media_cache")
          .values({
            media_origin: item.origin!,
            media_id: item.mediaId,
            media_type: "image/png",
            media_length: 1,
            created_ts: Date.now(),
            upload_name: null,
            filesystem_id: item.mediaId.padEnd(24, "x"),
            last_access_ts: Date.now(),
            authenticated: true,
            sha256: variant.sha,
          })
          .onConflict((oc) => oc.doNothing())
          .execute();
      });
    }
    model?.admit(item.key);
    return `admit ${item.key}`;
  }
  // Hash: recorded (once) as the queue does (no transaction) or as the
  // backfill does (in its batch's transaction); the check job, drained,
  // reads it from the hash log.
  const hashes = new MediaHashRepository(database);
  const subject =
    item.origin === null
      ? ({ kind: "local", mediaId: item.mediaId } as const)
      : ({ kind: "remote", origin: item.origin, mediaId: item.mediaId } as const);
  const columns = {
    pdq: variant.pdq,
    pdq_status: "hashed" as const,
    pdq_quality: 90,
    pdq_reason: null,
  };
  if (random() < 0.5) await hashes.record(subject, columns);
  else await database.transaction((tx) => hashes.record(subject, columns, null, tx));
  await drain.drain();
  model?.hash(item.key);
  return `hash ${item.key}`;
}

export async function admitted(db: Db, item: ModelItem): Promise<boolean> {
  if (item.origin === null) {
    return (
      (await db
        .selectFrom("local_media_repository")
        .select("media_id")
        .where("media_id", "=", item.mediaId)
        .executeTakeFirst()) !== undefined
    );
  }
  return (
    (await db
      .selectFrom("remote_media_cache")
      .select("media_id")
      .where("media_origin", "=", item.origin)
      .where("media_id", "=", item.mediaId)
      .executeTakeFirst()) !== undefined
  );
}

export function makeItems(prefix: string, local: number, remote: number, random: () => number) {
  const variants = variantsFor(prefix);
  const items: ModelItem[] = [];
  for (let i = 0; i < local + remote; i++) {
    const origin = i < local ? null : REMOTE;
    const mediaId = `${prefix}${i}`;
    items.push({
      key: `${origin ?? ""}/${mediaId}`,
      origin,
      mediaId,
      ...variants[Math.floor(random() * variants.length)]!,
    });
  }
  return items;
}
