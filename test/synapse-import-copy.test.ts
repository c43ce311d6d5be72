/**
 * `mxcd import synapse --copy` and `--verify` (docs/import.md): the Synapse
 * fixture (test/support/synapse-fixture.ts) plus a file whose SHA-256 is not
 * Synapse's and a row whose `sha256` is NULL, copied into a filesystem store
 * and into S3 (s3rver), read from Synapse's folder and from a bucket laid
 * out by synapse-s3-storage-provider, on SQLite and PostgreSQL (as mxcd's
 * database and as Synapse's).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { checkMode, type ImportSynapseOptions } from "../src/cli/import-synapse-command.js";
import type { ConfigInput, DatabaseConfig } from "../src/config/config-schema.js";
import { validateConfig } from "../src/config/load-config.js";
import { createDatabase, type Engine } from "../src/db/database.js";
import type { ImportCounts, ImportKind, ImportTally } from "../src/importer/import-report.js";
import { type VerifyResult, verifySynapseImport } from "../src/importer/import-verify.js";
import { FilesystemMediaSource, type MediaSource } from "../src/importer/media-source.js";
import { loadS3SourceConfig, S3MediaSource } from "../src/importer/s3-media-source.js";
import { openSynapseSource } from "../src/importer/synapse-source.js";
import { ImportLookupRepository } from "../src/repositories/import-lookup-repository.js";
import type { BlobStore } from "../src/storage/blob-store.js";
import { createBlobStore } from "../src/storage/create-blob-store.js";
import {
  localContentKey,
  localThumbnailKey,
  remoteContentKey,
  remoteThumbnailKey,
  urlCacheKey,
} from "../src/storage/media-paths.js";
import { runCli, spawnCli } from "./support/cli.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { allKeys, download } from "./support/media.js";
import { S3RVER_CREDENTIALS, startS3rver, type TestS3 } from "./support/s3rver.js";
import { rowCounts } from "./support/synapse-bulk-checks.js";
import {
  createSynapseFixture,
  localRow,
  type SynapseFixture,
  thumbnailPath,
} from "./support/synapse-fixture.js";
import {
  assertLocalServed,
  assertRemoteServed,
  assertThumbnailsServed,
  importSynapse,
  SERVED_LOCAL,
} from "./support/synapse-import.js";
import { startTestServer } from "./support/test-server.js";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

const HASH_MISMATCH = "IIIIhashmismatch00000001";
const NULL_SHA = "JJJJnullsha2560000000001";

/** The default fixture plus a hash-mismatched file and a NULL-sha256 row. */
async function copyFixture(engine: Engine): Promise<SynapseFixture> {
  const fixture = await createSynapseFixture(engine, 94);
  await fixture.addLocal([
    localRow(HASH_MISMATCH, { sha256: sha(randomBytes(10)) }),
    localRow(NULL_SHA, { sha256: null }),
  ]);
  return fixture;
}

/** [imported, present, skipped, missing, mismatched] per kind. */
function counts(tally: ImportTally): Record<string, number[]> {
  const row = (c: ImportCounts) => [c.imported, c.present, c.skipped, c.missing, c.mismatched ?? 0];
  return {
    local: row(tally.counts.local),
    local_thumbnail: row(tally.counts.local_thumbnail),
    remote: row(tally.counts.remote),
    remote_thumbnail: row(tally.counts.remote_thumbnail),
    url_cache: row(tally.counts.url_cache),
  };
}

/** The copy fixture copied once. */
const FIRST_COPY = {
  url_cache: [0, 0, 0, 1, 0],
  local: [5, 0, 1, 2, 2],
  local_thumbnail: [2, 0, 0, 0, 0],
  remote: [3, 0, 0, 0, 0],
  remote_thumbnail: [2, 0, 0, 0, 0],
};

const IMPORTED_LOCAL = [
  "AAAAimage000000000000001",
  "BBBBquarantined000000001",
  "CCCCprotected00000000001",
  "DDDDzerobyte000000000001",
  NULL_SHA,
];

