/**
 * Secrets never reach the logs, on the hostile paths of this pass: a
 * stalled upload cut off at `body_idle`, a NUL refused up front or by
 * PostgreSQL, a URL too long for the parser, a quota refusal — each
 * carrying the access token in the query (the legacy way) or a password in
 * the body, logged at `trace`.
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import type { HttpClient } from "./support/http-client.js";
import { startTestServer, type TestServer } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

forEachEngine("hostile: secrets in logs on hostile paths", (engine) => {
  const lines: string[] = [];
  let server: TestServer;
  let base: string;
  let http: HttpClient;
  let token: string;

  before(async () => {
    server = await startTestServer(
      engine,
      {
        log_level: "trace",
        http_timeouts: { headers: "60s", body_idle: "300ms" },
        media_upload_limits: [{ time_period: "1h", max_size: 1000 }],
      },
      { logLines: lines },
    );
    base = server.baseUrl;
    http = server.http;
    token = (await server.user("alice", { admin: true, password: "pw-alice-secret-1" })).token;
  });
  after(() => server?.stop());

  it("no access token or password in any log line", async () => {
    const from = lines.length;
    // A stalled upload, cut off at body_idle.
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${base}/_matrix/media/v3/upload?access_token=${token}`, {
        method: "POST",
        headers: { "content-length": "500" },
      });
      req.on("error", () => resolve());
      req.on("response", (res) => res.resume().on("end", resolve));
      req.flushHeaders();
    });
    await waitFor(
      () => lines.slice(from).some((l) => l.includes("stalled")),
      "the stall's log line",
    );
    // Over the quota, refused before the body.
    await http.request("POST", `/_matrix/media/v3/upload?access_token=${token}`, {
      rawBody: Buffer.alloc(2000),
    });
    // NUL in the URL, and in a body PostgreSQL cannot store.
    await http.get(`/_synapse/admin/v2/users?name=a%00b&access_token=${token}`);
    await http.post(`/_matrix/client/v3/createRoom?access_token=${token}`, { name: "a\u0000b" });
    await http.post("/_matrix/client/v3/login", {
      type: "m.login.password",
      identifier: { type: "m.id.user", user: "alice\u0000" },
      password: "pw-alice-secret-1",
    });
    // A URL too long for the parser (431 from Node's client-error path).
    await http.get(
      `/_matrix/client/v3/account/whoami?access_token=${token}&pad=${"x".repeat(20_000)}`,
    );
    const logged = lines.slice(from);
    assert.ok(logged.length >= 5, `the requests were logged (${logged.length} lines)`);
    for (const line of logged) {
      assert.ok(!line.includes(token), `token in: ${line.slice(0, 300)}`);
      assert.ok(!line.includes("pw-alice-secret-1"), `password in: ${line.slice(0, 300)}`);
    }
  });
});
