/**
 * Memory at rest (issue 15): heavy dependencies load on first use, not at
 * start-up. Structural, not a number that depends on the machine: the real
 * CLI (`mxcd serve` from dist/) runs with a tiny test-only module hook that
 * appends the URL of every module it loads to a file, and on Linux its
 * /proc/<pid>/maps shows whether libvips (sharp's native library) is mapped.
 *
 * - The embedded default (the config `generate-config` writes): once
 *   listening, neither sharp, the AWS SDK nor pg is loaded (pg never is, on SQLite); the first thumbnail
 *   loads sharp and is a real 32×32 image.
 * - An S3 media store: at rest the AWS SDK is not loaded either; the first
 *   upload loads it and the bytes land in the bucket.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import sharp from "sharp";
import { assertBuilt, CLI, runCli, waitForHttp } from "./support/cli.js";
import { freePort } from "./support/postgres-cluster.js";
import { startS3rver, type TestS3 } from "./support/s3rver.js";
import { waitFor } from "./support/wait-for.js";

/**
 * Registers the recorder in the child (runs on the main thread, before
 * main.js), and writes V8's heap spaces to a file on SIGUSR2.
 */
const REGISTER = `import { register } from "node:module";
import { renameSync, writeFileSync } from "node:fs";
import { getHeapSpaceStatistics } from "node:v8";
register("./record-hooks.mjs", import.meta.url);
process.on("SIGUSR2", () => {
  const file = process.env.MXCD_TEST_HEAP_LOG;
  writeFileSync(file + ".tmp", JSON.stringify(getHeapSpaceStatistics()));
  renameSync(file + ".tmp", file);
});
`;

/** The `load` hook: every module URL the child loads, one a line. */
const HOOKS = `import { appendFileSync } from "node:fs";
export async function load(url, context, next) {
  appendFileSync(process.env.MXCD_TEST_MODULE_LOG, url + "\\n");
  return next(url, context);
}
`;