/** Every key the store must hold after the copy, and nothing else. */
function expectedKeys(fixture: SynapseFixture): string[] {
  return [
    ...IMPORTED_LOCAL.map(localContentKey),
    ...fixture.remote.map((r) => remoteContentKey(r.media_origin, r.filesystem_id)),
    ...fixture.thumbnails.map((t) =>
      t.media_origin === null
        ? localThumbnailKey(t.media_id, t.width, t.height, t.type, t.method)
        : remoteThumbnailKey(t.media_origin, t.filesystem_id!, t.width, t.height, t.type, t.method),
    ),
  ].sort();
}

/** Imports `fixture` with `--copy` into `store`, reading files from `files` (default Synapse's folder). */
function copyInto(
  config: DatabaseConfig,
  fixture: SynapseFixture,
  store: BlobStore,
  options: { files?: MediaSource; batchSize?: number; onCopied?: (bytes: number) => void } = {},
) {
  const files = options.files ?? new FilesystemMediaSource(fixture.mediaStore);
  return importSynapse(config, fixture, {
    mediaDescription: files.description,
    batchSize: options.batchSize,
    copy: { source: files, store, onCopied: options.onCopied },
  });
}

async function verify(
  config: DatabaseConfig,
  fixture: SynapseFixture,
  store: BlobStore,
  files: MediaSource = new FilesystemMediaSource(fixture.mediaStore),
): Promise<VerifyResult> {
  const database = createDatabase(config);
  const source = await openSynapseSource(fixture.location);
  try {
    return await verifySynapseImport({ database, source, files, store, batchSize: 4 });
  } finally {
    await source.close();
    await database.close();
  }
}

/** [checked, agree, differ, missing, notImported] per kind. */
function verifyCounts(result: VerifyResult): Record<ImportKind, number[]> {
  const out = {} as Record<ImportKind, number[]>;
  for (const [kind, c] of Object.entries(result.counts)) {
    out[kind as ImportKind] = [c.checked, c.agree, c.differ, c.missing, c.notImported];
  }
  return out;
}

const ALL_AGREE = {
  url_cache: [0, 0, 0, 0, 1],
  url_cache_thumbnail: [0, 0, 0, 0, 0],
  preview_cache: [0, 0, 0, 0, 0],
  local: [5, 5, 0, 0, 5],
  local_thumbnail: [2, 2, 0, 0, 0],
  remote: [3, 3, 0, 0, 0],
  remote_thumbnail: [2, 2, 0, 0, 0],
};

/** Files under `root` whose names are the filesystem store's temp names. */
function tempFiles(root: string): string[] {
  if (!existsSync(root)) return [];
  return (readdirSync(root, { recursive: true }) as string[]).filter((p) => p.endsWith(".tmp"));
}

/** How many files (not directories) are under `root` now, while a writer may rename them. */
function filesIn(root: string): number {
  if (!existsSync(root)) return 0;
  const entries = readdirSync(root, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).length;
}

/** Uploads Synapse's folder to `bucket` as synapse-s3-storage-provider does: key = prefix + path. */
async function uploadAsProvider(s3: TestS3, root: string, prefix: string): Promise<void> {
  const client = s3.client();
  try {
    for (const path of readdirSync(root, { recursive: true }) as string[]) {
      if (!statSync(join(root, path)).isFile()) continue;
      await client.send(
        new PutObjectCommand({
          Bucket: s3.bucket,
          Key: prefix + path,
          Body: readFileSync(join(root, path)),
        }),
      );
    }
  } finally {
    client.destroy();
  }
}

