/**
 * SIGKILL of the process that streams an async upload's PUT, on SQLite and
 * PostgreSQL. After a restart: the killed write's temp file is swept, and a
 * retried PUT to the same id succeeds (the dead upload's claim died with its
 * process, with the advisory lock that backed it) and is served.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { createServices, type Services } from "../src/app.js";
import { validateConfig } from "../src/config/load-config.js";
import { createDatabase } from "../src/db/database.js";
import { spawnCli, waitForHttp } from "./support/cli.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { HttpClient } from "./support/http-client.js";
import { download, mediaIdOf } from "./support/media.js";
import { until } from "./support/mxcd-processes.js";
import { freePort } from "./support/postgres-cluster.js";
import { storeTempFiles } from "./support/store-files.js";

/** Starts a chunked PUT that sends 1 MiB and then waits, never finishing. */
function startStalledPut(url: string, token: string): Promise<string> {
  const req = request(url, {
    method: "PUT",
    headers: { authorization: `Bearer ${token}`, "transfer-encoding": "chunked" },
  });
  const ended = new Promise<string>((resolve) => {
    req.on("error", (error) => resolve(`request failed: ${error.message}`));
    req.on("response", (res) => resolve(`answered ${res.statusCode}`));
  });
  req.write(randomBytes(1024 * 1024));
  return ended;
}

forEachEngine("an async upload killed with its process", (engine) => {
  let dir: string;
  let base: string;
  let mediaPath: string;
  let services: Services;
  let child: ReturnType<typeof spawnCli> | undefined;

  const start = async () => {
    child = spawnCli(["serve", "--config", "mxcd.yaml"], dir);
    await waitForHttp(`${base}/health`, child);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "mxcd-crash-"));
    mediaPath = join(dir, "media");
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const database = await freshDatabaseConfig(engine);
    const config = {
      server_name: "test.local",
      listen: { host: "127.0.0.1", port },
      database,
      media_store: { engine: "filesystem", path: mediaPath },
      signing_key_path: join(dir, "signing.key"),
      log_level: "warn",
      shutdown_grace_period: "2s",
    };
    writeFileSync(join(dir, "mxcd.yaml"), JSON.stringify(config));
    await start();
    services = createServices(validateConfig(config), createDatabase(database));
  });
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
    await services?.database.close();
  });

  it(
    "sweeps the temp file at restart and lets a retried PUT succeed",
    { timeout: 60_000 },
    async () => {
      const userId = await services.accounts.register({
        localpart: "alice",
        password: "pw",
        admin: false,
      });
      const { accessToken: token } = await services.accounts.issueToken(userId, "DEVICE");
      const created = await new HttpClient(base, token).post("/_matrix/media/v1/create");
      const mediaId = mediaIdOf(created.body.content_uri);
      const url = `${base}/_matrix/media/v3/upload/test.local/${mediaId}`;

      const put = startStalledPut(url, token);
      await until(() => storeTempFiles(mediaPath).some((f) => statSync(f).size > 0));
      const [temp] = storeTempFiles(mediaPath);
      child!.kill("SIGKILL");
      assert.match(await put, /request failed/);
      await until(() => child!.exitCode !== null || child!.signalCode !== null);
      const row = await services.database.db
        .selectFrom("local_media_repository")
        .select("media_length")
        .where("media_id", "=", mediaId)
        .executeTakeFirstOrThrow();
      assert.equal(Number(row.media_length), -1, "the dead upload's claim is still recorded");

      // Only temp files untouched for 10 minutes are swept (a live write in
      // another process may own a younger one): make this one that old.
      const old = new Date(Date.now() - 3_600_000);
      utimesSync(temp!, old, old);
      await start();
      await until(() => !existsSync(temp!));

      const bytes = randomBytes(100_000);
      const retry = await fetch(url, {
        method: "PUT",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
        body: bytes,
      });
      assert.equal(retry.status, 200, await retry.clone().text());
      const got = await download(base, `/_matrix/client/v1/media/download/test.local/${mediaId}`, {
        token,
      });
      assert.equal(got.status, 200);
      assert.deepEqual(got.bytes, bytes);
      assert.deepEqual(storeTempFiles(mediaPath), []);
    },
  );
});
