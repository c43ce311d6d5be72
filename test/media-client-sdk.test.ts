/** A real Matrix client library (matrix-js-sdk) uploads and downloads through mxcd. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, it } from "node:test";
import { createClient, type MatrixClient } from "matrix-js-sdk";
import { forEachEngine } from "./support/databases.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

forEachEngine("matrix-js-sdk media round trip", (engine) => {
  let server: TestServer;
  let client: MatrixClient;
  before(async () => {
    server = await startTestServer(engine);
    await server.user("sdkuser", { password: "sdk-password" });
    const anonymous = createClient({ baseUrl: server.baseUrl });
    const login = await anonymous.loginRequest({
      type: "m.login.password",
      identifier: { type: "m.id.user", user: "sdkuser" },
      password: "sdk-password",
    });
    client = createClient({
      baseUrl: server.baseUrl,
      accessToken: login.access_token,
      userId: login.user_id,
      deviceId: login.device_id,
    });
  });
  after(async () => {
    client?.stopClient();
    await server.stop();
  });

  it("uploads with uploadContent and downloads through the authenticated media URL the SDK builds", async () => {
    const versions = await client.getVersions();
    assert.ok(versions.versions.includes("v1.11"));
    const bytes = randomBytes(100_000);
    const { content_uri: contentUri } = await client.uploadContent(bytes, {
      name: "notes 📝.bin",
      type: "application/x-test",
    });
    assert.match(contentUri, /^mxc:\/\/test\.local\/[A-Za-z]{24}$/);
    const url = client.mxcUrlToHttp(contentUri, undefined, undefined, undefined, false, true, true);
    assert.ok(url?.includes("/_matrix/client/v1/media/download/test.local/"), url ?? "no url");
    const response = await fetch(url!, {
      headers: { authorization: `Bearer ${client.getAccessToken()}` },
    });
    assert.equal(response.status, 200);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
    assert.equal(response.headers.get("content-type"), "application/x-test");
    assert.equal(
      response.headers.get("content-disposition"),
      "attachment; filename*=utf-8''notes%20%F0%9F%93%9D.bin",
    );
    const config = await client.getMediaConfig();
    assert.equal(config["m.upload.size"], server.app.config.max_upload_size);
  });
});
