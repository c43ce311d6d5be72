/**
 * An HMA-style consumer: follows the feed from 0 and, for every newly
 * quarantined local item, downloads the bytes with the admin bypass and
 * checks they hash to the record's sha256 — what an exchange does before it
 * shares a hash.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { download, uploadBytes } from "./support/media.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

const ADMIN = "/_synapse/admin/v1";

forEachEngine("HMA-style feed consumer", (engine) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(engine);
  });
  after(() => server.stop());

  it("downloads every newly quarantined item with the bypass and finds the record's sha256", async () => {
    const admin = await server.user("moderator", { admin: true });
    const alice = await server.user("alice");
    const bad = randomBytes(2048);
    const first = await uploadBytes(alice.http, bad, { contentType: "image/png" });
    await uploadBytes(alice.http, bad);
    const other = await uploadBytes(alice.http, randomBytes(999));
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${first}`);
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${other}`);
    await uploadBytes(alice.http, bad); // quarantined by system on arrival

    let from = 0;
    const checked: string[] = [];
    for (;;) {
      const page = await admin.http.get(`${ADMIN}/media/quarantine_changes?from=${from}&limit=2`);
      if (page.body.changes.length === 0) break;
      for (const change of page.body.changes) {
        if (!change.quarantined || change.origin !== "test.local") continue;
        const res = await download(
          server.baseUrl,
          `/_matrix/client/v1/media/download/test.local/${change.media_id}?admin_unsafely_bypass_quarantine=true`,
          { token: admin.token },
        );
        assert.equal(res.status, 200);
        assert.equal(createHash("sha256").update(res.bytes).digest("hex"), change.sha256);
        checked.push(change.media_id);
      }
      from = page.body.next_batch;
    }
    assert.equal(checked.length, 4);
  });
});
