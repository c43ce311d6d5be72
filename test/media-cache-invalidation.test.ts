/**
 * The hot path's caches (docs/deployment.md "Caches"): media rows, thumbnail
 * rows and access tokens are served from memory, and every path that changes
 * them makes the next request answer correctly at once — in the process that
 * made the change, and in every other process sharing the database.
 *
 * How "served from the cache" is made observable: the hit counters on
 * /metrics, and a change written straight into the database (behind the
 * caches' back, so nothing is announced) that a cached answer does not see.
 * The caches' TTL is one hour here, so only an invalidation can explain a
 * fresh answer.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { sql } from "kysely";
import sharp from "sharp";
import { type MediaChange, MediaChanges } from "../src/cache/media-changes.js";
import type { Channel } from "../src/db/channels.js";
import { InProcessNotificationBus } from "../src/db/in-process-notification-bus.js";
import type { NotificationBus } from "../src/db/notification-bus.js";
import {
  localContentKey,
  localThumbnailKey,
  remoteContentKey,
} from "../src/storage/media-paths.js";
import { forEachEngine } from "./support/databases.js";
import type { HttpClient } from "./support/http-client.js";
import { download } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { startProcessGroup, until } from "./support/mxcd-processes.js";
import { createRoom, image, send } from "./support/rooms.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const ADMIN = "/_synapse/admin/v1";
const CACHES = { media_cache: { metadata_ttl: "1h" } };

/** The client v1 download path of local media. */
const local = (mediaId: string) => `/_matrix/client/v1/media/download/test.local/${mediaId}`;

async function upload(
  user: TestUser | HttpClient,
  bytes: Uint8Array = randomBytes(64),
): Promise<string> {
  const http = "http" in user ? user.http : user;
  const res = await http.request("POST", "/_matrix/media/v3/upload", {
    rawBody: bytes,
    headers: { "content-type": "application/octet-stream" },
  });
  assert.equal(res.status, 200, res.text);
  return String(res.body.content_uri).split("/").pop()!;
}

