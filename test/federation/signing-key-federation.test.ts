import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { formatSigningKeyFile, generateSigningKey } from "../../src/federation/signing-key.js";
import { parseXMatrixHeader } from "../../src/federation/x-matrix.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const REMOTE = "remote.test";
const LOCAL = "local.test";
const URI = "/_matrix/federation/v1/media/download/nosuchmedia";

// "remote.test" runs on a Synapse-style key file with two lines (its own
// key first, an extra key after it, as `mxcd signing-key combine` writes);
// "local.test" checks remote's requests over real HTTP.
describe("federation with a multi-line signing.key", () => {
  let remote: TestServer;
  let local: TestServer;
  const first = generateSigningKey();
  const second = generateSigningKey("mxcd_", 8);

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "mxcd-signing-key-federation-"));
    const remoteKey = join(dir, "remote.key");
    writeFileSync(remoteKey, formatSigningKeyFile([first, second]));
    remote = await startTestServer("sqlite", { server_name: REMOTE, signing_key_path: remoteKey });
    local = await startTestServer("sqlite", {
      server_name: LOCAL,
      signing_key_path: join(dir, "local.key"),
      federation_custom_resolvers: { [REMOTE]: remote.baseUrl.replace(/\/?$/, "/") },
      ip_range_whitelist: ["127.0.0.0/8"],
    });
  });
  after(async () => {
    await local?.stop();
    await remote?.stop();
  });

  const get = (authorization: string) =>
    fetch(new URL(URI, local.baseUrl), { headers: { authorization } });

  it("signs with the first key, which the other server verifies", async () => {
    const authorization = remote.app.signer.authorizationHeader("GET", URI, LOCAL);
    assert.equal(parseXMatrixHeader(authorization)?.key, first.keyId);
    const response = await get(authorization);
    // Authenticated: the media is simply not there.
    assert.equal(response.status, 404, await response.clone().text());
    assert.equal(((await response.json()) as { errcode: string }).errcode, "M_NOT_FOUND");
  });

  it("refuses a media request addressed to another server (401, destination mismatch)", async () => {
    const authorization = remote.app.signer.authorizationHeader("GET", URI, "elsewhere.test");
    const response = await get(authorization);
    assert.equal(response.status, 401);
    const body = (await response.json()) as { errcode: string; error: string };
    assert.equal(body.errcode, "M_UNAUTHORIZED");
    assert.match(body.error, /Destination mismatch/);
  });
});