/** Checks the import's outcome and that mxcd serves every imported item as Synapse did. */
async function assertServed(
  engine: Engine,
  database: DatabaseConfig,
  fixture: SynapseFixture,
  mediaStore: NonNullable<ConfigInput["media_store"]>,
): Promise<void> {
  // The MD5 of every file copied is stored by the import itself (before any
  // server, whose media-hash backfill would compute it too).
  const imported = createDatabase(database);
  try {
    const rows = await imported.db
      .selectFrom("local_media_repository")
      .select(["media_id", "md5"])
      .execute();
    for (const m of fixture.local) {
      const row = rows.find((r) => r.media_id === m.media_id);
      if (!row || !m.file || m.media_id === HASH_MISMATCH) continue;
      assert.equal(row.md5, createHash("md5").update(m.file).digest("hex"), m.media_id);
    }
  } finally {
    await imported.close();
  }
  const server = await startTestServer(engine, { database, media_store: mediaStore });
  try {
    const admin = await server.user("admin", { admin: true });
    const get = (path: string) => download(server.baseUrl, path, { token: admin.token });
    const expected: Record<string, readonly [string, string]> = {
      ...SERVED_LOCAL,
      [NULL_SHA]: ["text/plain; charset=UTF-8", `inline; filename=${NULL_SHA}.txt`],
    };
    for (const [id, headers] of Object.entries(expected)) {
      await assertLocalServed(get, fixture, id, headers);
    }
    // The NULL sha256 was computed from the bytes copied.
    const info = await admin.http.get(`/_synapse/admin/v1/media/test.local/${NULL_SHA}`);
    const nullRow = fixture.local.find((m) => m.media_id === NULL_SHA)!;
    assert.equal(info.body.media_info.sha256, sha(nullRow.file!));
    // Mismatched and missing media is not imported.
    for (const id of [HASH_MISMATCH, "FFFFtruncated00000000001", "EEEEmissing0000000000001"]) {
      const gone = await admin.http.get(`/_synapse/admin/v1/media/test.local/${id}`);
      assert.equal(gone.status, 404, id);
    }
    await assertRemoteServed(get, fixture);
    await assertThumbnailsServed(get, fixture);
    // Quarantined stays quarantined.
    const q = await get("/_matrix/client/v1/media/download/test.local/BBBBquarantined000000001");
    assert.equal(q.status, 404);
  } finally {
    await server.stop();
  }
}

function assertFirstCopy(tally: ImportTally) {
  assert.deepEqual(counts(tally), FIRST_COPY);
  const problems = tally.problems
    .map((p) => `${p.outcome ?? "missing"} ${p.item}: ${p.problem}`)
    .sort();
  assert.equal(problems.length, 5);
  assert.match(
    problems[0]!,
    /^mismatched FFFFtruncated00000000001: truncated \(50 of 100 bytes\)$/,
  );
  assert.match(problems[1]!, new RegExp(`^mismatched ${HASH_MISMATCH}: sha256 differs`));
  assert.match(problems[2]!, /^missing 2024-01-01_urlcache00001: missing$/);
  assert.match(problems[3]!, /^missing EEEEmissing0000000000001: missing$/);
  assert.match(problems[4]!, /^missing HHHHdirectory00000000001: (not a file|missing)$/);
}

