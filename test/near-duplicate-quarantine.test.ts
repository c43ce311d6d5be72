/**
 * Near-duplicate quarantine (docs/trust-and-safety.md "Near-duplicate
 * quarantine"), on SQLite and PostgreSQL:
 * - over HTTP with a fake hasher whose PDQ is written in the uploaded bytes:
 *   an admin's quarantine takes stored images just inside the distance and
 *   not those just outside or protected, each once in the feed; a later
 *   upload within the distance is quarantined by `system` (and the caches
 *   forget it); unquarantine releases exactly what was propagated; off by
 *   default nothing propagates;
 * - a random model test: quarantine, unquarantine, protect, admit and hash
 *   operations over a small set of hashes, checked after every operation
 *   against a model of the rule (every row, every provenance row), and the
 *   feed replayed (gapless, alternating, ending in the rows' state);
 * - on PostgreSQL, random operations from several independent connection
 *   pools at once, and admin quarantines through a second real `mxcd serve`
 *   process, keep the feed gapless and exactly-once.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { createDatabase, type Database, type Db } from "../src/db/database.js";
import type { PdqOutcome } from "../src/domain/media-hashes.js";
import { hammingDistance } from "../src/hashing/pdq.js";
import { NearDuplicateQuarantine, searchFinder } from "../src/media/near-duplicate-quarantine.js";
import { withPdqRecordedHook } from "../src/media/pdq-recorded-hook.js";
import { PdqSearchService } from "../src/media/pdq-search-service.js";
import { QuarantineService } from "../src/media/quarantine-service.js";
import { MediaHashRepository } from "../src/repositories/media-hash-repository.js";
import { PdqHashLogRepository } from "../src/repositories/pdq-hash-log-repository.js";
import { QuarantinePropagationRepository } from "../src/repositories/quarantine-propagation-repository.js";
import {
  QuarantineCandidates,
  QuarantineRepository,
} from "../src/repositories/quarantine-repository.js";
import { forEachEngine } from "./support/databases.js";
import { HttpClient } from "./support/http-client.js";
import { download, quarantinedBy, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import {
  type SecondProcess,
  startSecondProcess,
  stopSecondProcess,
} from "./support/second-process.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const ADMIN = "/_synapse/admin/v1";
const D = 10;
const PNG_MAGIC = Buffer.from("\x89PNG\r\n\x1a\n", "latin1");
const REMOTE = "remote.example";

/** `base` with its first `n` bits flipped (bit k = hex digit k/4). */
function flip(base: string, n: number, from = 0): string {
  const digits = base.split("").map((c) => Number.parseInt(c, 16));
  for (let k = from; k < from + n; k++) digits[k >> 2]! ^= 8 >> (k & 3);
  return digits.map((d) => d.toString(16)).join("");
}

const BASE = createHash("sha256").update("base").digest("hex");
const INSIDE = flip(BASE, D);
const OUTSIDE = flip(BASE, D + 1);
const FAR = flip(BASE, 100);

