/**
 * Media retention (docs/media.md "Retention") end to end on SQLite and
 * PostgreSQL, with the media store of the run (filesystem, or s3rver under
 * MXCD_TEST_MEDIA_STORE=s3, whose bucket is listed directly): two federating
 * servers, A (whose retention job runs in the background every 100 ms) and
 * B (whose passes the tests run one at a time).
 *
 * Time is each app's injected clock: A's stays put and the tests date rows
 * in its past; B's moves forward. No test sleeps: A's passes are awaited on
 * `mxcd_media_retention_passes_total`.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import sharp from "sharp";
import {
  localContentKey,
  localThumbnailPrefix,
  remoteContentKey,
  remoteThumbnailPrefix,
} from "../src/storage/media-paths.js";
import { forEachEngine } from "./support/databases.js";
import { download, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { freePort } from "./support/postgres-cluster.js";
import {
  DAY,
  retentionJob,
  runPass,
  storeKeys,
  storeMismatches,
  under,
} from "./support/retention.js";
import { createRoom, setState } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const ADMIN = "/_synapse/admin/v1";

async function png(colour: string): Promise<Buffer> {
  return sharp({ create: { width: 64, height: 48, channels: 3, background: colour } })
    .png()
    .toBuffer();
}

forEachEngine("media retention", (engine) => {
  let a: TestServer;
  let b: TestServer;
  let alice: TestUser;
  let adminA: TestUser;
  let bob: TestUser;
  const clockA = Date.now();
  let clockB = Date.now();
  let colour = 0;
  const nextPng = () => png(`#${(colour++ * 7919).toString(16).padStart(6, "0").slice(-6)}`);

  before(async () => {
    const [portA, portB] = [await freePort(), await freePort()];
    const resolvers = {
      "a.test": `http://127.0.0.1:${portA}`,
      "b.test": `http://127.0.0.1:${portB}`,
    };
    const common = { ip_range_whitelist: ["127.0.0.0/8"], federation_custom_resolvers: resolvers };
    b = await startTestServer(
      engine,
      {
        ...common,
        server_name: "b.test",
        listen: { host: "127.0.0.1", port: portB },
        media_retention: { local_media_lifetime: "30d", check_interval: "1d" },
      },
      { appOptions: { now: () => clockB } },
    );
    a = await startTestServer(
      engine,
      {
        ...common,
        server_name: "a.test",
        listen: { host: "127.0.0.1", port: portA },
        media_retention: {
          local_media_lifetime: "30d",
          remote_media_lifetime: "7d",
          local_media_max_age: "365d",
          check_interval: "100ms",
        },
      },
      { appOptions: { now: () => clockA } },
    );
    alice = await a.user("alice");
    adminA = await a.user("admin", { admin: true });
    bob = await b.user("bob");
  });
  after(async () => {
    await a?.stop();
    await b?.stop();
  });

  /** Status of a client v1 download on A of `origin`'s `mediaId`. */
  const statusOnA = async (origin: string, mediaId: string) =>
    (
      await download(a.baseUrl, `/_matrix/client/v1/media/download/${origin}/${mediaId}`, {
        token: alice.token,
      })
    ).status;

  /** Waits until A's background job has finished two passes from now (the first may have begun earlier). */
  const twoPassesOnA = async () => {
    const passes = () => metric(a.baseUrl, "mxcd_media_retention_passes_total");
    const start = await passes();
    await waitFor(async () => (await passes()) >= start + 2, "two retention passes on A");
  };

  it("counts federation downloads and thumbnail reads as access", async () => {
    const ids = {
      federated: await uploadBytes(bob.http, await nextPng(), { contentType: "image/png" }),
      federatedThumbnail: await uploadBytes(bob.http, await nextPng(), {
        contentType: "image/png",
      }),
      thumbnail: await uploadBytes(bob.http, await nextPng(), { contentType: "image/png" }),
      unread: await uploadBytes(bob.http, await nextPng(), { contentType: "image/png" }),
    };
    // 40 days later on B, every upload is past local_media_lifetime (30d)...
    clockB += 40 * DAY;
    // ...but three are read now: by A over federation (download, thumbnail), and on B.
    assert.equal(await statusOnA("b.test", ids.federated), 200);
    const thumbOnA = await download(
      a.baseUrl,
      `/_matrix/client/v1/media/thumbnail/b.test/${ids.federatedThumbnail}?width=32&height=32&method=crop`,
      { token: alice.token },
    );
    assert.equal(thumbOnA.status, 200);
    const thumbOnB = await download(
      b.baseUrl,
      `/_matrix/client/v1/media/thumbnail/b.test/${ids.thumbnail}?width=32&height=32&method=crop`,
      { token: bob.token },
    );
    assert.equal(thumbOnB.status, 200);
    await b.app.accessTimes.flush();
    await runPass(b, retentionJob(b, () => clockB).job);
    const left = await b.app.database.db
      .selectFrom("local_media_repository")
      .select("media_id")
      .where("media_id", "in", Object.values(ids))
      .execute();
    assert.deepEqual(
      left.map((r) => r.media_id).sort(),
      [ids.federated, ids.federatedThumbnail, ids.thumbnail].sort(),
    );
    const status = (id: string) =>
      download(b.baseUrl, `/_matrix/client/v1/media/download/b.test/${id}`, { token: bob.token });
    assert.equal((await status(ids.unread)).status, 404);
    assert.equal((await status(ids.federated)).status, 200);
  });

  it("deletes old local and remote media with their thumbnails, sparing every exemption", async () => {
    const upload = async () =>
      uploadBytes(alice.http, await nextPng(), { contentType: "image/png" });
    const local = {
      neverAccessed: await upload(),
      accessedLongAgo: await upload(),
      accessedRecently: await upload(),
      pastMaxAge: await upload(),
      historicRoomAvatar: await upload(),
      quarantined: await upload(),
      protectedMedia: await upload(),
      profileAvatar: await upload(),
      memberAvatar: await upload(),
      roomAvatar: await upload(),
    };
    const pending = (await alice.http.post("/_matrix/media/v1/create", {})).body.content_uri;
    const pendingId = String(pending).split("/").pop()!;
    // Thumbnails of two that go (they must go with them).
    for (const id of [local.neverAccessed, local.pastMaxAge]) {
      const res = await download(
        a.baseUrl,
        `/_matrix/client/v1/media/thumbnail/a.test/${id}?width=32&height=32&method=crop`,
        { token: alice.token },
      );
      assert.equal(res.status, 200);
    }
    // Remote media cached on A, one with a thumbnail of A's.
    const remote = {
      old: await uploadBytes(bob.http, await nextPng(), { contentType: "image/png" }),
      quarantined: await uploadBytes(bob.http, await nextPng(), { contentType: "image/png" }),
      roomAvatar: await uploadBytes(bob.http, await nextPng(), { contentType: "image/png" }),
    };
    for (const id of Object.values(remote)) assert.equal(await statusOnA("b.test", id), 200);
    const remoteThumb = await download(
      a.baseUrl,
      `/_matrix/client/v1/media/thumbnail/b.test/${remote.old}?width=32&height=32&method=crop`,
      { token: alice.token },
    );
    assert.equal(remoteThumb.status, 200);

    // The exemptions, set up while nothing is old yet.
    const admin = (path: string) => adminA.http.post(`${ADMIN}${path}`, {});
    assert.equal((await admin(`/media/quarantine/a.test/${local.quarantined}`)).status, 200);
    assert.equal((await admin(`/media/protect/${local.protectedMedia}`)).status, 200);
    assert.equal((await admin(`/media/quarantine/b.test/${remote.quarantined}`)).status, 200);
    const avatar = await alice.http.put(
      `/_matrix/client/v3/profile/${encodeURIComponent(alice.userId)}/avatar_url`,
      { avatar_url: `mxc://a.test/${local.profileAvatar}` },
    );
    assert.equal(avatar.status, 200, avatar.text);
    const room = await createRoom(alice);
    await setState(alice, room, "m.room.avatar", {
      url: `mxc://a.test/${local.historicRoomAvatar}`,
    });
    await setState(alice, room, "m.room.avatar", { url: `mxc://a.test/${local.roomAvatar}` });
    await setState(
      alice,
      room,
      "m.room.member",
      { membership: "join", avatar_url: `mxc://a.test/${local.memberAvatar}` },
      alice.userId,
    );
    const remoteRoom = await createRoom(alice);
    await setState(alice, remoteRoom, "m.room.avatar", {
      url: `mxc://b.test/${remote.roomAvatar}`,
    });
    await a.app.accessTimes.flush();

    // Now date everything: created 400 days ago (past local_media_max_age),
    // never accessed, except two; remote last accessed 8 days ago (past 7d).
    const db = a.app.database.db;
    const ids = [...Object.values(local), pendingId];
    await db
      .updateTable("local_media_repository")
      .set({ created_ts: clockA - 400 * DAY, last_access_ts: null })
      .where("media_id", "in", ids)
      .execute();
    await db
      .updateTable("local_media_repository")
      .set({ created_ts: clockA - 100 * DAY, last_access_ts: clockA - 31 * DAY })
      .where("media_id", "=", local.accessedLongAgo)
      .execute();
    await db
      .updateTable("local_media_repository")
      .set({ created_ts: clockA - 100 * DAY, last_access_ts: clockA - DAY })
      .where("media_id", "=", local.accessedRecently)
      .execute();
    await db
      .updateTable("local_media_repository")
      .set({ last_access_ts: clockA - DAY })
      .where("media_id", "=", local.pastMaxAge)
      .execute();
    const before = await storeKeys(a);
    const remoteRows = await db
      .selectFrom("remote_media_cache")
      .select(["media_id", "filesystem_id", "media_length"])
      .where("media_origin", "=", "b.test")
      .where("media_id", "in", Object.values(remote))
      .execute();
    const fsId = (id: string) => remoteRows.find((r) => r.media_id === id)!.filesystem_id;
    assert.ok(under(before, remoteThumbnailPrefix("b.test", fsId(remote.old))).length > 0);
    for (const id of [local.neverAccessed, local.pastMaxAge]) {
      assert.ok(under(before, localThumbnailPrefix(id)).length > 0, "a thumbnail was stored");
    }
    await db
      .updateTable("remote_media_cache")
      .set({ last_access_ts: clockA - 8 * DAY })
      .where("media_origin", "=", "b.test")
      .where("media_id", "in", Object.values(remote))
      .execute();

    await twoPassesOnA();

    const gone = [
      local.neverAccessed,
      local.accessedLongAgo,
      local.pastMaxAge,
      local.historicRoomAvatar,
    ];
    const kept = [
      local.accessedRecently,
      local.quarantined,
      local.protectedMedia,
      local.profileAvatar,
      local.memberAvatar,
      local.roomAvatar,
      pendingId,
    ];
    const rows = await db
      .selectFrom("local_media_repository")
      .select("media_id")
      .where("media_id", "in", ids)
      .execute();
    assert.deepEqual(rows.map((r) => r.media_id).sort(), [...kept].sort());
    const remoteLeft = await db
      .selectFrom("remote_media_cache")
      .select("media_id")
      .where("media_origin", "=", "b.test")
      .where("media_id", "in", Object.values(remote))
      .execute();
    assert.deepEqual(
      remoteLeft.map((r) => r.media_id).sort(),
      [remote.quarantined, remote.roomAvatar].sort(),
    );
    // Gone from the store (the folder, or s3rver's bucket), thumbnails too.
    const after = await storeKeys(a);
    for (const id of gone) {
      assert.deepEqual(under(after, localContentKey(id)), [], `${id} bytes`);
      assert.deepEqual(under(after, localThumbnailPrefix(id)), [], `${id} thumbnails`);
    }
    assert.deepEqual(under(after, remoteContentKey("b.test", fsId(remote.old))), []);
    assert.deepEqual(under(after, remoteThumbnailPrefix("b.test", fsId(remote.old))), []);
    for (const id of kept.filter((k) => k !== pendingId)) {
      assert.equal(under(after, localContentKey(id)).length, 1, `${id} kept`);
    }
    assert.deepEqual(await storeMismatches(a), []);
    // Gone for clients (404), the rest still served.
    for (const id of gone) assert.equal(await statusOnA("a.test", id), 404, id);
    for (const id of [local.accessedRecently, local.protectedMedia, local.profileAvatar]) {
      assert.equal(await statusOnA("a.test", id), 200, id);
    }
    // Counted on /metrics.
    assert.ok((await metric(a.baseUrl, "mxcd_media_retention_deleted_total", 'kind="local"')) >= 4);
    assert.ok(
      (await metric(a.baseUrl, "mxcd_media_retention_deleted_total", 'kind="remote"')) >= 1,
    );
    const bytes = await metric(
      a.baseUrl,
      "mxcd_media_retention_deleted_bytes_total",
      'kind="remote"',
    );
    assert.ok(bytes >= Number(remoteRows.find((r) => r.media_id === remote.old)!.media_length));
  });
});
