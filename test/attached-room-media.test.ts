/**
 * Room media listing and room quarantine in attached mode, for rooms whose
 * history mxcd's reference index never saw: the index merged with the
 * homeserver's `GET /_synapse/admin/v1/room/<id>/media` (RoomMediaSource),
 * against the scripted homeserver, on SQLite and PostgreSQL. Media are
 * uploaded to mxcd by the homeserver's users and referenced in rooms of the
 * homeserver; no application service pushes them, unless a test says so.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, it } from "node:test";
import type { ConfigInput } from "../src/config/config-schema.js";
import {
  generateRegistration,
  registrationYaml,
} from "../src/homeserver/app-service-registration.js";
import { AppServicePusher } from "./support/app-service-pusher.js";
import { forEachEngine } from "./support/databases.js";
import type { HttpClient } from "./support/http-client.js";
import { quarantinedBy, uploadBytes } from "./support/media.js";
import { ScriptedHomeserver } from "./support/scripted-homeserver.js";
import { runSynadm, synadmInstalled, writeSynadmConfig } from "./support/synadm.js";
import { startTestServer, TEST_SERVER_NAME, type TestServer } from "./support/test-server.js";

const S = TEST_SERVER_NAME;
const ADMIN = "/_synapse/admin/v1";
const enc = encodeURIComponent;
/** The path mxcd asks the homeserver (and the scripted homeserver counts). */
const hsRoomMedia = (roomId: string) => `/_synapse/admin/v1/room/${enc(roomId)}/media`;
const local = (id: string) => `mxc://${S}/${id}`;

function attachedConfig(
  baseUrl: string,
  adminAccessToken: string | null,
  extra: Partial<ConfigInput> = {},
): Partial<ConfigInput> {
  return {
    mode: "attached",
    homeserver: {
      base_url: baseUrl,
      admin_api: "synapse",
      admin_access_token: adminAccessToken,
      // Short, so the "slow homeserver" test waits a little; no breaker in these tests.
      request_timeout: "1s",
      failure_threshold: 1000,
    },
    access_token_cache: { ttl: "10m", negative_ttl: "10m", admin_ttl: "10m" },
    ...extra,
  };
}

let serial = 0;
function tokenFor(hs: ScriptedHomeserver, localpart: string, admin = false): string {
  const token = `syt_${localpart}_${++serial}_${Math.random().toString(36).slice(2)}`;
  hs.addToken(token, { userId: `@${localpart}:${S}`, deviceId: "DEV", admin });
  return token;
}

/** An `m.image` in a homeserver room (the index never sees it: no application service). */
function sendImage(hs: ScriptedHomeserver, roomId: string, url: string, thumbnail?: string) {
  const info = thumbnail === undefined ? {} : { info: { thumbnail_url: thumbnail } };
  return hs.sendEvent(roomId, `@alice:${S}`, "m.room.message", {
    msgtype: "m.image",
    body: "image",
    url,
    ...info,
  });
}

function listing(http: HttpClient, roomId: string) {
  return http.get(`${ADMIN}/room/${enc(roomId)}/media`);
}

function quarantineRoom(http: HttpClient, roomId: string, legacy = false) {
  const path = legacy
    ? `${ADMIN}/quarantine_media/${enc(roomId)}`
    : `${ADMIN}/room/${enc(roomId)}/media/quarantine`;
  return http.post(path, {});
}

/** Feed position and every quarantined row: "nothing changed" compares these. */
async function quarantineState(server: TestServer) {
  const db = server.app.database.db;
  const quarantinedLocal = await db
    .selectFrom("local_media_repository")
    .select("media_id")
    .where("quarantined_by", "is not", null)
    .orderBy("media_id")
    .execute();
  const blocks = await db
    .selectFrom("quarantine_blocks")
    .select(["media_origin", "media_id"])
    .orderBy("media_origin")
    .orderBy("media_id")
    .execute();
  const { position } = await db
    .selectFrom("quarantine_stream")
    .select("position")
    .executeTakeFirstOrThrow();
  return { quarantinedLocal, blocks, position: Number(position) };
}

function download(http: HttpClient, mediaId: string) {
  return http.get(`/_matrix/client/v1/media/download/${S}/${mediaId}`);
}

