/**
 * Secrets never reach the logs, on the hostile paths of this pass: a
 * stalled upload cut off at `body_idle`, a NUL refused up front or by
 * PostgreSQL, a URL too long for the parser, a quota refusal — each
 * carrying the access token in the query (the legacy way) or a password in
 * the body, logged at `trace`.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { type App, createApp } from "../src/app.js";
import { validateConfig } from "../src/config/load-config.js";
import { formatSigningKeyFile, generateSigningKey } from "../src/federation/signing-key.js";
import { createLogger } from "../src/logging/logger.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { HttpClient } from "./support/http-client.js";
import { waitFor } from "./support/wait-for.js";

forEachEngine("hostile: secrets in logs on hostile paths", (engine) => {
  const lines: string[] = [];
  let app: App;
  let base: string;
  let http: HttpClient;
  let token: string;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "mxcd-hostile-logs-"));
    writeFileSync(join(dir, "signing.key"), formatSigningKeyFile([generateSigningKey()]), {
      mode: 0o600,
    });
    const config = validateConfig({
      server_name: "test.local",
      listen: { host: "127.0.0.1", port: 0 },
      database: await freshDatabaseConfig(engine),
      media_store: { engine: "filesystem", path: join(dir, "media") },
      signing_key_path: join(dir, "signing.key"),
      log_level: "trace",
      shutdown_grace_period: "2s",
      http_timeouts: { headers: "60s", body_idle: "300ms" },
      media_upload_limits: [{ time_period: "1h", max_size: 1000 }],
    });
    const logger = createLogger(config.log_level, { write: (line: string) => lines.push(line) });
    app = createApp(config, logger);
    base = await app.start();
    http = new HttpClient(base);
    const userId = await app.accounts.register({
      localpart: "alice",
      password: "pw-alice-secret-1",
      admin: true,
    });
    token = (await app.accounts.issueToken(userId, "DEV")).accessToken;
  });
  after(() => app?.stop());

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