forEachEngine("Synapse import --copy", (engine: Engine) => {
  it("into a filesystem store: checked, mismatched not imported, served; --verify finds a corrupted object", async () => {
    const fixture = await copyFixture(engine);
    const before = await fixture.fingerprint();
    const database = await freshDatabaseConfig(engine);
    const storeDir = join(mkdtempSync(join(tmpdir(), "mxcd-copy-")), "media");
    const store = createBlobStore({ engine: "filesystem", path: storeDir });
    const result = await copyInto(database, fixture, store, { batchSize: 3 });
    assert.equal(result.stopped, false);
    assertFirstCopy(result.tally);
    assert.deepEqual(await allKeys(store), expectedKeys(fixture));
    assert.deepEqual(tempFiles(storeDir), []);
    assert.equal(await fixture.fingerprint(), before, "the Synapse database was changed");
    // Synapse's folder is only read: the legacy thumbnail was copied to mxcd's store, not beside it.
    const legacy = fixture.thumbnails.find((t) => t.legacyName)!;
    assert.equal(
      existsSync(join(fixture.mediaStore, thumbnailPath({ ...legacy, legacyName: false }))),
      false,
    );
    await assertServed(engine, database, fixture, { engine: "filesystem", path: storeDir });

    assert.deepEqual(verifyCounts(await verify(database, fixture, store)), ALL_AGREE);
    // Corrupt one stored object (same length, other bytes) and remove another.
    const image = fixture.local[0]!;
    await store.write(
      localContentKey(image.media_id),
      Readable.from([randomBytes(image.file!.length)]),
    );
    const thumb = fixture.thumbnails[2]!;
    await store.delete(
      remoteThumbnailKey(
        thumb.media_origin!,
        thumb.filesystem_id!,
        thumb.width,
        thumb.height,
        thumb.type,
        thumb.method,
      ),
    );
    const bad = await verify(database, fixture, store);
    assert.deepEqual(verifyCounts(bad), {
      ...ALL_AGREE,
      local: [5, 4, 1, 0, 5],
      remote_thumbnail: [2, 1, 0, 1, 0],
    });
    assert.deepEqual(bad.problems.map((p) => `${p.outcome} ${p.item}`).sort(), [
      `differ ${image.media_id}`,
      `missing ${thumb.media_origin}/${thumb.media_id} ${thumb.width}x${thumb.height} ${thumb.type} ${thumb.method}`,
    ]);
    await store.close?.();
  });

  it("into S3 (s3rver), and from a synapse-s3-storage-provider bucket", async () => {
    const s3 = await startS3rver();
    try {
      const fixture = await copyFixture(engine);
      // Synapse's folder → mxcd's bucket under a prefix.
      const database = await freshDatabaseConfig(engine);
      const storeConfig = s3.storeConfig({ prefix: "mxcd/" });
      const store = createBlobStore(
        validateConfig({ server_name: "test.local", media_store: storeConfig }).media_store,
      );
      const result = await copyInto(database, fixture, store, { batchSize: 4 });
      assertFirstCopy(result.tally);
      assert.deepEqual(await allKeys(store), expectedKeys(fixture));
      await assertServed(engine, database, fixture, storeConfig);
      assert.deepEqual(verifyCounts(await verify(database, fixture, store)), ALL_AGREE);
      await store.close?.();

      // The provider's bucket (key = prefix + path, the prefix without a slash) → a filesystem store.
      await uploadAsProvider(s3, fixture.mediaStore, "synapse");
      const files = new S3MediaSource({
        bucket: s3.bucket,
        prefix: "synapse",
        endpoint_url: s3.endpoint,
        region_name: "us-east-1",
        access_key_id: S3RVER_CREDENTIALS.accessKeyId,
        secret_access_key: S3RVER_CREDENTIALS.secretAccessKey,
      });
      const second = await freshDatabaseConfig(engine);
      const storeDir = join(mkdtempSync(join(tmpdir(), "mxcd-copy-")), "media");
      const fsStore = createBlobStore({ engine: "filesystem", path: storeDir });
      const fromS3 = await copyInto(second, fixture, fsStore, { files, batchSize: 5 });
      assertFirstCopy(fromS3.tally);
      assert.deepEqual(await allKeys(fsStore), expectedKeys(fixture));
      await assertServed(engine, second, fixture, { engine: "filesystem", path: storeDir });
      assert.deepEqual(verifyCounts(await verify(second, fixture, fsStore, files)), ALL_AGREE);
      await files.close();
    } finally {
      await s3.stop();
    }
  });

  it("a crash mid-copy, then re-runs: nothing partial, nothing missing, nothing twice", async () => {
    const fixture = await copyFixture(engine);
    const database = await freshDatabaseConfig(engine);
    const storeDir = join(mkdtempSync(join(tmpdir(), "mxcd-copy-")), "media");
    const store = createBlobStore({ engine: "filesystem", path: storeDir });
    // The 6th file's write dies halfway through its bytes, in the second page.
    await assert.rejects(
      copyInto(database, fixture, crashingStore(store, 5), { batchSize: 3 }),
      /injected crash/,
    );
    assert.deepEqual(tempFiles(storeDir), []);
    const partial = await allKeys(store);
    assert.ok(
      partial.length >= 5 && partial.length < expectedKeys(fixture).length,
      String(partial),
    );
    let copied = 0;
    const resumed = await copyInto(database, fixture, store, {
      batchSize: 3,
      onCopied: () => {
        copied++;
      },
    });
    assert.equal(resumed.stopped, false);
    assertFirstCopy(resumed.tally);
    assert.deepEqual(await allKeys(store), expectedKeys(fixture));
    assert.ok(copied > 0 && copied < expectedKeys(fixture).length, `copied ${copied}`);
    assert.deepEqual(await rowCounts(database), [5, 2, 3, 2]);
    assert.deepEqual(verifyCounts(await verify(database, fixture, store)), ALL_AGREE);

    // A finished import run again copies nothing; an object lost since is copied back.
    await store.delete(localContentKey(NULL_SHA));
    copied = 0;
    const again = await copyInto(database, fixture, store, {
      batchSize: 3,
      onCopied: () => {
        copied++;
      },
    });
    assert.deepEqual(counts(again.tally), {
      local: [0, 5, 1, 2, 2],
      url_cache: [0, 0, 0, 1, 0],
      local_thumbnail: [0, 2, 0, 0, 0],
      remote: [0, 3, 0, 0, 0],
      remote_thumbnail: [0, 2, 0, 0, 0],
    });
    assert.equal(copied, 1);
    assert.deepEqual(await allKeys(store), expectedKeys(fixture));
    assert.deepEqual(await rowCounts(database), [5, 2, 3, 2]);
  });

  it("the command killed (SIGKILL) mid-copy, then run again: complete, nothing twice", async () => {
    const fixture = await copyFixture(engine);
    const bulk = Array.from({ length: 40 }, (_, i) =>
      localRow(`LLLLbulk${String(i).padStart(16, "0")}`, { file: randomBytes(512 * 1024) }),
    );
    await fixture.addLocal(bulk);
    const dir = mkdtempSync(join(tmpdir(), "mxcd-import-kill-"));
    const storeDir = join(dir, "media");
    const database = await freshDatabaseConfig(engine);
    writeFileSync(
      join(dir, "mxcd.yaml"),
      JSON.stringify({
        server_name: "test.local",
        database,
        media_store: { engine: "filesystem", path: storeDir },
        log_level: "silent",
      }),
    );
    const source =
      "sqlite" in fixture.location
        ? ["--sqlite", fixture.location.sqlite]
        : ["--database", fixture.location.postgres];
    const args = ["import", "synapse", ...source, "--media-store", fixture.mediaStore, "--copy"];
    const child = spawnCli([...args, "--batch-size", "5"], dir);
    const exited = new Promise((resolve) => child.once("exit", resolve));
    // Killed once some files are in mxcd's store: mid-copy, with no chance to clean up.
    while (filesIn(storeDir) < 8) {
      assert.equal(child.exitCode, null, `finished before the kill:\n${child.output()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill("SIGKILL");
    await exited;
    const before = (await allKeys(createBlobStore({ engine: "filesystem", path: storeDir })))
      .length;
    assert.ok(before < expectedKeys(fixture).length + bulk.length, `${before} keys`);

    // Run again (in this process, to keep the suite quick; the same code as the command's).
    const store = createBlobStore({ engine: "filesystem", path: storeDir });
    const rerun = await copyInto(database, fixture, store, { batchSize: 5 });
    assert.deepEqual(counts(rerun.tally), { ...FIRST_COPY, local: [45, 0, 1, 2, 2] });
    const keys = await allKeys(store);
    assert.deepEqual(
      keys,
      [...expectedKeys(fixture), ...bulk.map((m) => localContentKey(m.media_id))].sort(),
    );
    assert.deepEqual(await rowCounts(database), [45, 2, 3, 2]);
    const verified = verifyCounts(await verify(database, fixture, store));
    assert.deepEqual(verified, { ...ALL_AGREE, local: [45, 45, 0, 0, 5] });
  });
});

describe("Synapse import --copy: URL-preview media", () => {
  it("is copied under url_cache/, its NULL sha256 computed, and verified", async () => {
    const fixture = await createSynapseFixture("sqlite", 94);
    const id = "2024-02-02_urlcachecopy01";
    const file = randomBytes(321);
    await fixture.addLocal([
      localRow(id, { url_cache: "https://example.org/x", file, sha256: null }),
    ]);
    const database = await freshDatabaseConfig("sqlite");
    const store = createBlobStore({
      engine: "filesystem",
      path: join(mkdtempSync(join(tmpdir(), "mxcd-copy-")), "media"),
    });
    const result = await copyInto(database, fixture, store);
    // The fixture's own URL-preview row has no file: missing.
    assert.deepEqual(counts(result.tally).url_cache, [1, 0, 0, 1, 0]);
    const chunks: Buffer[] = [];
    for await (const chunk of await store.read(urlCacheKey(id))) chunks.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat(chunks), file);
    const db = createDatabase(database);
    try {
      const row = await new ImportLookupRepository().local(db.db, id);
      assert.equal(row?.sha256, sha(file));
    } finally {
      await db.close();
    }
    const verified = verifyCounts(await verify(database, fixture, store));
    assert.deepEqual(verified.url_cache, [1, 1, 0, 0, 1]);
  });
});

/** `inner`, except that every write after the first `n` fails halfway through its bytes. */
function crashingStore(inner: BlobStore, n: number): BlobStore {
  let writes = 0;
  return {
    read: (key, range) => inner.read(key, range),
    stat: (key) => inner.stat(key),
    delete: (key) => inner.delete(key),
    list: (prefix) => inner.list(prefix),
    write: (key, source, options) => {
      if (++writes <= n) return inner.write(key, source, options);
      async function* half() {
        for await (const chunk of source) {
          yield (chunk as Buffer).subarray(0, Math.ceil(chunk.length / 2));
          throw new Error("injected crash");
        }
        throw new Error("injected crash");
      }
      return inner.write(key, half(), options);
    },
  };
}

describe("mxcd import synapse --copy / --verify (CLI)", () => {
  it("flags, S3 source from the provider's config, report, exit status, verify", async (t) => {
    const s3 = await startS3rver();
    try {
      const fixture = await copyFixture("sqlite");
      // A few more files of 256 KiB, for the timing line.
      await fixture.addLocal(
        Array.from({ length: 30 }, (_, i) =>
          localRow(`KKKKbulk${String(i).padStart(16, "0")}`, { file: randomBytes(256 * 1024) }),
        ),
      );
      await uploadAsProvider(s3, fixture.mediaStore, "synapse/");
      const dir = mkdtempSync(join(tmpdir(), "mxcd-import-copy-cli-"));
      const mxcdDb = join(dir, "mxcd.sqlite");
      const config = (store: unknown) =>
        JSON.stringify({
          server_name: "test.local",
          database: { engine: "sqlite", path: mxcdDb },
          media_store: store,
          log_level: "silent",
        });
      writeFileSync(
        join(dir, "mxcd.yaml"),
        config({ engine: "filesystem", path: join(dir, "media") }),
      );
      writeFileSync(join(dir, "s3.yaml"), config(s3.storeConfig()));
      const secret = S3RVER_CREDENTIALS.secretAccessKey;
      // The provider's block as it is in homeserver.yaml (storage_class is ignored).
      writeFileSync(
        join(dir, "provider.yaml"),
        [
          "- module: s3_storage_provider.S3StorageProviderBackend",
          "  store_local: True",
          "  config:",
          `    bucket: ${s3.bucket}`,
          "    prefix: synapse/",
          `    endpoint_url: ${s3.endpoint}`,
          "    region_name: us-east-1",
          `    access_key_id: ${S3RVER_CREDENTIALS.accessKeyId}`,
          `    secret_access_key: ${secret}`,
          "    storage_class: STANDARD",
        ].join("\n"),
      );
      // A broken file never echoes its secret; a provider block with SSE-C is refused.
      writeFileSync(join(dir, "broken.yaml"), `bucket: b\nsecret_access_key: ${secret}: x\n`);
      assert.throws(
        () => loadS3SourceConfig(join(dir, "broken.yaml"), {}),
        (error: Error) => /not valid YAML/.test(error.message) && !error.message.includes(secret),
      );
      writeFileSync(join(dir, "ssec.yaml"), "bucket: bucket\nsse_customer_key: k\n");
      assert.throws(() => loadS3SourceConfig(join(dir, "ssec.yaml"), {}), /SSE-C/);
      assert.equal(
        loadS3SourceConfig(join(dir, "provider.yaml"), { prefix: "other/" }).prefix,
        "other/",
      );
      const db = ["import", "synapse", "--sqlite", (fixture.location as { sqlite: string }).sqlite];
      const local = ["--media-store", fixture.mediaStore];
      const refused = async (args: string[], message: RegExp) => {
        const run = await runCli([...db, ...args], { cwd: dir });
        assert.equal(run.code, 1, run.stderr);
        assert.match(run.stderr, message);
      };
      await refused([...local, "--config", "s3.yaml"], /media_store in s3\.yaml is S3.*use --copy/);
      // The other refusals, without a process each.
      const mode = (flags: Partial<ImportSynapseOptions>, store: unknown) =>
        checkMode(
          { config: "x.yaml", mediaStore: fixture.mediaStore, ...flags },
          validateConfig({ server_name: "test.local", media_store: store }),
        );
      const fsStore = { engine: "filesystem", path: join(dir, "media") };
      assert.equal(mode({}, { ...fsStore, path: fixture.mediaStore }), "reference");
      assert.equal(mode({ copy: true }, fsStore), "copy");
      assert.equal(mode({ copy: true }, s3.storeConfig()), "copy");
      assert.equal(mode({ verify: true }, s3.storeConfig()), "verify");
      assert.throws(() => mode({ reference: true, copy: true }, fsStore), /exclude each other/);
      assert.throws(() => mode({ reference: true }, s3.storeConfig()), /is S3: .*use --copy/);
      assert.throws(() => mode({ reference: true }, fsStore), /media_store must be/);
      const s3Only = { mediaStore: undefined, s3Bucket: "b" };
      assert.throws(() => mode(s3Only, fsStore), /imported with --copy only/);
      assert.equal(mode({ ...s3Only, copy: true }, fsStore), "copy");
      assert.throws(
        () => mode({ copy: true }, { ...fsStore, path: fixture.mediaStore }),
        /onto itself/,
      );
      assert.throws(() => mode({ s3Bucket: "x", copy: true }, fsStore), /exactly one media source/);
      assert.throws(() => mode({ copy: true }, { engine: "memory" }), /filesystem or s3/);

      const run = await runCli([...db, "--s3-config", "provider.yaml", "--copy"], { cwd: dir });
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stdout,
        /^kind\s+imported\s+already present\s+skipped\s+missing\s+mismatched$/m,
      );
      assert.match(run.stdout, /^local\s+35\s+0\s+1\s+2\s+2$/m);
      assert.match(run.stdout, /^mismatched local IIIIhashmismatch00000001: sha256 differs/m);
      assert.match(run.stdout, /^missing local EEEEmissing0000000000001: missing$/m);
      const timing = /copied ([\d.]+) MiB in ([\d.]+) s/.exec(run.stderr);
      assert.ok(timing, run.stderr);
      t.diagnostic(`--copy of 42 files from s3rver into a filesystem store: ${timing[0]}`);
      assert.ok(!run.stdout.includes(secret) && !run.stderr.includes("secret_access_key"));

      const verified = await runCli([...db, "--s3-config", "provider.yaml", "--verify"], {
        cwd: dir,
      });
      assert.equal(verified.code, 0, verified.stdout + verified.stderr);
      assert.match(verified.stdout, /^local\s+35\s+[\d.]+\s+35\s+0\s+0\s+5$/m);
      // Corrupt one object in mxcd's store: --verify says so and exits 1.
      const victim = join(dir, "media", localContentKey("AAAAimage000000000000001"));
      const bytes = readFileSync(victim);
      bytes[0] = bytes[0]! ^ 0xff;
      writeFileSync(victim, bytes);
      const corrupted = await runCli([...db, "--s3-config", "provider.yaml", "--verify"], {
        cwd: dir,
      });
      assert.equal(corrupted.code, 1, corrupted.stderr);
      assert.match(corrupted.stdout, /^local\s+35\s+[\d.]+\s+34\s+1\s+0\s+5$/m);
      assert.match(corrupted.stdout, /^differ local AAAAimage000000000000001: mxcd's object/m);
    } finally {
      await s3.stop();
    }
  });
});
