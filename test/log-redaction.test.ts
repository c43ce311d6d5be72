/**
 * Secrets never reach the log, in any spelling the server accepts (or a
 * client might send): the server logs at `trace` into a captured stream and
 * no line may contain the secret. The query is masked by parsing it as the
 * HTTP layer does, so a percent-encoded name (`access%5Ftoken`, either case
 * of the hex digits), a repeated parameter, the `Authorization` header, and
 * application-service / shared-secret registration fields are all covered.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isSecretName, maskUrlSecrets } from "../src/logging/mask-url-secrets.js";
import type { HttpClient } from "./support/http-client.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

const WHOAMI = "/_matrix/client/v3/account/whoami";

describe("secrets in logs", () => {
  const lines: string[] = [];
  let server: TestServer;
  let http: HttpClient;
  let token: string;

  before(async () => {
    server = await startTestServer(
      "sqlite",
      { registration_shared_secret: "shared-secret-never-logged", log_level: "trace" },
      { logLines: lines },
    );
    http = server.http;
    token = (await server.user("alice", { password: "pw-alice-1" })).token;
  });
  after(() => server?.stop());

  /** Runs `send`, then asserts that it was logged and that `secret` is in no line. */
  async function assertNotLogged(secret: string, send: () => Promise<unknown>) {
    const from = lines.length;
    await send();
    const logged = lines.slice(from);
    assert.ok(logged.length > 0, "the request was logged");
    const leaks = logged.filter((line) => line.includes(secret));
    assert.deepEqual(leaks, [], `secret ${secret} leaked`);
  }

  const spellings = [
    "access_token",
    "access%5Ftoken",
    "access%5ftoken",
    "%61ccess_token",
    "%61%63%63%65%73%73%5F%74%6F%6B%65%6E",
    "ACCESS_TOKEN",
    "Access%5FToken",
  ];
  for (const name of spellings) {
    it(`masks ?${name}=`, async () => {
      await assertNotLogged(token, () => http.get(`${WHOAMI}?${name}=${token}`));
    });
  }

  it("accepts the percent-encoded name as access_token (standard URL decoding)", async () => {
    const res = await http.get(`${WHOAMI}?access%5Ftoken=${token}`);
    assert.equal(res.status, 200);
    assert.equal(res.body.user_id, "@alice:test.local");
  });

  it("masks a repeated parameter and one after other parameters", async () => {
    await assertNotLogged(token, () =>
      http.get(`${WHOAMI}?a=1&access_token=${token}&access%5Ftoken=${token}&b=2`),
    );
    await assertNotLogged(token, () => http.get(`${WHOAMI}?x=1;access_token=${token}`));
  });

  it("never logs the Authorization header", async () => {
    await assertNotLogged(token, () => http.withToken(token).get(WHOAMI));
    await assertNotLogged("not-a-real-token", () =>
      http.get(WHOAMI, { headers: { authorization: "bearer not-a-real-token" } }),
    );
  });

  it("masks application-service tokens and registration fields in the query", async () => {
    for (const name of ["hs_token", "as_token", "password", "mac", "hs%5Ftoken"]) {
      await assertNotLogged("sEcReT-value-42", () =>
        http.get(`/_matrix/app/v1/transactions/1?${name}=sEcReT-value-42`),
      );
    }
  });

  it("does not log the shared-secret registration's password or mac", async () => {
    const nonce = (await http.get("/_synapse/admin/v1/register")).body.nonce;
    await assertNotLogged("pw-never-logged", () =>
      http.post("/_synapse/admin/v1/register", {
        nonce,
        username: "bob",
        password: "pw-never-logged",
        mac: "0123456789abcdef0123456789abcdef01234567",
      }),
    );
    assert.ok(!lines.some((line) => line.includes("0123456789abcdef0123456789abcdef01234567")));
    assert.ok(!lines.some((line) => line.includes("shared-secret-never-logged")));
  });
});

describe("maskUrlSecrets", () => {
  it("keeps the name as sent and masks only secret values", () => {
    assert.equal(
      maskUrlSecrets("/p?from=1&access%5Ftoken=abc&limit=2"),
      "/p?from=1&access%5Ftoken=<redacted>&limit=2",
    );
    assert.equal(maskUrlSecrets("/p?access_token"), "/p?access_token=<redacted>");
    assert.equal(maskUrlSecrets("/p"), "/p");
    assert.equal(maskUrlSecrets("/p?a=%ZZ&b=1"), "/p?a=%ZZ&b=1");
  });

  it("decodes names leniently and case-insensitively", () => {
    assert.ok(isSecretName("access%5Ftoken"));
    assert.ok(isSecretName("access%5ftoken%ZZ") === false);
    assert.ok(isSecretName("AS_TOKEN"));
    assert.ok(isSecretName("loginToken"));
    assert.ok(isSecretName("%ZZ") === false);
    assert.ok(!isSecretName("from"));
  });
});
