/**
 * The attached shape end to end (issue "The attached shape", Tests): a real
 * nginx running the config `mxcd proxy-config nginx` writes, in front of an
 * attached mxcd and the scripted homeserver, with matrix-js-sdk as the
 * client and synadm as the admin tool, all through nginx's one base URL.
 * The homeserver pushes its events to mxcd through the registration
 * `mxcd appservice generate-registration` wrote, as Synapse would.
 *
 * The steps share one deployment and run in order: log in at the homeserver,
 * upload and download at mxcd (the config's upload limit, streaming, URIs
 * passed unnormalised and the client address), send an m.image at the
 * homeserver and find it in mxcd's room media list, quarantine the room with
 * synadm, redact with `media_redaction_policy: delete`, log out, and take the
 * homeserver down.
 *
 * Needs nginx and synadm: without them the suite is skipped loudly, and under
 * CI=true that is a failure (.ci/run installs both and checks the markers).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync } from "node:fs";
import { type IncomingMessage, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { createClient, type MatrixClient, MsgType } from "matrix-js-sdk";
import { parse as parseYaml } from "yaml";
import { nginxProxyConfig } from "../src/http/nginx-proxy-config.js";
import { localContentKey } from "../src/storage/media-paths.js";
import { AppServicePusher } from "./support/app-service-pusher.js";
import { runCli } from "./support/cli.js";
import { forEachEngine } from "./support/databases.js";
import { allKeys, mediaIdOf, rawGet } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { until } from "./support/mxcd-processes.js";
import { findNginx, type RunningNginx, startNginx } from "./support/nginx.js";
import { freePort } from "./support/postgres-cluster.js";
import { markSuiteRan } from "./support/run-markers.js";
import { ScriptedHomeserver } from "./support/scripted-homeserver.js";
import { runSynadm, synadmInstalled, writeSynadmConfig } from "./support/synadm.js";
import { startTestServer, TEST_SERVER_NAME, type TestServer } from "./support/test-server.js";

const S = TEST_SERVER_NAME;
const WHOAMI = "/_matrix/client/v3/account/whoami";
/** A bound for a loaded machine, not a timing: the conditions are waited on. */
const STEP = { timeout: 60_000 };
/** `homeserver.failure_threshold`: consecutive failures before mxcd stops asking. */
const FAILURE_THRESHOLD = 4;
const MAX_UPLOAD_MIB = 3;

const nginxBinary = findNginx();
const synadm = synadmInstalled();
if ((!nginxBinary || !synadm) && process.env.CI === "true") {
  throw new Error("nginx and synadm are required under CI=true");
}

/** A js-sdk client logged in with a password at `baseUrl`. */
async function logIn(baseUrl: string, user: string, password: string): Promise<MatrixClient> {
  const login = await createClient({ baseUrl }).loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user },
    password,
  });
  return createClient({
    baseUrl,
    accessToken: login.access_token,
    userId: login.user_id,
    deviceId: login.device_id,
  });
}