forEachEngine("attached room media with the caller's token", (engine) => {
  let hs: ScriptedHomeserver;
  let server: TestServer;
  let alice: HttpClient;
  let adminToken: string;
  let admin: HttpClient;

  before(async () => {
    hs = await ScriptedHomeserver.start({ serverName: S });
    server = await startTestServer(
      engine,
      attachedConfig(hs.baseUrl, null, { admins: [`@root:${S}`] }),
    );
    alice = server.http.withToken(tokenFor(hs, "alice"));
    adminToken = tokenFor(hs, "admin", true);
    admin = server.http.withToken(adminToken);
  });
  after(async () => {
    await server?.stop();
    await hs?.stop();
  });
  beforeEach(() => {
    hs.failWith = undefined;
  });

  /** A homeserver room with two uploads (one with a thumbnail upload) and a remote image. */
  async function roomWithMedia() {
    const image = await uploadBytes(alice, `image ${++serial}`, { contentType: "text/plain" });
    const thumb = await uploadBytes(alice, `thumb ${serial}`, { contentType: "text/plain" });
    const other = await uploadBytes(alice, `other ${serial}`, { contentType: "text/plain" });
    const roomId = hs.createRoom(`@alice:${S}`, "pictures");
    sendImage(hs, roomId, local(other));
    sendImage(hs, roomId, `mxc://remote.example/R${serial}`);
    sendImage(hs, roomId, local(image), local(thumb));
    return { roomId, image, thumb, other, remote: `R${serial}` };
  }

  it("lists the homeserver's media of a room the index never saw, each once, newest first", async () => {
    const { roomId, image, thumb, other, remote } = await roomWithMedia();
    sendImage(hs, roomId, local(other)); // a repeat: listed once, at its newest place
    const asked = hs.count(hsRoomMedia(roomId));
    const res = await listing(admin, roomId);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, {
      local: [local(other), local(image), local(thumb)],
      remote: [`mxc://remote.example/${remote}`],
    });
    assert.equal(hs.count(hsRoomMedia(roomId)), asked + 1);
    // With admin_access_token null, the caller's own token was sent (the last request).
    assert.equal(hs.seen.at(-1)?.authorization, `Bearer ${adminToken}`);
  });

  it("skips entries that are not valid mxc URIs, never passing them on", async () => {
    const roomId = hs.createRoom(`@alice:${S}`);
    const good = await uploadBytes(alice, "good", { contentType: "text/plain" });
    for (const bad of [
      "mxc://bad host/abc",
      "mxc://remote.example/../../etc",
      "mxc://remote.example/a/b",
      "mxc://remote.example/",
      "mxc:///abc",
      `mxc://${S}/id?query`,
      `mxc://${"a".repeat(300)}/x`,
    ]) {
      sendImage(hs, roomId, bad);
    }
    sendImage(hs, roomId, local(good));
    const res = await listing(admin, roomId);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { local: [local(good)], remote: [] });
  });

  it("has only the index's media for a room the homeserver does not know (404)", async () => {
    const roomId = `!unknown${++serial}:${S}`;
    const res = await listing(admin, roomId);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { local: [], remote: [] });
    assert.equal(hs.count(hsRoomMedia(roomId)), 1, "the homeserver was asked");
    const quarantined = await quarantineRoom(admin, roomId);
    assert.equal(quarantined.status, 200, quarantined.text);
    assert.deepEqual(quarantined.body, { num_quarantined: 0 });
  });

  it("accepts a room version 12 id (no server name) and asks the homeserver about it", async () => {
    const roomId = `!${"v12HashOfTheCreateEvent_-".padEnd(43, "x")}`;
    const res = await listing(admin, roomId);
    assert.equal(res.status, 200, res.text);
    assert.equal(hs.count(hsRoomMedia(roomId)), 1, "the homeserver was asked");
    assert.equal((await quarantineRoom(admin, roomId)).status, 200);
  });

  it("quarantines the homeserver's media of the room; the rest stays served", async () => {
    const { roomId, image, thumb, other, remote } = await roomWithMedia();
    const bystander = await uploadBytes(alice, "not in the room", { contentType: "text/plain" });
    // A local id mxcd never stored: nothing to change, not counted (as Synapse counts rows).
    sendImage(hs, roomId, local("NeverStoredHere"));
    for (const id of [image, thumb, other]) assert.equal((await download(alice, id)).status, 200);

    const res = await quarantineRoom(admin, roomId);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { num_quarantined: 3 });
    for (const id of [image, thumb, other]) {
      const refused = await download(alice, id);
      assert.equal(refused.status, 404, id);
      assert.equal(refused.body.errcode, "M_NOT_FOUND");
      assert.equal(await quarantinedBy(server, id), `@admin:${S}`);
    }
    assert.equal((await download(alice, bystander)).status, 200, "unquarantined media is served");
    // Remote media never fetched is blocked: quarantined when it is fetched.
    const { blocks } = await quarantineState(server);
    assert.ok(blocks.some((b) => b.media_origin === "remote.example" && b.media_id === remote));
    // Again: nothing is a transition any more.
    assert.deepEqual((await quarantineRoom(admin, roomId)).body, { num_quarantined: 0 });
  });

  it("quarantines through the legacy /quarantine_media/<room_id> path too", async () => {
    const { roomId, image } = await roomWithMedia();
    const res = await quarantineRoom(admin, roomId, true);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, { num_quarantined: 3 });
    assert.equal((await download(alice, image)).status, 404);
  });

  it("passes the homeserver's 403 on when the mxcd admin is no homeserver admin", async () => {
    const { roomId, image } = await roomWithMedia();
    const root = server.http.withToken(tokenFor(hs, "root")); // in `admins`, not a homeserver admin
    const before = await quarantineState(server);
    for (const res of [await listing(root, roomId), await quarantineRoom(root, roomId)]) {
      assert.equal(res.status, 403, res.text);
      assert.equal(res.body.errcode, "M_FORBIDDEN");
      assert.match(res.body.error, /homeserver\.admin_access_token/);
    }
    assert.deepEqual(await quarantineState(server), before, "nothing was quarantined");
    assert.equal(await quarantinedBy(server, image), null);
  });

  it("answers 502/504 M_UNKNOWN when the homeserver fails, and quarantines nothing", async () => {
    const { roomId, image } = await roomWithMedia();
    assert.equal((await listing(admin, roomId)).status, 200); // the admin's token is warm now
    const before = await quarantineState(server);
    for (const mode of ["500", "html502", "reset", "stall"] as const) {
      hs.failWith = mode;
      const status = mode === "stall" ? 504 : 502;
      for (const res of [await listing(admin, roomId), await quarantineRoom(admin, roomId)]) {
        assert.equal(res.status, status, `${mode}: ${res.text}`);
        assert.equal(res.body.errcode, "M_UNKNOWN", mode);
        assert.match(res.body.error, /homeserver/, mode);
      }
      hs.release();
    }
    assert.deepEqual(await quarantineState(server), before, "nothing was quarantined");
    assert.equal(await quarantinedBy(server, image), null);
    assert.equal((await download(alice, image)).status, 200);
  });

  it("refuses a malformed room id with 400 before asking the homeserver", async () => {
    assert.equal((await listing(admin, `!warm:${S}`)).status, 200); // warm token and admin flag
    const total = hs.total;
    for (const roomId of [
      "garbage",
      "!nocolon",
      `!:${S}`,
      "!a:bad host",
      `!${"a".repeat(300)}:${S}`,
    ]) {
      for (const res of [
        await listing(admin, roomId),
        await quarantineRoom(admin, roomId),
        await quarantineRoom(admin, roomId, true),
      ]) {
        assert.equal(res.status, 400, `${roomId}: ${res.text}`);
        assert.equal(res.body.errcode, "M_INVALID_PARAM");
      }
    }
    assert.equal(hs.total, total, "no homeserver request");
  });

  const synadm = synadmInstalled() ? it : it.skip;
  synadm("quarantines a homeserver room's media with synadm (media quarantine -r)", async () => {
    const { roomId, image } = await roomWithMedia();
    const config = writeSynadmConfig({
      user: `@admin:${S}`,
      token: adminToken,
      baseUrl: server.baseUrl,
      serverName: S,
    });
    const out = await runSynadm(config, ["media", "quarantine", "-r", roomId]);
    assert.equal(out.code, 0, out.out);
    assert.match(out.out, /"num_quarantined": 3/);
    assert.equal(await quarantinedBy(server, image), `@admin:${S}`);
  });
});

