/**
 * mxcd in attached mode against the scripted homeserver (written from the
 * spec, not from mxcd): identity from the homeserver's whoami, caching seen
 * in its request counters, route gating, guests, admins and the homeserver
 * being down. On SQLite and PostgreSQL.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, it } from "node:test";
import sharp from "sharp";
import type { ConfigInput } from "../src/config/config-schema.js";
import {
  generateRegistration,
  registrationYaml,
} from "../src/homeserver/app-service-registration.js";
import { AppServicePusher } from "./support/app-service-pusher.js";
import { forEachEngine } from "./support/databases.js";
import type { HttpClient } from "./support/http-client.js";
import { mediaIdOf, quarantinedBy, uploadBytes } from "./support/media.js";
import { ScriptedHomeserver } from "./support/scripted-homeserver.js";
import { startTestServer, TEST_SERVER_NAME, type TestServer } from "./support/test-server.js";

const WHOAMI = "/_matrix/client/v3/account/whoami";
const S = TEST_SERVER_NAME;

/** The attached-mode config for a homeserver at `baseUrl`. */
function attachedConfig(baseUrl: string, extra: Partial<ConfigInput> = {}): Partial<ConfigInput> {
  return {
    mode: "attached",
    homeserver: { base_url: baseUrl, admin_api: "synapse" },
    access_token_cache: { ttl: "10m", negative_ttl: "10m", admin_ttl: "10m" },
    ...extra,
  };
}

let serial = 0;
/** A fresh homeserver token for a user of the test server. */
function tokenFor(
  hs: ScriptedHomeserver,
  localpart: string,
  extra: { admin?: boolean; guest?: boolean } = {},
): string {
  const token = `syt_${localpart}_${++serial}_${Math.random().toString(36).slice(2)}`;
  hs.addToken(token, { userId: `@${localpart}:${S}`, deviceId: "DEV", ...extra });
  return token;
}

function download(http: HttpClient, mediaId: string) {
  return http.get(`/_matrix/client/v1/media/download/${S}/${mediaId}`);
}