/** GET of the authenticated download URL the SDK builds for `mxc`. */
async function sdkDownload(
  client: MatrixClient,
  mxc: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Buffer; json: any }> {
  const url = client.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, true);
  assert.ok(url, `no URL for ${mxc}`);
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${client.getAccessToken()}`, ...headers },
  });
  const body = Buffer.from(await res.arrayBuffer());
  let json: any;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch {
    json = undefined;
  }
  return { status: res.status, body, json };
}

forEachEngine("attached mxcd behind the generated nginx config, end to end", (engine) => {
  if (!nginxBinary || !synadm) {
    const missing = [!nginxBinary && "nginx", !synadm && "synadm"].filter(Boolean).join(" and ");
    it("runs end to end", { skip: `!!! SKIPPED: ${missing} not installed` });
    return;
  }
  let hs: ScriptedHomeserver;
  let server: TestServer;
  let nginx: RunningNginx;
  let alice: MatrixClient;
  let admin: MatrixClient;
  let synadmConfig: string;
  let roomId: string;
  let imageMxc: string;
  const requests = (method: string, route: string, status: number) =>
    metric(
      server.baseUrl,
      "mxcd_http_requests_total",
      `method="${method}",route="${route}",status="${status}"`,
    );

  before(async () => {
    hs = await ScriptedHomeserver.start({ serverName: S });
    const dir = mkdtempSync(join(tmpdir(), "mxcd-e2e-"));
    // The registration as an admin makes it, pointing at mxcd's internal address.
    const port = await freePort();
    const registration = join(dir, "mxcd-registration.yaml");
    const generated = await runCli([
      "appservice",
      "generate-registration",
      "-o",
      registration,
      "--url",
      `http://127.0.0.1:${port}`,
    ]);
    assert.equal(generated.code, 0, generated.stderr);
    server = await startTestServer(engine, {
      mode: "attached",
      listen: { host: "127.0.0.1", port, x_forwarded: true },
      homeserver: {
        base_url: hs.baseUrl,
        admin_api: "synapse",
        failure_threshold: FAILURE_THRESHOLD,
      },
      // Short enough to wait out a logout, long enough to outlive one step.
      access_token_cache: { ttl: "5s", negative_ttl: "1s", admin_ttl: "5s" },
      app_service: { registration },
      media_redaction_policy: "delete",
      // Above nginx's default client_max_body_size (1m), so the generated one must be used.
      max_upload_size: `${MAX_UPLOAD_MIB}M`,
    });
    // The homeserver reads the same file (Synapse's app_service_config_files).
    const { url, hs_token: hsToken } = parseYaml(readFileSync(registration, "utf8"));
    hs.attachAppService(new AppServicePusher({ url, hsToken }));
    nginx = await startNginx(
      nginxBinary,
      nginxProxyConfig({
        mxcd: server.baseUrl,
        homeserver: hs.baseUrl,
        maxUploadSize: server.app.config.max_upload_size,
      }),
    );
    markSuiteRan("nginx");
    markSuiteRan("synadm");
    hs.addUser("alice", "alice-password");
    hs.addUser("admin", "admin-password", { admin: true });
  });
  after(async () => {
    for (const client of [alice, admin]) client?.stopClient();
    await nginx?.stop();
    await server?.stop();
    await hs?.stop();
  });

  it("logs in at the homeserver through nginx", STEP, async () => {
    const logins = hs.count("/_matrix/client/v3/login");
    alice = await logIn(nginx.url, "alice", "alice-password");
    admin = await logIn(nginx.url, "admin", "admin-password");
    assert.equal(alice.getUserId(), `@alice:${S}`);
    assert.equal(hs.count("/_matrix/client/v3/login"), logins + 2);
    assert.ok((await alice.getVersions()).versions.length > 0, "versions from the homeserver");
    // nginx told the homeserver who the client is.
    assert.equal(hs.seen.at(-1)?.["x-forwarded-for"], "127.0.0.1");
  });

  it("uploads and downloads at mxcd; the homeserver sees no media request", STEP, async () => {
    const uploads = await requests("POST", "/_matrix/media/v3/upload", 200);
    const bytes = randomBytes(200_000);
    const { content_uri: mxc } = await alice.uploadContent(bytes, {
      name: "cat.png",
      type: "image/png",
    });
    assert.match(mxc, new RegExp(`^mxc://${S.replace(".", "\\.")}/[A-Za-z]+$`));
    assert.equal(await requests("POST", "/_matrix/media/v3/upload", 200), uploads + 1);
    assert.ok((await allKeys(server.app.store)).includes(localContentKey(mediaIdOf(mxc))));
    const got = await sdkDownload(alice, mxc);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(bytes));
    const media = hs.paths.filter((path) => /^\/_matrix\/(media|client\/v1\/media)\//.test(path));
    assert.deepEqual(media, [], "no media request reached the homeserver");
    imageMxc = mxc;
  });

  it("lets uploads of exactly max_upload_size through nginx, and no more", STEP, async () => {
    const limit = MAX_UPLOAD_MIB * 1024 * 1024;
    const bytes = randomBytes(limit);
    const { content_uri: mxc } = await alice.uploadContent(bytes, { type: "image/png" });
    assert.ok((await sdkDownload(alice, mxc)).body.equals(bytes));
    await assert.rejects(
      alice.uploadContent(randomBytes(limit + 1), { type: "image/png" }),
      (error: { httpStatus?: number }) => error.httpStatus === 413,
    );
  });

  it("streams an upload to mxcd while the client is still sending it", STEP, async () => {
    const uploader = await logIn(nginx.url, "alice", "alice-password"); // a token mxcd has not seen
    const whoamis = hs.count(WHOAMI);
    const req = request(`${nginx.url}/_matrix/media/v3/upload`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${uploader.getAccessToken()}`,
        "content-type": "application/octet-stream",
        "transfer-encoding": "chunked",
      },
    });
    const response = once(req, "response") as Promise<[IncomingMessage]>;
    req.write(randomBytes(64 * 1024));
    // mxcd checks the token when the request reaches it: with the body still
    // unfinished, only if nginx passes it on instead of spooling it first.
    await until(() => hs.count(WHOAMI) > whoamis);
    req.end(randomBytes(1024));
    const [res] = await response;
    let text = "";
    for await (const chunk of res) text += chunk;
    assert.equal(res.statusCode, 200, text);
    assert.match(JSON.parse(text).content_uri, /^mxc:\/\//);
    uploader.stopClient();
  });

  it("passes request URIs on as the client sent them, never normalised", STEP, async () => {
    // nginx matches locations on the decoded, merged path, but must pass the original.
    const path = "/_matrix/client/v3//rooms/%21a%2Fb%3Atest.local/state/m.room.name/x%2Ey";
    await rawGet(nginx.url, path, alice.getAccessToken() ?? "");
    assert.ok(hs.paths.includes(path), `the homeserver saw: ${hs.paths.join(" ")}`);
  });

  it("keeps the homeserver's own admin API off the proxy, media admin aside", STEP, async () => {
    const res = await fetch(`${nginx.url}/_synapse/admin/v1/rooms`, {
      headers: { authorization: `Bearer ${admin.getAccessToken()}` },
    });
    await res.arrayBuffer();
    assert.equal(res.status, 404);
    assert.ok(!hs.paths.includes("/_synapse/admin/v1/rooms"), "the homeserver was not asked");
  });

  it("passes the client's real address to mxcd, which passes it to whoami", STEP, async () => {
    const bob = await logIn(nginx.url, "alice", "alice-password"); // a token mxcd has not seen
    const whoamis = hs.count(WHOAMI);
    // A forged X-Forwarded-For is replaced by nginx, not appended to.
    const got = await sdkDownload(bob, imageMxc, { "x-forwarded-for": "203.0.113.9" });
    assert.equal(got.status, 200);
    assert.equal(hs.count(WHOAMI), whoamis + 1);
    assert.equal(hs.seen.at(-1)?.["x-forwarded-for"], "127.0.0.1");
    bob.stopClient();
  });

  it("finds an m.image sent at the homeserver in mxcd's room media list", STEP, async () => {
    ({ room_id: roomId } = await alice.createRoom({ name: "pictures" }));
    await alice.sendMessage(roomId, { msgtype: MsgType.Image, body: "cat.png", url: imageMxc });
    await hs.pushed();
    const route = "/_synapse/admin/v1/room/:roomId/media";
    const listed = await requests("GET", route, 200);
    const res = await fetch(
      `${nginx.url}/_synapse/admin/v1/room/${encodeURIComponent(roomId)}/media`,
      { headers: { authorization: `Bearer ${admin.getAccessToken()}` } },
    );
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { local: [imageMxc], remote: [] });
    assert.equal(await requests("GET", route, 200), listed + 1, "mxcd answered");
  });

  it("quarantines the room with synadm through nginx; its media is refused", STEP, async () => {
    synadmConfig = writeSynadmConfig({
      user: `@admin:${S}`,
      token: admin.getAccessToken()!,
      baseUrl: nginx.url,
      serverName: S,
    });
    const listed = await runSynadm(synadmConfig, ["media", "list", "-r", roomId]);
    assert.equal(listed.code, 0, listed.out);
    assert.ok(listed.out.includes(imageMxc), listed.out);
    const route = "/_synapse/admin/v1/room/:roomId/media/quarantine";
    const quarantines = await requests("POST", route, 200);
    const res = await runSynadm(synadmConfig, ["media", "quarantine", "-r", roomId]);
    assert.equal(res.code, 0, res.out);
    assert.equal(await requests("POST", route, 200), quarantines + 1, "mxcd answered");
    const refused = await sdkDownload(alice, imageMxc);
    assert.equal(refused.status, 404);
    assert.equal(refused.json?.errcode, "M_NOT_FOUND");
  });

  it("deletes media its uploader redacts (media_redaction_policy: delete)", STEP, async () => {
    const { content_uri: mxc } = await alice.uploadContent(randomBytes(5000), {
      name: "oops.png",
      type: "image/png",
    });
    const { room_id: room } = await alice.createRoom({ name: "mistakes" });
    const { event_id: eventId } = await alice.sendMessage(room, {
      msgtype: MsgType.Image,
      body: "oops.png",
      url: mxc,
    });
    await hs.pushed();
    assert.equal((await sdkDownload(alice, mxc)).status, 200, "served before the redaction");
    await alice.redactEvent(room, eventId);
    await hs.pushed();
    // The policy acts after the redaction commits: wait for it.
    await until(async () => (await sdkDownload(alice, mxc)).status === 404);
    assert.ok(!(await allKeys(server.app.store)).includes(localContentKey(mediaIdOf(mxc))));
    const info = await fetch(`${nginx.url}/_synapse/admin/v1/media/${S}/${mediaIdOf(mxc)}`, {
      headers: { authorization: `Bearer ${admin.getAccessToken()}` },
    });
    assert.equal(info.status, 404, "the row is gone too");
  });

  it("refuses a logged-out token once access_token_cache.ttl has passed", STEP, async () => {
    const { content_uri: mxc } = await alice.uploadContent(randomBytes(100), {
      type: "text/plain",
    });
    const leaving = await logIn(nginx.url, "alice", "alice-password");
    assert.equal((await sdkDownload(leaving, mxc)).status, 200);
    await leaving.logout();
    // Until the cached answer expires mxcd may still serve it; then whoami says no.
    let last: Awaited<ReturnType<typeof sdkDownload>> | undefined;
    await until(async () => {
      last = await sdkDownload(leaving, mxc);
      return last.status !== 200;
    });
    assert.equal(last?.status, 401);
    assert.equal(last?.json?.errcode, "M_UNKNOWN_TOKEN");
    assert.equal(last?.json?.soft_logout, false);
  });

  it(
    "keeps cached tokens working while the homeserver is down, never M_UNKNOWN_TOKEN",
    STEP,
    async () => {
      const { content_uri: mxc } = await alice.uploadContent(Buffer.from("still here"), {
        type: "text/plain",
      });
      /**
       * Takes the homeserver down with `fail`, then checks that a token mxcd
       * checked just before still downloads and that `cold` tokens (issued by
       * the homeserver, never seen by mxcd) get 502 M_UNKNOWN.
       */
      const down = async (what: string, cold: number, fail: () => Promise<void>) => {
        const clients = await Promise.all(
          Array.from({ length: cold + 1 }, () => logIn(nginx.url, "alice", "alice-password")),
        );
        const [warm, ...others] = clients as [MatrixClient, ...MatrixClient[]];
        assert.equal((await sdkDownload(warm, mxc)).status, 200, `${what}: warm-up`);
        await fail();
        const served = await sdkDownload(warm, mxc);
        assert.equal(served.status, 200, `${what}: a cached token keeps downloading`);
        assert.equal(served.body.toString(), "still here");
        for (const client of others) {
          const refused = await sdkDownload(client, mxc);
          assert.equal(refused.status, 502, `${what}: ${refused.body}`);
          assert.equal(refused.json?.errcode, "M_UNKNOWN", what);
        }
        for (const client of clients) client.stopClient();
      };
      // Fewer failures than failure_threshold: the breaker stays closed.
      await down("homeserver answering HTML 502 pages", 2, async () => {
        hs.failWith = "html502";
      });
      hs.failWith = undefined;
      // More than failure_threshold: the breaker opens on the way, answers stay the same.
      await down("homeserver stopped", FAILURE_THRESHOLD + 2, () => hs.stop());
    },
  );
});