forEachEngine("attached room media with homeserver.admin_access_token", (engine) => {
  const serviceToken = "syt_mxcd_service_token";
  let hs: ScriptedHomeserver;
  let server: TestServer;
  let pusher: AppServicePusher;
  let alice: HttpClient;
  let root: HttpClient;

  before(async () => {
    hs = await ScriptedHomeserver.start({ serverName: S });
    hs.addToken(serviceToken, { userId: `@mxcd-service:${S}`, admin: true });
    const registration = generateRegistration({ url: "http://127.0.0.1:1" });
    const path = join(mkdtempSync(join(tmpdir(), "mxcd-as-")), "registration.yaml");
    writeFileSync(path, registrationYaml(registration));
    server = await startTestServer(
      engine,
      attachedConfig(hs.baseUrl, serviceToken, {
        app_service: { registration: path },
        admins: [`@root:${S}`],
      }),
    );
    pusher = new AppServicePusher({ url: server.baseUrl, hsToken: registration.hs_token });
    alice = server.http.withToken(tokenFor(hs, "alice"));
    // An mxcd admin (the `admins` list) who is no homeserver admin: the configured token lists.
    root = server.http.withToken(tokenFor(hs, "root"));
  });
  after(async () => {
    await server?.stop();
    await hs?.stop();
  });

  it("merges the index (first, its order) with the homeserver's older history", async () => {
    const ids: Record<string, string> = {};
    for (const name of ["old", "mid", "pushed", "indexOnly"]) {
      ids[name] = await uploadBytes(alice, `${name} ${++serial}`, { contentType: "text/plain" });
    }
    const roomId = hs.createRoom(`@alice:${S}`);
    sendImage(hs, roomId, local(ids.old!));
    sendImage(hs, roomId, local(ids.mid!));
    // The application service is registered from here on: later events reach the index too.
    hs.attachAppService(pusher);
    sendImage(hs, roomId, local(ids.pushed!));
    await hs.pushed();
    // An event only the index has (the homeserver's list does not include it).
    pusher.enqueue({
      event_id: `$indexonly${serial}`,
      room_id: roomId,
      sender: `@alice:${S}`,
      type: "m.room.message",
      origin_server_ts: Date.now(),
      content: { msgtype: "m.image", body: "x", url: local(ids.indexOnly!) },
    });
    await pusher.flush();

    const res = await listing(root, roomId);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.local, [
      local(ids.indexOnly!),
      local(ids.pushed!),
      local(ids.mid!),
      local(ids.old!),
    ]);
    assert.equal(hs.seen.at(-1)?.authorization, `Bearer ${serviceToken}`, "the configured token");

    const quarantined = await quarantineRoom(root, roomId);
    assert.equal(quarantined.status, 200, quarantined.text);
    assert.deepEqual(quarantined.body, { num_quarantined: 4 });
    for (const id of Object.values(ids)) assert.equal((await download(alice, id)).status, 404);
  });

  it("answers a room created after the application service from the index alone", async () => {
    hs.attachAppService(pusher);
    const id = await uploadBytes(alice, `new room ${++serial}`, { contentType: "text/plain" });
    const roomId = hs.createRoom(`@alice:${S}`); // its m.room.create is pushed
    sendImage(hs, roomId, local(id));
    await hs.pushed();
    const res = await listing(root, roomId);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body.local, [local(id)]);
    assert.equal(hs.count(hsRoomMedia(roomId)), 0, "the homeserver was not asked");
  });

  it("changes nothing, not even the index's media, when the homeserver fails", async () => {
    const pushed = await uploadBytes(alice, `pushed ${++serial}`, { contentType: "text/plain" });
    hs.attachAppService(undefined); // a room from before the application service
    const roomId = hs.createRoom(`@alice:${S}`);
    hs.attachAppService(pusher);
    sendImage(hs, roomId, local(pushed));
    await hs.pushed();
    assert.deepEqual((await listing(root, roomId)).body.local, [local(pushed)]);
    const before = await quarantineState(server);
    for (const mode of ["500", "html502"] as const) {
      hs.failWith = mode;
      const res = await quarantineRoom(root, roomId);
      hs.failWith = undefined;
      assert.equal(res.status, 502, `${mode}: ${res.text}`);
      assert.equal(res.body.errcode, "M_UNKNOWN");
    }
    assert.deepEqual(await quarantineState(server), before, "nothing was quarantined");
    assert.equal(await quarantinedBy(server, pushed), null);
    assert.deepEqual((await quarantineRoom(root, roomId)).body, { num_quarantined: 1 });
  });

  it("answers 502 naming admin_access_token when the homeserver refuses it", async () => {
    hs.attachAppService(undefined); // a room from before the application service
    const roomId = hs.createRoom(`@alice:${S}`);
    const image = await uploadBytes(alice, `refused ${++serial}`, { contentType: "text/plain" });
    sendImage(hs, roomId, local(image));
    hs.logout(serviceToken);
    try {
      for (const res of [await listing(root, roomId), await quarantineRoom(root, roomId)]) {
        assert.equal(res.status, 502, res.text);
        assert.equal(res.body.errcode, "M_UNKNOWN");
        assert.match(res.body.error, /admin_access_token/);
      }
      assert.equal(await quarantinedBy(server, image), null);
    } finally {
      hs.addToken(serviceToken, { userId: `@mxcd-service:${S}`, admin: true });
    }
  });
});