forEachEngine("attached mode", (engine) => {
  let hs: ScriptedHomeserver;
  let server: TestServer;

  before(async () => {
    hs = await ScriptedHomeserver.start();
    server = await startTestServer(engine, attachedConfig(hs.baseUrl));
  });
  after(async () => {
    await server?.stop();
    await hs?.stop();
  });
  beforeEach(() => {
    hs.failWith = undefined;
  });

  it("uploads with a homeserver token and downloads it", async () => {
    const alice = server.http.withToken(tokenFor(hs, "alice"));
    const mediaId = await uploadBytes(alice, "hello attached", { contentType: "text/plain" });
    const res = await download(alice, mediaId);
    assert.equal(res.status, 200);
    assert.equal(res.text, "hello attached");
  });

  it("asks the homeserver once per cold token and never for a warm one", async () => {
    const uploader = server.http.withToken(tokenFor(hs, "uploader"));
    const mediaId = await uploadBytes(uploader, "cache me", { contentType: "text/plain" });
    const reader = server.http.withToken(tokenFor(hs, "reader"));
    const cold = hs.count(WHOAMI);
    assert.equal((await download(reader, mediaId)).status, 200);
    assert.equal(hs.count(WHOAMI), cold + 1, "a cold token costs exactly one whoami");
    const total = hs.total;
    assert.equal((await download(reader, mediaId)).status, 200);
    assert.equal((await download(reader, mediaId)).status, 200);
    assert.equal(hs.total, total, "a warm token costs no homeserver request");
  });

  it("answers 404 M_UNRECOGNIZED for accounts, rooms, profiles and the key server", async () => {
    const alice = server.http.withToken(tokenFor(hs, "alice"));
    const before = hs.total;
    const refused: [string, string][] = [
      ["GET", "/_matrix/client/v3/login"],
      ["POST", "/_matrix/client/v3/login"],
      ["POST", "/_matrix/client/r0/login"],
      ["POST", "/_matrix/client/v3/register"],
      ["GET", "/_matrix/client/v3/account/whoami"],
      ["POST", "/_matrix/client/v3/logout"],
      ["POST", "/_matrix/client/v3/createRoom"],
      ["POST", `/_matrix/client/v3/join/!room:${S}`],
      ["GET", `/_matrix/client/v3/profile/@alice:${S}`],
      ["PUT", `/_matrix/client/v3/profile/@alice:${S}/displayname`],
      ["GET", "/_matrix/key/v2/server"],
      ["GET", "/_matrix/client/versions"],
      ["GET", "/_synapse/admin/v1/register"],
      ["GET", "/_synapse/admin/v1/server_version"],
      ["GET", `/_synapse/admin/v2/users/@alice:${S}`],
      ["GET", "/_synapse/admin/v1/rooms"],
      ["GET", `/_synapse/admin/v1/rooms/!room:${S}`],
      ["GET", "/_synapse/admin/v1/background_updates/status"],
      // Not registered at all: an unknown path (404), not a wrong method (405).
      ["DELETE", "/_matrix/client/v3/login"],
    ];
    for (const [method, path] of refused) {
      const res = await alice.request(method, path, method === "GET" ? {} : { body: {} });
      assert.equal(res.status, 404, `${method} ${path}: ${res.text}`);
      assert.equal(res.body.errcode, "M_UNRECOGNIZED", `${method} ${path}`);
    }
    assert.equal(hs.total, before, "no token was checked for a route mxcd does not serve");
  });

  it("serves the media routes of the proxy table (config, admin, health)", async () => {
    const admin = server.http.withToken(tokenFor(hs, "boss", { admin: true }));
    assert.equal((await admin.get("/_matrix/client/v1/media/config")).status, 200);
    assert.equal((await admin.get("/_matrix/media/v3/config")).status, 200);
    assert.equal((await server.http.get("/health")).status, 200);
    const room = await admin.get(`/_synapse/admin/v1/room/${encodeURIComponent(`!r:${S}`)}/media`);
    assert.equal(room.status, 200, room.text);
    assert.deepEqual(room.body, { local: [], remote: [] });
    const feed = await admin.get("/_synapse/admin/v1/media/quarantine_changes?from=0");
    assert.equal(feed.status, 200, feed.text);
  });

  it("keeps cached tokens working while the homeserver is down, never M_UNKNOWN_TOKEN", async () => {
    const warm = server.http.withToken(tokenFor(hs, "warm"));
    const mediaId = await uploadBytes(warm, "still here", { contentType: "text/plain" });
    for (const mode of ["500", "html502", "reset"] as const) {
      hs.failWith = mode;
      const cold = server.http.withToken(tokenFor(hs, "cold"));
      const refused = await download(cold, mediaId);
      assert.equal(refused.status, 502, `${mode}: ${refused.text}`);
      assert.equal(refused.body.errcode, "M_UNKNOWN", mode);
      const served = await download(warm, mediaId);
      assert.equal(served.status, 200, `${mode}: cached token`);
      assert.equal(served.text, "still here");
    }
    hs.failWith = undefined;
    // The failure was not cached: the same cold token works once the homeserver is back.
    const cold = server.http.withToken(tokenFor(hs, "back"));
    assert.equal((await download(cold, mediaId)).status, 200);
  });

  it("passes a 401 through with soft_logout", async () => {
    const token = tokenFor(hs, "expiring");
    hs.expire(token);
    const res = await server.http.withToken(token).post("/_matrix/media/v1/create");
    assert.equal(res.status, 401);
    assert.equal(res.body.errcode, "M_UNKNOWN_TOKEN");
    assert.equal(res.body.soft_logout, true);
    const unknown = await server.http
      .withToken("syt_never_issued")
      .post("/_matrix/media/v1/create");
    assert.equal(unknown.status, 401);
    assert.equal(unknown.body.soft_logout, false);
  });

  it("lets guests download and thumbnail but not upload or create", async () => {
    const alice = server.http.withToken(tokenFor(hs, "alice"));
    const png = await sharp({
      create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 10, b: 10 } },
    })
      .png()
      .toBuffer();
    const mediaId = await uploadBytes(alice, png, { contentType: "image/png" });
    const guest = server.http.withToken(tokenFor(hs, "guest", { guest: true }));
    assert.equal((await download(guest, mediaId)).status, 200);
    const thumb = await guest.get(
      `/_matrix/client/v1/media/thumbnail/${S}/${mediaId}?width=32&height=32&method=scale`,
    );
    assert.equal(thumb.status, 200, thumb.text);
    const refusals = [
      await guest.request("POST", "/_matrix/media/v3/upload", { rawBody: "x" }),
      await guest.request("POST", "/_matrix/media/r0/upload", { rawBody: "x" }),
      await guest.post("/_matrix/media/v1/create"),
      await guest.request("PUT", `/_matrix/media/v3/upload/${S}/${mediaId}`, { rawBody: "x" }),
    ];
    for (const res of refusals) {
      assert.equal(res.status, 403, res.text);
      assert.equal(res.body.errcode, "M_GUEST_ACCESS_FORBIDDEN");
    }
  });

  it("allows the admin API to a homeserver admin (synapse probe) and refuses a normal user", async () => {
    const alice = server.http.withToken(tokenFor(hs, "alice"));
    const mediaId = mediaIdOf(
      `mxc://${S}/${await uploadBytes(alice, "admin me", { contentType: "text/plain" })}`,
    );
    const info = `/_synapse/admin/v1/media/${S}/${mediaId}`;
    const userMedia = `/_synapse/admin/v1/users/${encodeURIComponent(`@alice:${S}`)}/media`;
    const probe = `/_synapse/admin/v1/users/${encodeURIComponent(`@admin:${S}`)}/admin`;
    const admin = server.http.withToken(tokenFor(hs, "admin", { admin: true }));
    const probes = hs.count(probe);
    const res = await admin.get(info);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.media_info.media_id, mediaId);
    const listed = await admin.get(userMedia);
    assert.equal(listed.status, 200, listed.text);
    assert.ok(listed.body.media.some((m: { media_id: string }) => m.media_id === mediaId));
    assert.equal(hs.count(probe), probes + 1, "the admin answer is cached per token");
    // The bypass of the client v1 download is for admins only, the homeserver's included.
    const bypass = `/_matrix/client/v1/media/download/${S}/${mediaId}?admin_unsafely_bypass_quarantine=true`;
    assert.equal((await admin.get(bypass)).status, 200);
    assert.equal((await alice.get(bypass)).status, 400);

    for (const path of [info, userMedia]) {
      const refused = await alice.get(path);
      assert.equal(refused.status, 403, refused.text);
      assert.equal(refused.body.errcode, "M_FORBIDDEN");
    }
    const guestAdmin = server.http.withToken(
      tokenFor(hs, "guestadmin", { admin: true, guest: true }),
    );
    assert.equal((await guestAdmin.get(info)).status, 403, "a guest is never an admin");
    // The token is checked before the admin flag (Synapse's order).
    const anonymous = await server.http.get(info);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.errcode, "M_MISSING_TOKEN");
  });

  it("passes user_id on for application-service masquerading", async () => {
    const asToken = `as_${++serial}`;
    hs.addAppService(asToken, {
      sender: `@_bridge:${S}`,
      userRegexes: [`@bridged_.*:${S}`],
      registered: new Set([`@bridged_bob:${S}`]),
    });
    const bridge = server.http.withToken(asToken);
    const res = await bridge.request(
      "POST",
      `/_matrix/media/v3/upload?user_id=${encodeURIComponent(`@bridged_bob:${S}`)}`,
      { rawBody: "from the bridge" },
    );
    assert.equal(res.status, 200, res.text);
    const admin = server.http.withToken(tokenFor(hs, "admin2", { admin: true }));
    const info = await admin.get(
      `/_synapse/admin/v1/media/${S}/${mediaIdOf(res.body.content_uri)}`,
    );
    assert.equal(info.body.media_info.user_id, `@bridged_bob:${S}`);
    const refused = await bridge.request(
      "POST",
      `/_matrix/media/v3/upload?user_id=${encodeURIComponent(`@alice:${S}`)}`,
      { rawBody: "not mine" },
    );
    assert.equal(refused.status, 403, refused.text);
    assert.equal(refused.body.errcode, "M_FORBIDDEN");
  });
});