/** Fake PDQ hasher: the hash is written in the image's bytes after the PNG magic. */
class WrittenPdqHasher {
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
function image(pdq: string, nonce = randomBytes(8).toString("hex")): Buffer {
  return Buffer.concat([PNG_MAGIC, Buffer.from(`${pdq}${nonce}`)]);
}

/** Replays the feed from 0: ids gapless, transitions alternating; returns the final state per item. */
async function replayFeed(db: Db): Promise<Map<string, boolean>> {
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
async function rowStates(db: Db): Promise<Map<string, string | null>> {
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

async function assertFeedMatchesRows(db: Db): Promise<void> {
  const feed = await replayFeed(db);
  for (const [key, by] of await rowStates(db)) {
    assert.equal(feed.get(key) ?? false, by !== null, `feed vs row ${key}`);
  }
}

/** Feed records of one local item, as [quarantined, quarantined_by] pairs. */
async function feedOf(db: Db, mediaId: string): Promise<[boolean, string | null][]> {
  const rows = await db
    .selectFrom("quarantined_media_changes")
    .select(["quarantined", "quarantined_by"])
    .where("media_id", "=", mediaId)
    .orderBy("stream_id")
    .execute();
  return rows.map((r) => [Boolean(r.quarantined), r.quarantined_by]);
}

forEachEngine("near-duplicate quarantine over HTTP", (engine) => {
  const hasher = new WrittenPdqHasher();
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;

  before(async () => {
    server = await startTestServer(
      engine,
      { quarantine_similar: { pdq_max_distance: D }, thumbnail_sizes: [] },
      { appOptions: { pdqHasher: hasher.hash } },
    );
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  const db = () => server.app.database.db;
  let uploaded = 0;
  /**
   * Uploads an image with this PDQ and waits until its hash and its
   * quarantine check are done: the queue counts an outcome only after both.
   */
  const upload = async (pdq: string) => {
    const id = await uploadBytes(alice.http, image(pdq), { contentType: "image/png" });
    uploaded += 1;
    await waitFor(
      async () =>
        (await metric(server.baseUrl, "mxcd_media_hash_outcomes_total", 'outcome="hashed"')) >=
        uploaded,
      `PDQ of ${id}`,
    );
    return id;
  };
  const post = (http: HttpClient, path: string) => http.post(`${ADMIN}${path}`);
  const remoteBy = async (id: string) =>
    (
      await db()
        .selectFrom("remote_media_cache")
        .select("quarantined_by")
        .where("media_id", "=", id)
        .executeTakeFirstOrThrow()
    ).quarantined_by;

  it("propagates to images within the distance, releases exactly them", async () => {
    const a = await upload(BASE);
    const inside = await upload(INSIDE);
    const outside = await upload(OUTSIDE);
    const far = await upload(FAR);
    const guarded = await upload(INSIDE);
    assert.equal((await post(admin.http, `/media/protect/${guarded}`)).status, 200);
    await db()
      .insertInto("remote_media_cache")
      .values({
        media_origin: REMOTE,
        media_id: "NearRemote",
        media_type: "image/png",
        media_length: 1,
        created_ts: Date.now(),
        upload_name: null,
        filesystem_id: "NearRemoteFile".padEnd(24, "x"),
        last_access_ts: Date.now(),
        authenticated: true,
        sha256: "ab".repeat(32),
      })
      .execute();
    // Its hash written as the hashing queue would (and so logged for the search).
    await new MediaHashRepository(server.app.database).record(
      { kind: "remote", origin: REMOTE, mediaId: "NearRemote" },
      { pdq: flip(BASE, D, 100), pdq_status: "hashed", pdq_quality: 90, pdq_reason: null },
    );
    // Nothing is quarantined yet, so hashing alone changed nothing.
    for (const id of [a, inside, outside, far, guarded]) {
      assert.equal(await quarantinedBy(server, id), null);
    }

    assert.equal((await post(admin.http, `/media/quarantine/test.local/${a}`)).status, 200);
    assert.equal(await quarantinedBy(server, a), admin.userId);
    assert.equal(await quarantinedBy(server, inside), admin.userId, "just inside: taken");
    assert.equal(await remoteBy("NearRemote"), admin.userId, "cached remote: taken");
    assert.equal(await quarantinedBy(server, outside), null, "just outside: left");
    assert.equal(await quarantinedBy(server, far), null);
    assert.equal(await quarantinedBy(server, guarded), null, "protected: left");
    assert.deepEqual(await feedOf(db(), inside), [[true, admin.userId]]);
    assert.deepEqual(await feedOf(db(), "NearRemote"), [[true, admin.userId]]);
    assert.deepEqual(await feedOf(db(), outside), []);

    // A later image within the distance: quarantined by `system` once its
    // hash arrives, and the metadata cache forgets its row (200, then 404).
    hasher.block();
    const late = await uploadBytes(alice.http, image(INSIDE), { contentType: "image/png" });
    uploaded += 1;
    assert.equal(
      (
        await download(server.baseUrl, `/_matrix/client/v1/media/download/test.local/${late}`, {
          token: alice.token,
        })
      ).status,
      200,
    );
    hasher.release();
    await waitFor(async () => (await quarantinedBy(server, late)) === "system", "late quarantine");
    assert.equal(
      (
        await download(server.baseUrl, `/_matrix/client/v1/media/download/test.local/${late}`, {
          token: alice.token,
        })
      ).status,
      404,
    );
    assert.deepEqual(await feedOf(db(), late), [[true, "system"]]);
    const lateOutside = await upload(OUTSIDE);
    assert.equal(await quarantinedBy(server, lateOutside), null);

    // Release: exactly what the quarantine propagated goes free.
    assert.equal((await post(admin.http, `/media/unquarantine/test.local/${a}`)).status, 200);
    for (const id of [a, inside, late]) assert.equal(await quarantinedBy(server, id), null, id);
    assert.equal(await remoteBy("NearRemote"), null);
    assert.deepEqual(await feedOf(db(), late), [
      [true, "system"],
      [false, null],
    ]);
    assert.deepEqual(await feedOf(db(), outside), []);
    await assertFeedMatchesRows(db());
  });

  it("keeps a directly quarantined target, and a target held by another source", async () => {
    // a and b are 12 apart (no propagation between them); target is 6 from
    // each; direct is 5 from a but 11 from target and 17 from b.
    const g = createHash("sha256").update("second family").digest("hex");
    const a = await upload(g);
    const b = await upload(flip(g, 12));
    const target = await upload(flip(g, 6));
    const direct = await upload(flip(g, 5, 100));
    await post(admin.http, `/media/quarantine/test.local/${a}`);
    assert.equal(await quarantinedBy(server, direct), admin.userId, "held by a");
    await post(admin.http, `/media/quarantine/test.local/${b}`);
    await post(admin.http, `/media/quarantine/test.local/${direct}`);
    assert.equal(await quarantinedBy(server, target), admin.userId);
    await post(admin.http, `/media/unquarantine/test.local/${a}`);
    assert.equal(await quarantinedBy(server, target), admin.userId, "still held by b");
    assert.equal(await quarantinedBy(server, direct), admin.userId, "quarantined directly");
    await post(admin.http, `/media/unquarantine/test.local/${b}`);
    assert.equal(await quarantinedBy(server, target), null, "no source left");
    assert.equal(await quarantinedBy(server, direct), admin.userId);
    await assertFeedMatchesRows(db());
  });
});

forEachEngine("near-duplicate quarantine off by default", (engine) => {
  const hasher = new WrittenPdqHasher();
  let server: TestServer;
  before(async () => {
    server = await startTestServer(
      engine,
      { thumbnail_sizes: [] },
      { appOptions: { pdqHasher: hasher.hash } },
    );
  });
  after(() => server.stop());

  it("propagates nothing", async () => {
    assert.equal(server.app.config.quarantine_similar.pdq_max_distance, null);
    const admin = await server.user("admin", { admin: true });
    const alice = await server.user("alice");
    const ids: string[] = [];
    for (const pdq of [BASE, BASE, INSIDE]) {
      ids.push(await uploadBytes(alice.http, image(pdq), { contentType: "image/png" }));
    }
    await waitFor(async () => {
      const rows = await server.app.database.db
        .selectFrom("local_media_repository")
        .select("pdq_status")
        .where("pdq_status", "is not", null)
        .execute();
      return rows.length === 3;
    }, "hashes");
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${ids[0]}`);
    assert.equal(await quarantinedBy(server, ids[1]!), null);
    assert.equal(await quarantinedBy(server, ids[2]!), null);
    const later = await uploadBytes(alice.http, image(BASE), { contentType: "image/png" });
    await waitFor(async () => {
      const row = await server.app.database.db
        .selectFrom("local_media_repository")
        .select("pdq_status")
        .where("media_id", "=", later)
        .executeTakeFirstOrThrow();
      return row.pdq_status !== null;
    }, "later hash");
    assert.equal(await quarantinedBy(server, later), null);
  });
});

// ---------------------------------------------------------------------------
// The model.

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
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
function variantsFor(run: string) {
  const base = createHash("sha256").update(`base-${run}`).digest("hex");
  const far = flip(base, 128, 64);
  const hashes = [base, flip(base, 4), flip(base, 9), flip(base, 12), far, flip(far, 3)];
  return Array.from({ length: 9 }, (_, v) => ({
    sha: createHash("sha256").update(`variant-${run}-${v}`).digest("hex"),
    pdq: hashes[v % hashes.length]!,
  }));
}

interface ModelItem {
  readonly key: string;
  readonly origin: string | null;
  readonly mediaId: string;
  readonly sha: string;
  readonly pdq: string;
}

interface ModelRow {
  by: string | null;
  pdq: string | null;
  protected: boolean;
}

/** The rule, operation by operation, on plain maps (see NearDuplicateQuarantine). */
class Model {
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

/** The service under test on `database`, with the fallback scan as its search. */
function serviceOn(database: Database, server: TestServer) {
  const rows = new QuarantineRepository();
  return new QuarantineService(
    "test.local",
    database,
    rows,
    new QuarantineCandidates(),
    server.app.mediaChanges,
    { notify() {} },
    Date.now,
    new NearDuplicateQuarantine(
      D,
      searchFinder(new PdqSearchService(new PdqHashLogRepository(database), "test.local")),
      new QuarantinePropagationRepository(),
      rows,
    ),
  );
}

/** Runs one random operation on the service (and the model, when given). */
async function operate(
  random: () => number,
  items: readonly ModelItem[],
  service: QuarantineService,
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
  // Hash: recorded (once) through the stored-hash repository and the hook,
  // as the queue does (no transaction: the hook is awaited) or as the
  // backfill does (in its batch's transaction: the hook runs after commit).
  let hook: Promise<unknown> = Promise.resolve();
  const hashes = withPdqRecordedHook(
    new MediaHashRepository(database),
    (subject, pdq) => {
      hook = service.pdqRecorded(
        { origin: subject.kind === "local" ? null : subject.origin, mediaId: subject.mediaId },
        pdq,
      );
      return hook;
    },
    { warn: (e: unknown) => assert.fail(String((e as { err?: unknown }).err)) },
  );
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
  await hook;
  model?.hash(item.key);
  return `hash ${item.key}`;
}

async function admitted(db: Db, item: ModelItem): Promise<boolean> {
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

function makeItems(prefix: string, local: number, remote: number, random: () => number) {
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

forEachEngine("near-duplicate quarantine model", (engine) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(engine, { thumbnail_sizes: [] });
  });
  after(() => server.stop());

  for (const seed of [1, 2, 3]) {
    it(`follows the model over random operations (seed ${seed})`, async () => {
      const random = prng(seed);
      const items = makeItems(`M${seed}x`, 12, 4, random);
      const model = new Model(items, D);
      const database = server.app.database;
      const service = serviceOn(database, server);
      const log: string[] = [];
      let mostEdges = 0;
      for (let n = 0; n < 400; n++) {
        log.push(await operate(random, items, service, database, model));
        mostEdges = Math.max(mostEdges, model.edges.size);
        const rows = await rowStates(database.db);
        for (const item of items) {
          const row = model.rows.get(item.key);
          assert.equal(rows.has(item.key), row !== undefined, item.key);
          if (!row) continue;
          assert.equal(rows.get(item.key), row.by, `${item.key} after ${log.slice(-5).join("; ")}`);
        }
        const edges = await database.db
          .selectFrom("quarantine_propagations")
          .selectAll()
          .where("target_media_id", "like", `M${seed}x%`)
          .execute();
        assert.deepEqual(
          edges
            .map(
              (e) =>
                `${e.target_origin}/${e.target_media_id}|${e.source_origin}/${e.source_media_id}`,
            )
            .sort(),
          [...model.edges].sort(),
          `provenance after ${log.slice(-5).join("; ")}`,
        );
      }
      await assertFeedMatchesRows(database.db);
      // The run exercised the rule: propagation happened, and so did releases by it.
      assert.ok(mostEdges > 1, "propagation happened");
    });
  }
});

describe("near-duplicate quarantine, concurrent writers [postgres]", () => {
  if (!process.env.MXCD_TEST_POSTGRES_URL) return;
  let server: TestServer;
  let second: SecondProcess | undefined;
  before(async () => {
    server = await startTestServer("postgres", { thumbnail_sizes: [] });
    // A second real `mxcd serve` on the same database, quarantining over HTTP.
    second = await startSecondProcess(server, { quarantine_similar: { pdq_max_distance: D } });
  });
  after(async () => {
    await stopSecondProcess(second);
    await server.stop();
  });

  it("keeps the feed gapless and exactly-once", async () => {
    const items = makeItems("C", 16, 6, prng(99));
    let mostEdges = 0;
    const pools = [
      server.app.database,
      ...[1, 2].map(() => createDatabase(server.app.config.database)),
    ];
    const admin = await server.user("admin", { admin: true });
    const viaSecond = new HttpClient(second!.base, admin.token);
    let overHttp = 0;
    try {
      const overSecond = async () => {
        const random = prng(700);
        for (let n = 0; n < 200; n++) {
          const item = items[Math.floor(random() * items.length)]!;
          const verb = random() < 0.55 ? "quarantine" : "unquarantine";
          const res = await viaSecond.post(
            `${ADMIN}/media/${verb}/${item.origin ?? "test.local"}/${item.mediaId}`,
          );
          assert.equal(res.status, 200);
          overHttp += 1;
        }
      };
      await Promise.all([
        overSecond(),
        ...pools.map(async (database, i) => {
          const random = prng(500 + i);
          const service = serviceOn(database, server);
          for (let n = 0; n < 300; n++) {
            await operate(random, items, service, database);
            const { n: edges } = await database.db
              .selectFrom("quarantine_propagations")
              .select((eb) => eb.fn.countAll<number>().as("n"))
              .executeTakeFirstOrThrow();
            mostEdges = Math.max(mostEdges, Number(edges));
          }
        }),
      ]);
      assert.equal(overHttp, 200);
      await assertFeedMatchesRows(server.app.database.db);
      // Non-transitive: a source is never held; every target is quarantined.
      const db = server.app.database.db;
      const edges = await db.selectFrom("quarantine_propagations").selectAll().execute();
      assert.ok(mostEdges > 1, "propagation happened");
      const states = await rowStates(db);
      const targets = new Set(edges.map((e) => `${e.target_origin}/${e.target_media_id}`));
      for (const e of edges) {
        assert.notEqual(states.get(`${e.target_origin}/${e.target_media_id}`) ?? null, null);
        assert.ok(
          !targets.has(`${e.source_origin}/${e.source_media_id}`),
          "a source is never held",
        );
      }
    } finally {
      for (const p of pools.slice(1)) await p.close();
    }
  });
});
