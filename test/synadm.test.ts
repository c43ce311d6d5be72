/**
 * synadm (Debian's real Synapse admin CLI) drives mxcd's media admin API:
 * media list (by user and by room), quarantine (by id, room and user),
 * protect, delete (by id and by date) and purge (remote cache).
 * Without synadm installed the suite is skipped loudly (fails under CI=true;
 * .ci/run installs it).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { remoteContentKey } from "../src/storage/media-paths.js";
import { forEachEngine } from "./support/databases.js";
import { allKeys, uploadBytes } from "./support/media.js";
import { until } from "./support/mxcd-processes.js";
import { markSuiteRan } from "./support/run-markers.js";
import { runSynadm, synadmInstalled, writeSynadmConfig } from "./support/synadm.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const installed = synadmInstalled();
if (!installed && process.env.CI === "true") throw new Error("synadm is required under CI=true");

forEachEngine("synadm drives the media admin API", (engine) => {
  const suite = installed ? describe : describe.skip;
  suite(
    installed ? "with synadm" : "!!! SKIPPED: synadm is not installed (apt-get install synadm)",
    () => {
      let server: TestServer;
      let admin: TestUser;
      let alice: TestUser;
      let config: string;
      let roomId: string;
      const media: string[] = [];
      before(async () => {
        markSuiteRan("synadm");
        server = await startTestServer(engine);
        admin = await server.user("admin", { admin: true });
        alice = await server.user("alice");
        for (let i = 0; i < 4; i++)
          media.push(await uploadBytes(alice.http, randomBytes(2000 + i)));
        roomId = (await alice.http.post("/_matrix/client/v3/createRoom", { name: "r" })).body
          .room_id;
        await alice.http.put(
          `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`,
          {
            msgtype: "m.image",
            body: "x",
            url: `mxc://test.local/${media[1]}`,
          },
        );
        config = writeSynadmConfig({
          user: "@admin:test.local",
          token: admin.token,
          baseUrl: server.baseUrl,
          serverName: "test.local",
        });
      });
      after(() => server.stop());

      /** `created_ts` of local media, from the admin media info. */
      const createdTs = async (id: string): Promise<number> => {
        const res = await admin.http.get(`/_synapse/admin/v1/media/test.local/${id}`);
        assert.equal(res.status, 200, `media ${id} exists`);
        return res.body.media_info.created_ts;
      };

      const quarantinedBy = async (id: string) =>
        (await admin.http.get(`/_synapse/admin/v1/media/test.local/${id}`)).body.media_info
          .quarantined_by;

      it("lists a user's media and a room's media", async () => {
        const byUser = await runSynadm(config, ["media", "list", "-u", "@alice:test.local"]);
        assert.equal(byUser.code, 0, byUser.out);
        for (const id of media) assert.ok(byUser.out.includes(id), id);
        const byRoom = await runSynadm(config, ["media", "list", "-r", roomId]);
        assert.equal(byRoom.code, 0, byRoom.out);
        assert.ok(byRoom.out.includes(`mxc://test.local/${media[1]}`), byRoom.out);
      });

      it("protects media, which then survives quarantine", async () => {
        const res = await runSynadm(config, ["media", "protect", media[3]!]);
        assert.equal(res.code, 0, res.out);
        const info = await admin.http.get(`/_synapse/admin/v1/media/test.local/${media[3]}`);
        assert.equal(info.body.media_info.safe_from_quarantine, true);
      });

      it("quarantines by media id, by room and by user", async () => {
        const byId = await runSynadm(config, ["media", "quarantine", "-i", media[0]!]);
        assert.equal(byId.code, 0, byId.out);
        assert.equal(await quarantinedBy(media[0]!), "@admin:test.local");
        const byRoom = await runSynadm(config, ["media", "quarantine", "-r", roomId]);
        assert.equal(byRoom.code, 0, byRoom.out);
        assert.equal(await quarantinedBy(media[1]!), "@admin:test.local");
        const byUser = await runSynadm(config, ["media", "quarantine", "-u", "@alice:test.local"]);
        assert.equal(byUser.code, 0, byUser.out);
        assert.equal(await quarantinedBy(media[2]!), "@admin:test.local");
        assert.equal(await quarantinedBy(media[3]!), null, "protected");
      });

      it("deletes media by id and by date", async () => {
        const byId = await runSynadm(config, ["media", "delete", "-i", media[0]!]);
        assert.equal(byId.code, 0, byId.out);
        assert.equal(
          (await admin.http.get(`/_synapse/admin/v1/media/test.local/${media[0]}`)).status,
          404,
        );
        // One item on each side of the cut-off: the newer one's creation
        // time is the cut-off, and deletion takes what is strictly older.
        const old = await uploadBytes(alice.http, randomBytes(3000));
        const oldTs = await createdTs(old);
        await until(() => Date.now() > oldTs);
        const newer = await uploadBytes(alice.http, randomBytes(3001));
        const cutoff = await createdTs(newer);
        assert.ok(oldTs < cutoff);
        const byDate = await runSynadm(config, ["media", "delete", "-t", String(cutoff)]);
        assert.equal(byDate.code, 0, byDate.out);
        assert.equal(
          (await admin.http.get(`/_synapse/admin/v1/media/test.local/${old}`)).status,
          404,
        );
        assert.equal(await createdTs(newer), cutoff, "the newer item is kept");
      });

      it("purges cached remote media", async () => {
        const key = remoteContentKey("remote.example", "RemoteFileForSynadmTest");
        await server.app.store.write(key, Readable.from([randomBytes(100)]));
        await server.app.database.db
          .insertInto("remote_media_cache")
          .values({
            media_origin: "remote.example",
            media_id: "RemoteForSynadm",
            media_type: "image/png",
            media_length: 100,
            created_ts: 1,
            upload_name: null,
            filesystem_id: "RemoteFileForSynadmTest",
            last_access_ts: 1,
            authenticated: true,
            sha256: null,
          })
          .execute();
        // And one used after the cut-off, which must stay.
        const cutoff = Date.now();
        const keptKey = remoteContentKey("remote.example", "RemoteFileKeptBySynadmTest");
        await server.app.store.write(keptKey, Readable.from([randomBytes(100)]));
        await server.app.database.db
          .insertInto("remote_media_cache")
          .values({
            media_origin: "remote.example",
            media_id: "RemoteKeptBySynadm",
            media_type: "image/png",
            media_length: 100,
            created_ts: 1,
            upload_name: null,
            filesystem_id: "RemoteFileKeptBySynadmTest",
            last_access_ts: cutoff + 1000,
            authenticated: true,
            sha256: null,
          })
          .execute();
        const res = await runSynadm(config, ["media", "purge", "-t", String(cutoff)]);
        assert.equal(res.code, 0, res.out);
        assert.equal(
          (await admin.http.get("/_synapse/admin/v1/media/remote.example/RemoteForSynadm")).status,
          404,
        );
        assert.ok(!(await allKeys(server.app.store)).includes(key));
        const kept = await admin.http.get(
          "/_synapse/admin/v1/media/remote.example/RemoteKeptBySynadm",
        );
        assert.equal(kept.status, 200, "media used after the cut-off is kept");
        assert.ok((await allKeys(server.app.store)).includes(keptKey));
      });
    },
  );
});