forEachEngine("attached mode with admin_api: none", (engine) => {
  let hs: ScriptedHomeserver;
  let server: TestServer;

  before(async () => {
    hs = await ScriptedHomeserver.start();
    server = await startTestServer(
      engine,
      attachedConfig(hs.baseUrl, {
        homeserver: { base_url: hs.baseUrl, admin_api: "none" },
        admins: [`@root:${S}`],
      }),
    );
  });
  after(async () => {
    await server?.stop();
    await hs?.stop();
  });

  it("takes admins from the list only, asking the homeserver nothing but whoami", async () => {
    const root = server.http.withToken(tokenFor(hs, "root"));
    const hsAdmin = server.http.withToken(tokenFor(hs, "hsadmin", { admin: true }));
    const mediaId = await uploadBytes(root, "listed", { contentType: "text/plain" });
    const info = `/_synapse/admin/v1/media/${S}/${mediaId}`;
    assert.equal((await root.get(info)).status, 200);
    const refused = await hsAdmin.get(info);
    assert.equal(refused.status, 403, "a homeserver admin not in the list is no mxcd admin");
    assert.equal(hs.total, hs.count(WHOAMI), "no admin probe was sent");
  });
});

it("refuses to start attached without the signing key file, instead of inventing a key", async () => {
  const hs = await ScriptedHomeserver.start();
  try {
    const missing = `/nonexistent-${process.pid}/signing.key`;
    await assert.rejects(
      startTestServer("sqlite", attachedConfig(hs.baseUrl, { signing_key_path: missing })),
      (error: Error) => error.message.includes(missing),
    );
  } finally {
    await hs.stop();
  }
});

