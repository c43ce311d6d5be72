/**
 * An admin deletes an async-upload id while its PUT is streaming. The PUT
 * must fail with 404 M_NOT_FOUND (the id is gone) and leave neither a row nor
 * a file, whichever engine holds the rows. Deterministic: the client sends
 * half the body, the test waits until the row is claimed and the bytes are
 * arriving, deletes, then sends the rest.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { type IncomingMessage, request } from "node:http";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { allKeys, mediaIdOf } from "./support/media.js";
import { until } from "./support/mxcd-processes.js";
import { storeTempFiles } from "./support/store-files.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

forEachEngine("admin delete while an async upload streams", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  let admin: TestUser;
  before(async () => {
    server = await startTestServer(engine);
    alice = await server.user("alice");
    admin = await server.user("admin", { admin: true });
  });
  after(() => server.stop());

  async function claimed(mediaId: string): Promise<boolean> {
    const row = await server.app.database.db
      .selectFrom("local_media_repository")
      .select("media_length")
      .where("media_id", "=", mediaId)
      .executeTakeFirst();
    return row !== undefined && Number(row.media_length) === -1;
  }

  it("fails the PUT with 404 M_NOT_FOUND and leaves no row and no file", async () => {
    const keysBefore = await allKeys(server.app.store);
    const created = await alice.http.post("/_matrix/media/v1/create");
    const mediaId = mediaIdOf(created.body.content_uri);
    const body = randomBytes(256 * 1024);
    const url = new URL(`/_matrix/media/v3/upload/test.local/${mediaId}`, server.baseUrl);
    const put = request(url, {
      method: "PUT",
      headers: {
        authorization: `Bearer ${alice.token}`,
        "content-length": String(body.length),
        "content-type": "application/octet-stream",
      },
    });
    const answered = once(put, "response") as Promise<[IncomingMessage]>;
    put.write(body.subarray(0, body.length / 2));
    // The PUT holds its claim and is streaming into the store.
    await until(() => claimed(mediaId));

    const deleted = await admin.http.delete(`/_synapse/admin/v1/media/test.local/${mediaId}`);
    assert.equal(deleted.status, 200);
    assert.deepEqual(deleted.body, { deleted_media: [mediaId], total: 1 });

    put.end(body.subarray(body.length / 2));
    const [res] = await answered;
    let text = "";
    for await (const chunk of res) text += chunk;
    assert.equal(res.statusCode, 404, text);
    assert.equal(JSON.parse(text).errcode, "M_NOT_FOUND");

    const row = await server.app.database.db
      .selectFrom("local_media_repository")
      .select("media_id")
      .where("media_id", "=", mediaId)
      .executeTakeFirst();
    assert.equal(row, undefined);
    assert.deepEqual(await allKeys(server.app.store), keysBefore);
    const config = server.app.config.media_store;
    if (config.engine === "filesystem") assert.deepEqual(storeTempFiles(config.path), []);
    // The id stays gone: a download answers 404, not "not yet uploaded".
    const got = await alice.http.get(
      `/_matrix/client/v1/media/download/test.local/${mediaId}?timeout_ms=0`,
    );
    assert.equal(got.status, 404);
  });
});
