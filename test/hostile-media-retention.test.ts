/**
 * Hostile pass over retention (docs/media.md "Retention"): rows a Synapse
 * import or a hand-edited database may hold — ids with a newline, a tab or
 * a terminal escape, an origin or filesystem id that walks out of the store
 * (`../`) — next to ordinary old media. `mxcd media retention --dry-run`
 * must print one well-formed line per item (no injected lines or escape
 * sequences), and a real pass must delete the ordinary media, touch no file
 * outside the store and never stall on the poisoned rows.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, it } from "node:test";
import { runCli } from "./support/cli.js";
import { forEachEngine } from "./support/databases.js";
import { uploadBytes } from "./support/media.js";
import { DAY, retentionCliConfig } from "./support/retention.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const HOSTILE_IDS = [
  "line\ninjected\t0\tlocal_max_age\tcreated 1d ago",
  "esc\u001b[2Jclear",
  "tab\there",
];

forEachEngine("hostile: media retention on poisoned rows", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let configFile: string;
  let victim: string;

  before(async () => {
    server = await startTestServer(engine, {
      media_retention: {
        local_media_lifetime: "30d",
        remote_media_lifetime: "7d",
        check_interval: "1d",
      },
    });
    alice = await server.user("alice");
    const written = retentionCliConfig(server, "mxcd-hostile-retention-");
    configFile = written.file;
    const dir = written.dir;
    const { config } = server.app;
    // A file beside the store that a `../` id would reach.
    const store = config.media_store;
    const storeRoot = store.engine === "filesystem" ? store.path : dir;
    victim = join(dirname(storeRoot), "victim.txt");
    writeFileSync(victim, "do not delete");
  });
  after(() => server?.stop());

  it("dry run prints one clean line per item; a pass deletes the rest and nothing outside the store", async () => {
    const now = Date.now();
    const db = server.app.database.db;
    const ordinary = await uploadBytes(alice.http, "old and unread");
    await db
      .updateTable("local_media_repository")
      .set({ created_ts: now - 40 * DAY, last_access_ts: null })
      .where("media_id", "=", ordinary)
      .execute();
    for (const id of HOSTILE_IDS) {
      await db
        .insertInto("local_media_repository")
        .values({
          media_id: id,
          media_type: "text/plain",
          media_length: 5,
          created_ts: now - 40 * DAY,
          upload_name: null,
          user_id: alice.userId,
          last_access_ts: null,
          quarantined_by: null,
          safe_from_quarantine: false,
          authenticated: false,
          sha256: null,
        })
        .execute();
    }
    for (const [origin, fsId] of [
      ["../..", "victim.txt"],
      ["remote.example", "../../victim.txt"],
      ["evil\nremote.example", "fsx"],
    ]) {
      await db
        .insertInto("remote_media_cache")
        .values({
          media_origin: origin as string,
          media_id: `r${Math.random().toString(36).slice(2)}`,
          media_type: "text/plain",
          media_length: 5,
          created_ts: now - 40 * DAY,
          upload_name: null,
          filesystem_id: fsId as string,
          last_access_ts: now - 40 * DAY,
          quarantined_by: null,
          authenticated: false,
        })
        .execute();
    }

    const dry = await runCli(["media", "retention", "--dry-run", "--config", configFile]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.ok(!dry.stdout.includes("\u001b"), "no raw escape sequence reaches the terminal");
    const lines = dry.stdout.trim().split("\n");
    const items = lines.filter((l) => l.startsWith("mxc://"));
    for (const line of items)
      assert.equal(line.split("\t").length, 4, `one item per line: ${JSON.stringify(line)}`);
    assert.equal(items.length, 1 + HOSTILE_IDS.length + 3, dry.stdout);
    assert.match(dry.stdout, /^would delete 4 local media \(\d+ bytes\) and 3 remote media/m);
    assert.ok(!lines.some((l) => l.startsWith("injected")), "no line injected by an id");

    const run = await runCli(["media", "retention", "--config", configFile]);
    assert.ok(run.code !== null && run.code <= 1, `exit ${run.code}: ${run.stderr}`);
    assert.ok(!/\n\s+at /.test(run.stderr), `no stack trace: ${run.stderr}`);
    const left = await db
      .selectFrom("local_media_repository")
      .select("media_id")
      .where("media_id", "=", ordinary)
      .execute();
    assert.deepEqual(left, [], "the ordinary old media is deleted despite the poisoned rows");
    assert.ok(existsSync(victim), "nothing outside the store is deleted");
    assert.equal(readFileSync(victim, "utf8"), "do not delete");
    // A second pass finishes too (poisoned rows do not wedge the job).
    const again = await runCli(["media", "retention", "--config", configFile]);
    assert.ok(again.code !== null && again.code <= 1, `exit ${again.code}: ${again.stderr}`);
  });
});