forEachEngine("attached mode: pushed redactions by a configured admin", (engine) => {
  let hs: ScriptedHomeserver;
  let server: TestServer;
  let pusher: AppServicePusher;
  before(async () => {
    hs = await ScriptedHomeserver.start();
    const registration = generateRegistration({ url: "http://127.0.0.1:1" });
    const path = join(mkdtempSync(join(tmpdir(), "mxcd-as-")), "registration.yaml");
    writeFileSync(path, registrationYaml(registration));
    server = await startTestServer(
      engine,
      attachedConfig(hs.baseUrl, {
        app_service: { registration: path },
        media_redaction_policy: "quarantine",
        admins: [`@mod:${S}`],
      }),
    );
    pusher = new AppServicePusher({ url: server.baseUrl, hsToken: registration.hs_token });
  });
  after(async () => {
    await server?.stop();
    await hs?.stop();
  });

  let n = 0;
  const event = (roomId: string, sender: string, rest: object) => ({
    event_id: `$admin_${++n}_${Math.random().toString(36).slice(2)}`,
    room_id: roomId,
    sender,
    origin_server_ts: Date.now(),
    ...rest,
  });

  it("acts on someone else's upload only when the redacting sender is in admins", async () => {
    const alice = server.http.withToken(tokenFor(hs, "alice"));
    for (const [redactor, expected] of [
      [`@eve:${S}`, false],
      [`@mod:${S}`, true],
    ] as const) {
      const mediaId = await uploadBytes(alice, `pushed by alice for ${redactor}`, {
        contentType: "text/plain",
      });
      const roomId = `!r${++n}:${S}`;
      const image = event(roomId, `@alice:${S}`, {
        type: "m.room.message",
        content: { msgtype: "m.image", body: "x", url: `mxc://${S}/${mediaId}` },
      });
      pusher.enqueue(
        image,
        event(roomId, redactor, { type: "m.room.redaction", content: { redacts: image.event_id } }),
      );
      await pusher.flush();
      assert.equal((await quarantinedBy(server, mediaId)) !== null, expected, redactor);
    }
  });
});
