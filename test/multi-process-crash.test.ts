/**
 * SIGKILL of one of three mxcd processes (one PostgreSQL database, one
 * media store) in the middle of two large streamed uploads — a plain upload
 * and an async upload's PUT. Afterwards: no row claims bytes it does not
 * have, no partial file is visible as a key (the killed process's temp
 * files stay on disk until a start-up sweep, but the store never lists
 * them), the other two processes keep serving, and a retried PUT to the
 * interrupted async id succeeds on another process.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { BlobNotFoundError } from "../src/storage/blob-store.js";
import { localContentKey } from "../src/storage/media-paths.js";
import { forEachEngine } from "./support/databases.js";
import { allKeys, download, mediaIdOf, uploadBytes } from "./support/media.js";
import { type ProcessGroup, startProcessGroup, until } from "./support/mxcd-processes.js";

/** The filesystem store's temp files (`.<name>~<random>.tmp`) under `root`, with sizes. */
function tempFiles(root: string): { path: string; size: number }[] {
  const files = readdirSync(root, { recursive: true }).map(String);
  return files
    .filter((f) => /~[0-9a-f]+\.tmp$/.test(f))
    .map((f) => ({ path: f, size: statSync(join(root, f)).size }));
}

/** Starts a chunked upload that sends 1 MiB and then waits, never finishing. */
function startSlowUpload(base: string, method: string, path: string, token: string) {
  const req = request(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "transfer-encoding": "chunked" },
  });
  const ended = new Promise<string>((resolve) => {
    req.on("error", (error) => resolve(`request failed: ${error.message}`));
    req.on("response", (res) => resolve(`answered ${res.statusCode}`));
  });
  req.write(randomBytes(1024 * 1024));
  return ended;
}

forEachEngine("a process killed mid-upload", (engine) => {
  if (engine !== "postgres") {
    it("runs on PostgreSQL only (several processes need a shared database)", {
      skip: "multi-process is a PostgreSQL deployment shape",
    });
    return;
  }
  let group: ProcessGroup;
  let user: string;
  before(async () => {
    group = await startProcessGroup(3);
    user = await group.token("alice");
  });
  after(async () => {
    await group?.stop();
  });

  it("leaves no row without bytes and no visible partial object; the others keep serving", async () => {
    const [victim, p2, p3] = [0, 1, 2].map((i) => group.processes[i]!) as [
      ProcessGroup["processes"][number],
      ProcessGroup["processes"][number],
      ProcessGroup["processes"][number],
    ];
    const earlier = randomBytes(50_000);
    const earlierId = await uploadBytes(victim.http(user), earlier);
    const created = await p2.http(user).post("/_matrix/media/v1/create");
    const asyncId = mediaIdOf(created.body.content_uri);

    const plain = startSlowUpload(victim.base, "POST", "/_matrix/media/v3/upload", user);
    const put = startSlowUpload(
      victim.base,
      "PUT",
      `/_matrix/media/v3/upload/test.local/${asyncId}`,
      user,
    );
    // Both bodies are streaming into temp files of the shared store.
    await until(() => tempFiles(group.mediaPath).filter((f) => f.size > 0).length === 2);
    victim.child.kill("SIGKILL");
    assert.match(await plain, /request failed/);
    assert.match(await put, /request failed/);
    await until(() => victim.child.exitCode !== null || victim.child.signalCode !== null);

    // No row claims bytes it does not have.
    const rows = await group.services.database.db
      .selectFrom("local_media_repository")
      .select(["media_id", "media_length"])
      .execute();
    const sizes = new Map<string, number>();
    for (const row of rows) {
      const key = localContentKey(row.media_id);
      const length = row.media_length === null ? null : Number(row.media_length);
      if (length !== null && length >= 0) {
        assert.equal((await group.store.stat(key)).size, length, row.media_id);
        sizes.set(key, length);
      } else {
        // Pending or claimed (-1) by the dead upload: nothing is served.
        await assert.rejects(group.store.stat(key), BlobNotFoundError);
      }
    }
    // Every visible key is a whole blob of a row; the temp files are not keys.
    const temps = tempFiles(group.mediaPath);
    assert.equal(temps.length, 2, "the killed process's temp files are still on disk");
    const keys = await allKeys(group.store);
    assert.deepEqual(keys, [...sizes.keys()].sort());

    // The others keep serving, including media the dead process stored.
    const get = (base: string, id: string, query = "") =>
      download(base, `/_matrix/client/v1/media/download/test.local/${id}${query}`, {
        token: user,
      });
    assert.deepEqual((await get(p2.base, earlierId)).bytes, earlier);
    const fresh = randomBytes(2 * 1024 * 1024);
    const freshId = await uploadBytes(p2.http(user), fresh);
    assert.deepEqual((await get(p3.base, freshId)).bytes, fresh);
    // The interrupted async upload is still "not uploaded yet", never a partial file.
    const pending = await get(p3.base, asyncId, "?timeout_ms=0");
    assert.equal(pending.status, 504);
    // Its claim died with the victim's lock session: a retried PUT to another
    // process takes it over and succeeds.
    const retried = randomBytes(300_000);
    const retry = await fetch(`${p2.base}/_matrix/media/v3/upload/test.local/${asyncId}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${user}` },
      body: retried,
    });
    assert.equal(retry.status, 200, await retry.text());
    assert.deepEqual((await get(p3.base, asyncId)).bytes, retried);
  });
});