forEachEngine("media caches: invalidation in one process", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer(engine, CACHES);
    admin = await server.user("admin", { admin: true });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  const counter = (name: string, labels: string) => metric(server.baseUrl, name, labels);
  const hits = (cache: string) =>
    counter("mxcd_cache_requests_total", `cache="${cache}",result="hit"`);
  const status = async (path: string, user: TestUser = alice) => (await user.http.get(path)).status;
  /** Downloads once more; asserts the answer came from the metadata cache. */
  const cachedStatus = async (path: string) => {
    const before = await hits("media_metadata");
    const answer = await status(path);
    assert.ok((await hits("media_metadata")) > before, "answered from the cache");
    return answer;
  };
  /** Sets `quarantined_by` in the database without telling anyone. */
  const sneak = (mediaId: string, by: string | null) =>
    server.app.database.db
      .updateTable("local_media_repository")
      .set({ quarantined_by: by })
      .where("media_id", "=", mediaId)
      .execute();

  /** Writes bytes at a deleted item's key: only a stale cached row could serve them. */
  const putBack = (mediaId: string) =>
    server.app.store.write(localContentKey(mediaId), Readable.from([randomBytes(64)]));

  it("serves a repeated download from the cache, without reading the row again", async () => {
    const id = await upload(alice);
    assert.equal(await status(local(id)), 200);
    assert.equal(await cachedStatus(local(id)), 200);
    // Quarantined behind the cache's back: the cached row still answers (no
    // query was made), until an announced change arrives.
    await sneak(id, "@sneaky:test.local");
    assert.equal(await cachedStatus(local(id)), 200);
    await sneak(id, null);
  });

  it("quarantine and unquarantine by id take effect at once", async () => {
    const id = await upload(alice);
    await status(local(id));
    assert.equal(await cachedStatus(local(id)), 200);
    assert.equal((await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`)).status, 200);
    assert.equal(await status(local(id)), 404);
    assert.equal(
      (await admin.http.post(`${ADMIN}/media/unquarantine/test.local/${id}`)).status,
      200,
    );
    assert.equal(await status(local(id)), 200);
  });

  it("hash propagation reaches cached copies, and new uploads of the bytes", async () => {
    const bytes = randomBytes(80);
    const [original, copy] = [await upload(alice, bytes), await upload(alice, bytes)];
    await status(local(copy));
    assert.equal(await cachedStatus(local(copy)), 200);
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${original}`);
    assert.equal(await status(local(copy)), 404);
    assert.equal(await status(local(await upload(alice, bytes))), 404);
  });

  it("user and room quarantines take effect at once", async () => {
    const bob = await server.user("bob");
    const [bobs, posted] = [await upload(bob), await upload(alice)];
    const roomId = await createRoom(alice);
    await send(alice, roomId, image(`mxc://test.local/${posted}`));
    for (const id of [bobs, posted]) {
      await status(local(id));
      assert.equal(await cachedStatus(local(id)), 200);
    }
    await admin.http.post(`${ADMIN}/user/${encodeURIComponent(bob.userId)}/media/quarantine`);
    assert.equal(await status(local(bobs)), 404);
    await admin.http.post(`${ADMIN}/room/${encodeURIComponent(roomId)}/media/quarantine`);
    assert.equal(await status(local(posted)), 404);
  });

  it("protection is announced and keeps protecting cached media", async () => {
    const id = await upload(alice);
    await status(local(id));
    const announced = () =>
      counter("mxcd_cache_invalidations_total", 'cache="media_metadata",source="local"');
    const before = await announced();
    assert.equal((await admin.http.post(`${ADMIN}/media/protect/${id}`)).status, 200);
    assert.ok((await announced()) > before, "protect invalidated the row");
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`);
    assert.equal(await status(local(id)), 200);
    await admin.http.post(`${ADMIN}/media/unprotect/${id}`);
    await status(local(id));
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`);
    assert.equal(await status(local(id)), 404);
  });

  it("deletion by id takes effect at once", async () => {
    const id = await upload(alice);
    await status(local(id));
    assert.equal(await cachedStatus(local(id)), 200);
    assert.equal((await admin.http.delete(`${ADMIN}/media/test.local/${id}`)).status, 200);
    await putBack(id);
    assert.equal(await status(local(id)), 404);
  });

  it("thumbnails: quarantine reaches the thumbnail path", async () => {
    const png = await sharp({
      create: { width: 64, height: 64, channels: 3, background: { r: 9, g: 90, b: 200 } },
    })
      .png()
      .toBuffer();
    const id = await upload(alice, png);
    const thumb = `/_matrix/client/v1/media/thumbnail/test.local/${id}?width=32&height=32&method=crop`;
    assert.equal(await status(thumb), 200);
    assert.equal(await status(thumb), 200);
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`);
    assert.equal(await status(thumb), 404);
  });

  it("the admin bypass still serves quarantined media to admins only", async () => {
    const id = await upload(alice);
    await status(local(id));
    await admin.http.post(`${ADMIN}/media/quarantine/test.local/${id}`);
    const bypass = `${local(id)}?admin_unsafely_bypass_quarantine=true`;
    assert.equal(await status(bypass, admin), 200);
    assert.equal(await status(bypass, admin), 200);
    // A non-admin asking for the bypass is refused (400, as Synapse).
    assert.equal(await status(bypass, alice), 400);
    assert.equal(await status(local(id), admin), 404);
  });

  it("remote media: quarantine, unquarantine and purge take effect at once", async () => {
    const [origin, mediaId, fsid] = ["remote.example", "CachedRemote", "fsCachedRemote00000000"];
    const now = Date.now();
    await server.app.database.db
      .insertInto("remote_media_cache")
      .values({
        media_origin: origin,
        media_id: mediaId,
        media_type: "application/octet-stream",
        media_length: 4,
        created_ts: now - 10,
        last_access_ts: now - 10,
        filesystem_id: fsid,
        authenticated: true,
        sha256: null,
      })
      .execute();
    await server.app.store.write(
      remoteContentKey(origin, fsid),
      Readable.from([Buffer.from("abcd")]),
    );
    const path = `/_matrix/client/v1/media/download/${origin}/${mediaId}`;
    assert.equal(await status(path), 200);
    assert.equal(await cachedStatus(path), 200);
    await admin.http.post(`${ADMIN}/media/quarantine/${origin}/${mediaId}`);
    assert.equal(await status(path), 404);
    await admin.http.post(`${ADMIN}/media/unquarantine/${origin}/${mediaId}`);
    assert.equal(await status(path), 200);
    // Served from the cache again, then purged (last access is older than before_ts).
    await status(path);
    const purge = await admin.http.post(`${ADMIN}/purge_media_cache?before_ts=${Date.now() + 1}`);
    assert.equal(purge.status, 200, purge.text);
    // The bytes put back behind everyone's back: only a stale cached row could serve them.
    await server.app.store.write(
      remoteContentKey(origin, fsid),
      Readable.from([Buffer.from("abcd")]),
    );
    // Unknown now (remote.example does not exist either: 404 or 502), never served.
    assert.notEqual(await status(path), 200);
  });

  it("deletion by date takes effect at once", async () => {
    const id = await upload(alice);
    await status(local(id));
    assert.equal(await cachedStatus(local(id)), 200);
    const res = await admin.http.post(`${ADMIN}/media/delete?before_ts=${Date.now() + 1000}`);
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body.deleted_media.includes(id));
    await putBack(id);
    assert.equal(await status(local(id)), 404);
  });
});

forEachEngine("thumbnail cache: the single flight re-reads the database", (engine) => {
  let server: TestServer;
  let alice: TestUser;
  before(async () => {
    server = await startTestServer(engine, {
      ...CACHES,
      dynamic_thumbnails: true,
      thumbnail_sizes: [],
    });
    alice = await server.user("alice");
  });
  after(() => server.stop());

  const rendered = () =>
    metric(server.baseUrl, "mxcd_thumbnails_generated_total", 'trigger="request"');
  const thumb = (id: string, size: number) =>
    `/_matrix/client/v1/media/thumbnail/test.local/${id}?width=${size}&height=${size}&method=crop`;

  it("finds a thumbnail another process stored, though the cached list does not show it", async () => {
    const png = await sharp({
      create: { width: 64, height: 64, channels: 3, background: { r: 200, g: 9, b: 90 } },
    })
      .png()
      .toBuffer();
    const id = await upload(alice, png);
    assert.equal((await alice.http.get(thumb(id, 20))).status, 200);
    // Served from the stored row; the thumbnail list (one row) is now cached.
    assert.equal((await alice.http.get(thumb(id, 20))).status, 200);
    const renders = await rendered();
    // Another process stores a 24×24 crop: bytes and row, and this process's
    // cache does not hear of it (no announcement).
    const made = await sharp({
      create: { width: 24, height: 24, channels: 3, background: { r: 1, g: 2, b: 3 } },
    })
      .png()
      .toBuffer();
    await server.app.store.write(
      localThumbnailKey(id, 24, 24, "image/png", "crop"),
      Readable.from([made]),
    );
    await server.app.database.db
      .insertInto("local_media_repository_thumbnails")
      .values({
        media_id: id,
        thumbnail_width: 24,
        thumbnail_height: 24,
        thumbnail_type: "image/png",
        thumbnail_method: "crop",
        thumbnail_length: made.length,
      })
      .execute();
    // The cached list misses it, so the request goes to the single flight,
    // whose look under the lock must read the database and send those bytes.
    const answer = await download(server.baseUrl, thumb(id, 24), { token: alice.token });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.bytes, made);
    assert.equal(await rendered(), renders, "nothing rendered again");
  });
});

forEachEngine("access-token cache: revocation in one process", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  before(async () => {
    server = await startTestServer(engine, CACHES);
    admin = await server.user("admin", { admin: true });
  });
  after(() => server.stop());

  const hits = () =>
    metric(server.baseUrl, "mxcd_cache_requests_total", 'cache="access_token",result="hit"');
  const whoami = async (user: TestUser) =>
    (await user.http.get("/_matrix/client/v3/account/whoami")).status;
  /** Authenticates twice; asserts the second came from the cache. */
  const warm = async (user: TestUser) => {
    assert.equal(await whoami(user), 200);
    const before = await hits();
    assert.equal(await whoami(user), 200);
    assert.ok((await hits()) > before, "authenticated from the cache");
  };
  const updateUser = (user: TestUser, body: object) =>
    admin.http.put(`/_synapse/admin/v2/users/${encodeURIComponent(user.userId)}`, body);

  it("logout and logout/all revoke cached tokens", async () => {
    const user = await server.user("carl");
    await warm(user);
    assert.equal((await user.http.post("/_matrix/client/v3/logout", {})).status, 200);
    assert.equal(await whoami(user), 401);
    const again = await server.user("carl2");
    await warm(again);
    assert.equal((await again.http.post("/_matrix/client/v3/logout/all", {})).status, 200);
    assert.equal(await whoami(again), 401);
  });

  it("deactivation and a password change revoke cached tokens", async () => {
    const dora = await server.user("dora");
    await warm(dora);
    assert.equal((await updateUser(dora, { deactivated: true })).status, 200);
    assert.equal(await whoami(dora), 401);
    const erin = await server.user("erin");
    await warm(erin);
    assert.equal((await updateUser(erin, { password: "another-password" })).status, 200);
    assert.equal(await whoami(erin), 401);
  });

  it("an admin flag change takes effect at once", async () => {
    const fay = await server.user("fay");
    const adminCall = async () => (await fay.http.get(`${ADMIN}/rooms`)).status;
    assert.equal(await adminCall(), 403);
    await warm(fay);
    await updateUser(fay, { admin: true });
    assert.equal(await adminCall(), 200);
    await updateUser(fay, { admin: false });
    assert.equal(await adminCall(), 403);
  });

  it("an expired token never authenticates, cached or not", async () => {
    const gus = await server.user("gus");
    const validUntil = Date.now() + 1500;
    const session = await server.app.accounts.issueToken(gus.userId, "EXPIRING", validUntil);
    const user = { ...gus, http: gus.http.withToken(session.accessToken) };
    await warm(user);
    await until(() => Date.now() > validUntil);
    assert.equal(await whoami(user), 401);
  });
});

describe(
  "media caches: three processes on PostgreSQL",
  {
    skip: process.env.MXCD_TEST_POSTGRES_URL ? false : "PostgreSQL not available",
  },
  () => {
    it(
      "a change on one process is seen by the others' caches; staleness measured",
      { timeout: 180_000 },
      async (t) => {
        const group = await startProcessGroup(3, CACHES);
        t.after(() => group.stop());
        const [a, b, c] = group.processes as [
          (typeof group.processes)[0],
          (typeof group.processes)[0],
          (typeof group.processes)[0],
        ];
        const adminToken = await group.token("admin", { admin: true });
        const userToken = await group.token("alice");
        const hitsOn = (p: typeof a, cache: string) =>
          metric(p.base, "mxcd_cache_requests_total", `cache="${cache}",result="hit"`);
        const get = async (p: typeof a, path: string, token = userToken) =>
          (await p.http(token).get(path)).status;
        /**
         * Until B and C each serve `path` from their cache (a notification of
         * an earlier change may still be on its way, emptying it once more).
         */
        const warmOthers = async (path: string) => {
          for (const p of [b, c]) {
            await until(async () => {
              assert.equal(await get(p, path), 200);
              const before = await hitsOn(p, "media_metadata");
              assert.equal(await get(p, path), 200);
              return (await hitsOn(p, "media_metadata")) > before;
            });
          }
        };
        /** Ms from A's answer until B and C both answer `expected` (polled as fast as they answer). */
        const staleness = async (path: string, expected: number) => {
          const answered = performance.now();
          let worst = 0;
          await Promise.all(
            [b, c].map(async (p) => {
              await until(async () => (await get(p, path)) === expected);
              worst = Math.max(worst, performance.now() - answered);
            }),
          );
          return worst;
        };
        const res = await a.http(userToken).request("POST", "/_matrix/media/v3/upload", {
          rawBody: randomBytes(64),
          headers: { "content-type": "application/octet-stream" },
        });
        const id = String(res.body.content_uri).split("/").pop()!;
        const path = local(id);
        const admin = a.http(adminToken);
        const windows: number[] = [];

        for (let round = 0; round < 5; round++) {
          await warmOthers(path);
          assert.equal(
            (await admin.post(`${ADMIN}/media/quarantine/test.local/${id}`)).status,
            200,
          );
          windows.push(await staleness(path, 404));
          assert.equal(
            (await admin.post(`${ADMIN}/media/unquarantine/test.local/${id}`)).status,
            200,
          );
          windows.push(await staleness(path, 200));
        }

        // Protection: announced to the other processes' caches.
        const remoteInvalidations = (p: typeof a) =>
          metric(
            p.base,
            "mxcd_cache_invalidations_total",
            'cache="media_metadata",source="remote"',
          );
        const before = [await remoteInvalidations(b), await remoteInvalidations(c)];
        assert.equal((await admin.post(`${ADMIN}/media/protect/${id}`)).status, 200);
        await until(async () => (await remoteInvalidations(b)) > before[0]!);
        await until(async () => (await remoteInvalidations(c)) > before[1]!);
        await warmOthers(path);
        await admin.post(`${ADMIN}/media/quarantine/test.local/${id}`);
        assert.equal(await get(b, path), 200, "protected media stays served");
        await admin.post(`${ADMIN}/media/unprotect/${id}`);

        // Deletion.
        await warmOthers(path);
        assert.equal((await admin.delete(`${ADMIN}/media/test.local/${id}`)).status, 200);
        // Bytes put back: only a stale cached row could serve them.
        await group.store.write(localContentKey(id), Readable.from([randomBytes(64)]));
        windows.push(await staleness(path, 404));

        // A lost notification: a change written behind every process's back is
        // seen once the listening connections are cut and come back (their
        // caches are emptied on reconnection; the TTL here is an hour).
        const other = await upload(a.http(userToken));
        await warmOthers(local(other));
        await group.services.database.db
          .updateTable("local_media_repository")
          .set({ quarantined_by: "@sneaky:test.local" })
          .where("media_id", "=", other)
          .execute();
        assert.equal(await get(b, local(other)), 200, "still cached");
        await sql`select pg_terminate_backend(pid) from pg_stat_activity
        where application_name = 'mxcd-notifications'`.execute(group.services.database.db);
        await until(async () => (await get(b, local(other))) === 404);
        await until(async () => (await get(c, local(other))) === 404);

        // Tokens: a logout on A reaches B's token cache.
        const whoami = "/_matrix/client/v3/account/whoami";
        await until(async () => {
          assert.equal(await get(b, whoami), 200);
          const tokenHits = await hitsOn(b, "access_token");
          assert.equal(await get(b, whoami), 200);
          return (await hitsOn(b, "access_token")) > tokenHits;
        });
        assert.equal((await a.http(userToken).post("/_matrix/client/v3/logout", {})).status, 200);
        await until(async () => (await get(b, whoami)) === 401);

        windows.sort((x, y) => x - y);
        t.diagnostic(
          `staleness window (ms, A answered → B and C answer): median ${windows[
            Math.floor(windows.length / 2)
          ]?.toFixed(1)}, max ${windows[windows.length - 1]?.toFixed(1)}, all ${windows
            .map((w) => w.toFixed(1))
            .join(" ")}`,
        );
      },
    );
  },
);

describe("MediaChanges payloads", () => {
  /** A bus that records what is sent and delivers it back, as the in-process bus does. */
  function recordingBus() {
    const sent: string[] = [];
    const inner = new InProcessNotificationBus();
    const bus: NotificationBus = {
      publish(channel: Channel, payload: string) {
        sent.push(payload);
        inner.publish(channel, payload);
      },
      subscribe: (channel, listener) => inner.subscribe(channel, listener),
      start: () => inner.start(),
      stop: () => inner.stop(),
    };
    return { bus, sent };
  }

  it("batches bulk changes under PostgreSQL's payload limit, and turns huge ones into 'all'", () => {
    const { bus, sent } = recordingBus();
    const changes = new MediaChanges(bus);
    const seen: MediaChange[] = [];
    changes.subscribe((change) => seen.push(change));
    const many = Array.from({ length: 900 }, (_, i) => ({
      kind: "remote" as const,
      origin: "a-rather-long-server-name.example.org",
      mediaId: `media${String(i).padStart(40, "x")}`,
    }));
    changes.publishMany(many);
    assert.ok(sent.length > 1, "split into several notifications");
    for (const payload of sent) assert.ok(Buffer.byteLength(payload) < 7900);
    assert.deepEqual(seen, many);

    sent.length = 0;
    seen.length = 0;
    changes.publishMany(
      Array.from({ length: 1001 }, (_, i) => ({ kind: "local", mediaId: `m${i}` })),
    );
    assert.deepEqual(sent, ["*"]);
    assert.deepEqual(seen, [{ kind: "all" }]);
  });
});