interface Recorded {
  readonly child: ChildProcess & { output: () => string };
  readonly base: string;
  /** Module URLs loaded so far. */
  modules(): string[];
  /** True when the process maps a libvips shared library (Linux only). */
  mapsLibvips(): boolean;
  /** Bytes V8 has reserved for the young generation (both semi-spaces), asked by signal. */
  newSpaceBytes(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts `mxcd serve --config <config>` in `dir` with the module recorder. */
async function startRecorded(dir: string, config: string, port: number): Promise<Recorded> {
  writeFileSync(join(dir, "record.mjs"), REGISTER);
  writeFileSync(join(dir, "record-hooks.mjs"), HOOKS);
  const log = join(dir, "modules.log");
  const heapLog = join(dir, "heap.json");
  const child = spawn(
    process.execPath,
    ["--import", pathToFileURL(join(dir, "record.mjs")).href, CLI, "serve", "--config", config],
    { cwd: dir, env: { ...process.env, MXCD_TEST_MODULE_LOG: log, MXCD_TEST_HEAP_LOG: heapLog } },
  );
  let output = "";
  child.stdout.on("data", (d: Buffer) => {
    output += d;
  });
  child.stderr.on("data", (d: Buffer) => {
    output += d;
  });
  const recorded = Object.assign(child, { output: () => output });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttp(`${base}/health`, recorded);
  return {
    child: recorded,
    base,
    modules: () => (existsSync(log) ? readFileSync(log, "utf8").split("\n") : []),
    mapsLibvips: () => readFileSync(`/proc/${child.pid}/maps`, "utf8").includes("libvips"),
    async newSpaceBytes() {
      rmSync(heapLog, { force: true });
      child.kill("SIGUSR2");
      await waitFor(() => existsSync(heapLog), "the heap statistics");
      const spaces = JSON.parse(readFileSync(heapLog, "utf8")) as {
        space_name: string;
        space_size: number;
      }[];
      return spaces.find((space) => space.space_name === "new_space")?.space_size ?? Number.NaN;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

const isSharp = (url: string) => /\/node_modules\/sharp\//.test(url);
const isAwsSdk = (url: string) => /\/node_modules\/@aws-sdk\//.test(url);
/** The PostgreSQL driver (pg and its pg-* helpers): a server on SQLite never needs it. */
const isPg = (url: string) => /\/node_modules\/pg(-[a-z-]+)?\//.test(url);
/** The URL-preview stack (off by default): its HTML tokenizer and its own modules. */
const isPreviewStack = (url: string) =>
  /\/node_modules\/(htmlparser2|entities)\//.test(url) || /\/src\/previews\//.test(url);

/** Registers `alice` through the CLI and logs in over HTTP; returns her token. */
async function aliceToken(dir: string, config: string, base: string): Promise<string> {
  const registered = await runCli(
    ["register-user", "--config", config, "-u", "alice", "-p", "correct horse", "--no-admin"],
    { cwd: dir },
  );
  assert.equal(registered.code, 0, registered.stderr);
  const login = await fetch(`${base}/_matrix/client/v3/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      type: "m.login.password",
      identifier: { type: "m.id.user", user: "alice" },
      password: "correct horse",
    }),
  });
  assert.equal(login.status, 200, await login.clone().text());
  return ((await login.json()) as { access_token: string }).access_token;
}

async function upload(base: string, token: string, body: Uint8Array, type: string) {
  const response = await fetch(`${base}/_matrix/media/v3/upload?filename=a`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": type },
    body,
  });
  assert.equal(response.status, 200, await response.clone().text());
  const { content_uri: uri } = (await response.json()) as { content_uri: string };
  return uri.slice(uri.lastIndexOf("/") + 1);
}

describe("memory at rest", { skip: process.platform !== "linux" && "reads /proc" }, () => {
  let dir: string;
  before(() => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), "mxcd-at-rest-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("the embedded default loads neither sharp nor the AWS SDK until the first thumbnail", async () => {
    const home = mkdtempSync(join(dir, "embedded-"));
    const port = await freePort();
    const generated = await runCli(["generate-config", "--port", String(port), "-o", "mxcd.yaml"], {
      cwd: home,
    });
    assert.equal(generated.code, 0, generated.stderr);
    const server = await startRecorded(home, "mxcd.yaml", port);
    try {
      // Start-up garbage did not grow the young generation to its maximum (2 × 16 MiB):
      // it is still at its initial size (2 × 1 MiB), far from the limit either way.
      // Checked before any request but /health: once requests come, V8 grows it
      // straight to its maximum (docs/deployment.md "Memory at rest").
      const young = await server.newSpaceBytes();
      assert.ok(young <= 8 * 1024 ** 2, `young generation at rest: ${young} bytes`);
      const token = await aliceToken(home, "mxcd.yaml", server.base);
      // The recorder itself works: the server's own modules are in the log.
      assert.ok(server.modules().some((url) => url.endsWith("/dist/src/app.js")));
      assert.deepEqual(server.modules().filter(isSharp), [], "sharp loaded at rest");
      assert.deepEqual(server.modules().filter(isAwsSdk), [], "the AWS SDK loaded at rest");
      assert.deepEqual(server.modules().filter(isPg), [], "pg loaded by a server on SQLite");
      assert.equal(server.mapsLibvips(), false, "libvips mapped at rest");
      // Previews are off in the generated config: none of their modules is loaded
      // but the few lines that decide so (load-url-previews.ts).
      assert.deepEqual(
        server
          .modules()
          .filter((url) => isPreviewStack(url) && !url.endsWith("/load-url-previews.js")),
        [],
        "the URL-preview stack loaded with previews off",
      );

      const png = await sharp({
        create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 90 } },
      })
        .png()
        .toBuffer();
      const mediaId = await upload(server.base, token, png, "image/png");
      const response = await fetch(
        `${server.base}/_matrix/client/v1/media/thumbnail/localhost/${mediaId}` +
          "?width=32&height=32&method=crop",
        { headers: { authorization: `Bearer ${token}` } },
      );
      assert.equal(response.status, 200, await response.clone().text());
      const thumbnail = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      assert.deepEqual([thumbnail.width, thumbnail.height], [32, 32]);
      assert.ok(server.modules().some(isSharp), "the first thumbnail loaded sharp");
      assert.equal(server.mapsLibvips(), true, "the first thumbnail mapped libvips");
      assert.deepEqual(server.modules().filter(isAwsSdk), [], "a filesystem store never loads S3");
      assert.deepEqual(server.modules().filter(isPg), [], "SQLite never loads pg");
    } finally {
      await server.stop();
    }
  });

  describe("with an S3 media store", () => {
    let s3: TestS3;
    before(async () => {
      s3 = await startS3rver();
    });
    after(() => s3.stop());

    it("loads the AWS SDK on the first store operation, not at start-up", async () => {
      const home = mkdtempSync(join(dir, "s3-"));
      const port = await freePort();
      const config = {
        server_name: "localhost",
        listen: { host: "127.0.0.1", port },
        database: { engine: "sqlite", path: "./data/mxcd.sqlite" },
        media_store: s3.storeConfig(),
        registration_shared_secret: "at-rest-secret",
        log_level: "warn",
      };
      writeFileSync(join(home, "mxcd.yaml"), JSON.stringify(config));
      const server = await startRecorded(home, "mxcd.yaml", port);
      try {
        const token = await aliceToken(home, "mxcd.yaml", server.base);
        assert.ok(server.modules().some((url) => url.endsWith("/dist/src/app.js")));
        assert.deepEqual(server.modules().filter(isAwsSdk), [], "the AWS SDK loaded at rest");

        const bytes = new TextEncoder().encode("bytes in a bucket");
        const mediaId = await upload(server.base, token, bytes, "text/plain");
        assert.ok(server.modules().some(isAwsSdk), "the first upload loaded the AWS SDK");
        const client = s3.client();
        try {
          const { ListObjectsV2Command } = await import("@aws-sdk/client-s3");
          const listed = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
          const keys = (listed.Contents ?? []).map((object) => object.Key ?? "");
          assert.ok(
            keys.some((key) => key.endsWith(mediaId.slice(4))),
            `${mediaId} not in ${keys}`,
          );
        } finally {
          client.destroy();
        }
        const download = await fetch(
          `${server.base}/_matrix/client/v1/media/download/localhost/${mediaId}`,
          { headers: { authorization: `Bearer ${token}` } },
        );
        assert.equal(download.status, 200);
        assert.equal(await download.text(), "bytes in a bucket");
      } finally {
        await server.stop();
      }
    });
  });
});
