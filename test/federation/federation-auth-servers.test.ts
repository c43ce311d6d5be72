import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FederationKeyFetcher } from "../../src/federation/key-ring.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const REMOTE = "remote.test";
const LOCAL = "local.test";
const URI = "/_matrix/federation/v1/media/download/abc?timeout_ms=20000";

// Two real servers: "remote.test" signs, "local.test" fetches remote's key
// document through its outbound federation client and checks the signature.
describe("X-Matrix between two servers", () => {
  let remote: TestServer;
  let local: TestServer;
  const dir = mkdtempSync(join(tmpdir(), "mxcd-federation-auth-"));

  before(async () => {
    remote = await startTestServer("sqlite", {
      server_name: REMOTE,
      signing_key_path: join(dir, "remote.key"),
    });
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

  it("accepts a request the remote signed, and refuses it elsewhere or altered", async () => {
    const authorization = remote.app.signer.authorizationHeader("GET", URI, LOCAL);
    const request = { method: "GET", uri: URI, headers: { authorization } };
    assert.equal(await local.app.federationAuth.authenticate(request), REMOTE);
    await assert.rejects(local.app.federationAuth.authenticate({ ...request, uri: `${URI}0` }), {
      errcode: "M_UNAUTHORIZED",
    });
    // The remote itself is not the destination.
    await assert.rejects(remote.app.federationAuth.authenticate(request), {
      errcode: "M_UNAUTHORIZED",
    });
  });

  it("fetches key documents unsigned through the outbound client", async () => {
    const calls: unknown[][] = [];
    const fetcher = new FederationKeyFetcher({
      async getJson(...args) {
        calls.push(args);
        return { json: { ok: true } };
      },
    });
    assert.deepEqual(await fetcher.fetchServerKeys(REMOTE), { ok: true });
    assert.deepEqual(await fetcher.queryNotary("notary.test", "[::1]:8448"), { ok: true });
    assert.equal(calls[0]![1], "/_matrix/key/v2/server");
    assert.equal((calls[0]![2] as { signed: boolean }).signed, false);
    assert.deepEqual(calls[1]!.slice(0, 2), [
      "notary.test",
      "/_matrix/key/v2/query/%5B%3A%3A1%5D%3A8448",
    ]);
  });
});
