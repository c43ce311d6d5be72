import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseConfigText } from "../src/config/load-config.js";
import { runCli, spawnCli, stopCli, waitForHttp, waitForOutput } from "./support/cli.js";
import { HttpClient } from "./support/http-client.js";
import { freePort } from "./support/postgres-cluster.js";

const tempDir = () => mkdtempSync(join(tmpdir(), "mxcd-cli-"));

async function writeConfig(dir: string, extra = ""): Promise<{ path: string; port: number }> {
  const port = await freePort();
  const path = join(dir, "mxcd.yaml");
  writeFileSync(
    path,
    `server_name: "cli.test"\nlisten: { host: "127.0.0.1", port: ${port} }\n` +
      `registration_shared_secret: "cli-secret"\nlog_level: warn\n${extra}`,
  );
  return { path, port };
}

describe("mxcd CLI", () => {
  it("lists every command in --help", async () => {
    const { code, stdout } = await runCli(["--help"]);
    assert.equal(code, 0);
    const commands = ["serve", "generate-config", "config", "register-user", "migrate", "jobs"];
    for (const command of [...commands, "media", "appservice", "signing-key", "proxy-config"]) {
      assert.match(stdout, new RegExp(`\\b${command}\\b`), command);
    }
  });

  it("generate-config prints a valid config and refuses to overwrite a file", async () => {
    const printed = await runCli(["generate-config", "--server-name", "example.org"]);
    assert.equal(printed.code, 0);
    assert.equal(parseConfigText(printed.stdout).server_name, "example.org");
    const dir = tempDir();
    const out = join(dir, "c.yaml");
    assert.equal((await runCli(["generate-config", "-o", out])).code, 0);
    const before = readFileSync(out, "utf8");
    const again = await runCli(["generate-config", "-o", out]);
    assert.notEqual(again.code, 0);
    assert.equal(readFileSync(out, "utf8"), before);
  });

  it("config check accepts a good file and names the key of a bad one", async () => {
    const dir = tempDir();
    const { path } = await writeConfig(dir);
    const good = await runCli(["config", "check", path]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /OK/);
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      'server_name: "x.org"\ndatabase: { engine: postgres }\nlisten: { port: -1 }\n',
    );
    const result = await runCli(["config", "check", bad]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /database\.url: is required/);
    assert.match(result.stderr, /listen\.port: /);
  });

  it("serve refuses a bad config, naming the key", async () => {
    const dir = tempDir();
    writeFileSync(
      join(dir, "mxcd.yaml"),
      'server_name: "x.org"\nmedia_store: { engine: floppy }\n',
    );
    const result = await runCli(["serve", "--config", "mxcd.yaml"], { cwd: dir });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /media_store\.engine: /);
  });

  it("migrate applies the schema once, then reports it up to date", async () => {
    const dir = tempDir();
    const { path } = await writeConfig(dir);
    const first = await runCli(["migrate", "--config", path], { cwd: dir });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /applied: 0001-accounts/);
    const second = await runCli(["migrate", "--config", path], { cwd: dir });
    assert.match(second.stdout, /up to date/);
  });

  it("first run: serve writes a default config, tells how to make an admin, and serves", async () => {
    const dir = tempDir();
    const server = spawnCli(["serve"], dir);
    try {
      const output = await waitForOutput(server, (o) => o.includes("register-user"));
      assert.match(output, /npx mxcd register-user --config mxcd\.yaml --admin/);
      const config = parseConfigText(readFileSync(join(dir, "mxcd.yaml"), "utf8"));
      assert.equal(config.database.engine, "sqlite");
      assert.ok(existsSync(join(dir, "data", "mxcd.sqlite")));
    } finally {
      await stopCli(server);
    }
  });

  it("register-user makes an admin who logs in; --url goes through a running server", async () => {
    const dir = tempDir();
    const { path, port } = await writeConfig(dir);
    const direct = await runCli(
      ["register-user", "-c", path, "-u", "boss", "-p", "s3cret", "--admin"],
      { cwd: dir },
    );
    assert.equal(direct.code, 0, direct.stderr);
    assert.match(direct.stdout, /registered @boss:cli\.test \(admin\)/);

    const server = spawnCli(["serve", "--config", path], dir);
    try {
      await waitForHttp(`http://127.0.0.1:${port}/health`, server);
      const http = new HttpClient(`http://127.0.0.1:${port}`);
      const login = await http.post("/_matrix/client/v3/login", {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: "boss" },
        password: "s3cret",
      });
      assert.equal(login.status, 200);
      const admin = http.withToken(login.body.access_token);
      assert.equal(
        (await admin.get("/_matrix/client/v3/account/whoami")).body.user_id,
        "@boss:cli.test",
      );

      const viaHttp = await runCli(
        [
          "register-user",
          "-c",
          path,
          "-u",
          "worker",
          "-p",
          "pw",
          "--url",
          `http://127.0.0.1:${port}`,
        ],
        { cwd: dir },
      );
      assert.equal(viaHttp.code, 0, viaHttp.stderr);
      const user = await admin.get("/_synapse/admin/v2/users/@worker:cli.test");
      assert.equal(user.status, 200);
      assert.equal(user.body.admin, false);

      const taken = await runCli(["register-user", "-c", path, "-u", "boss", "-p", "x"], {
        cwd: dir,
      });
      assert.equal(taken.code, 1);
      assert.match(taken.stderr, /M_USER_IN_USE/);
    } finally {
      assert.equal(await stopCli(server), 0, "graceful shutdown exits 0");
    }
  });
});
