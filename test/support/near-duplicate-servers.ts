/**
 * Near-duplicate quarantine tests' servers: one on a shared database and store
 * (a restart) or a fresh one, an upload that resolves once its PDQ is hashed,
 * and the rows the tests read back.
 */
import type { Database, Engine } from "../../src/db/database.js";
import { uploadBytes } from "./media.js";
import { metric } from "./metrics.js";
import { image, type WrittenPdqHasher } from "./near-duplicate-model.js";
import { asConfigText } from "./second-process.js";
import { startTestServer, type TestServer, type TestUser } from "./test-server.js";
import { waitFor } from "./wait-for.js";

/** A server on `shared`'s database and store (a restart), or a fresh one. */
export function serverOn(
  engine: Engine,
  shared: TestServer | undefined,
  distance: number | null,
  hasher: WrittenPdqHasher,
): Promise<TestServer> {
  return startTestServer(
    engine,
    {
      thumbnail_sizes: [],
      quarantine_similar: { pdq_max_distance: distance },
      ...(shared && {
        database: shared.app.config.database,
        media_store: asConfigText(shared.app.config.media_store),
      }),
    },
    { appOptions: { pdqHasher: hasher.hash } },
  );
}

/** Uploads an image with this fake PDQ; resolves once the queue has hashed it (and checked it). */
export async function uploadHashed(
  server: TestServer,
  user: TestUser,
  pdq: string,
): Promise<string> {
  const before = await metric(server.baseUrl, "mxcd_media_hash_outcomes_total", 'outcome="hashed"');
  const id = await uploadBytes(user.http, image(pdq), { contentType: "image/png" });
  await waitFor(
    async () =>
      (await metric(server.baseUrl, "mxcd_media_hash_outcomes_total", 'outcome="hashed"')) > before,
    `PDQ of ${id}`,
  );
  return id;
}

export async function quarantinedByOf(database: Database, mediaId: string): Promise<string | null> {
  const row = await database.db
    .selectFrom("local_media_repository")
    .select("quarantined_by")
    .where("media_id", "=", mediaId)
    .executeTakeFirstOrThrow();
  return row.quarantined_by;
}

export async function sourcesOf(database: Database, mediaId: string): Promise<string[]> {
  const rows = await database.db
    .selectFrom("quarantine_propagations")
    .select("source_media_id")
    .where("target_media_id", "=", mediaId)
    .orderBy("source_media_id")
    .execute();
  return rows.map((r) => r.source_media_id);
}
