/**
 * Shared by the Synapse import tests (test/synapse-import.test.ts,
 * test/synapse-import-copy.test.ts, test/synapse-import-feed.test.ts): one
 * import run in-process, the way `mxcd import synapse` runs it, against a
 * fresh or re-used mxcd database; and the checks that mxcd serves the
 * default fixture's media (test/support/synapse-fixture.ts) as Synapse did.
 */
import assert from "node:assert/strict";
import type { DatabaseConfig } from "../../src/config/config-schema.js";
import { createDatabase } from "../../src/db/database.js";
import { runMigrations } from "../../src/db/migrate.js";
import {
  runSynapseImport,
  type SynapseImportOptions,
  type SynapseImportResult,
} from "../../src/importer/synapse-import.js";
import {
  openSynapseSource,
  type SynapseDatabaseLocation,
  type SynapseSource,
  sourceIdentity,
} from "../../src/importer/synapse-source.js";
import { createLogger } from "../../src/logging/logger.js";
import type { download } from "./media.js";
import type { SynapseFixture } from "./synapse-fixture.js";

/** Where a Synapse fixture lives: its database and its media store folder. */
export interface SynapseOrigin {
  readonly location: SynapseDatabaseLocation;
  readonly mediaStore: string;
}

/** What a test may set of an import run; the rest is fixed as the CLI sets it. */
export type ImportRunOptions = Partial<
  Omit<SynapseImportOptions, "database" | "source" | "mediaStorePath" | "sourceIdentity">
> & {
  /** Wraps the opened source (to inject faults); the opened one is still the one closed. */
  readonly wrap?: (source: SynapseSource) => SynapseSource;
  /** The media half of the source identity (default the media store folder). */
  readonly mediaDescription?: string;
};

/**
 * Migrates mxcd's database `config` and imports `origin` into it (not a dry
 * run, silent logger unless given); returns the tally and whether it stopped.
 * Both the database and the source are closed afterwards.
 */
export async function importSynapse(
  config: DatabaseConfig,
  origin: SynapseOrigin,
  options: ImportRunOptions = {},
): Promise<SynapseImportResult> {
  const { wrap, mediaDescription = origin.mediaStore, ...rest } = options;
  const database = createDatabase(config);
  const opened = await openSynapseSource(origin.location);
  const source = wrap ? wrap(opened) : opened;
  try {
    await runMigrations(database);
    return await runSynapseImport({
      dryRun: false,
      logger: createLogger("silent"),
      ...rest,
      database,
      source,
      mediaStorePath: origin.mediaStore,
      sourceIdentity: sourceIdentity(origin.location, mediaDescription),
    });
  } finally {
    await opened.close();
    await database.close();
  }
}

/** A GET against the server under test, as an admin (`download` bound to its base URL and token). */
export type Get = (path: string) => ReturnType<typeof download>;

/** The default fixture's local media that is imported: id → [content type, content disposition]. */
export const SERVED_LOCAL: Readonly<Record<string, readonly [string, string]>> = {
  AAAAimage000000000000001: ["image/png", "inline; filename*=utf-8''holiday%20photo.png"],
  CCCCprotected00000000001: ["application/pdf", "attachment; filename=report.pdf"],
  DDDDzerobyte000000000001: ["text/plain; charset=UTF-8", "inline"],
};

/** Local media `id` downloads with the fixture's bytes and the given headers. */
export async function assertLocalServed(
  get: Get,
  fixture: SynapseFixture,
  id: string,
  [type, disposition]: readonly [string, string],
): Promise<void> {
  const row = fixture.local.find((m) => m.media_id === id)!;
  const got = await get(`/_matrix/client/v1/media/download/test.local/${id}`);
  assert.equal(got.status, 200, id);
  assert.deepEqual(got.bytes, row.file, id);
  assert.equal(got.headers.get("content-type"), type, id);
  assert.equal(got.headers.get("content-disposition"), disposition, id);
}

/** The two unquarantined remote media download with the fixture's bytes and headers. */
export async function assertRemoteServed(get: Get, fixture: SynapseFixture): Promise<void> {
  const dispositions = ["inline; filename=cat.jpg", "attachment; filename=blob.bin"];
  for (const [i, r] of [fixture.remote[0]!, fixture.remote[2]!].entries()) {
    const got = await get(`/_matrix/client/v1/media/download/${r.media_origin}/${r.media_id}`);
    assert.equal(got.status, 200, r.media_origin);
    assert.deepEqual(got.bytes, r.file);
    assert.equal(got.headers.get("content-type"), r.media_type);
    assert.equal(got.headers.get("content-disposition"), dispositions[i]);
  }
}

/** Every fixture thumbnail (local, remote, legacy name) is served with its bytes and type. */
export async function assertThumbnailsServed(get: Get, fixture: SynapseFixture): Promise<void> {
  for (const t of fixture.thumbnails) {
    const origin = t.media_origin ?? "test.local";
    const path = `/_matrix/client/v1/media/thumbnail/${origin}/${t.media_id}?width=${t.width}&height=${t.height}&method=${t.method}`;
    const got = await get(path);
    assert.equal(got.status, 200, path);
    assert.deepEqual(got.bytes, t.file, path);
    assert.equal(got.headers.get("content-type"), t.type, path);
  }
}
