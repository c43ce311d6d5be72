/**
 * The remote media cache's memory stays bounded under hostile load: failed
 * fetches of endless distinct ids on a dead server (the failure memory is an
 * LRU, the in-flight table empties, the warnings are rate-limited), and a
 * first client that stops reading while its fetch streams (the bytes waiting
 * for it stay under the tee bound; it gets the rest from the cache).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer, request as httpRequest, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, it } from "node:test";
import type { ConfigInput } from "../../src/config/config-schema.js";
import type { Engine } from "../../src/db/database.js";
import { forEachEngine } from "../support/databases.js";
import { HttpClient } from "../support/http-client.js";
import { freePort } from "../support/postgres-cluster.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

/** The value of an unlabelled gauge on /metrics. */
async function gauge(baseUrl: string, name: string): Promise<number> {
  const text = (await new HttpClient(baseUrl).get("/metrics")).text;
  const match = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  assert.ok(match, `${name} on /metrics`);
  return Number(match[1]);
}

/** Polls `condition` (an observable state, not a clock) until it holds. */
async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** A server whose log lines (JSON, at `warn`) are kept in `lines`. */
async function startLoggedApp(engine: Engine, overrides: Partial<ConfigInput>) {
  const lines: string[] = [];
  const server = await startTestServer(
    engine,
    { log_level: "warn", ...overrides },
    { logLines: lines },
  );
  const logged = (): { level: number; msg: string; suppressed_since_last?: number }[] =>
    lines.map((line) => JSON.parse(line));
  return { ...server, logged };
}

forEachEngine("remote fetch failures stay bounded", (engine) => {
  const BOUND = 50;
  let server: Awaited<ReturnType<typeof startLoggedApp>>;
  before(async () => {
    // Nothing listens on this port: every fetch fails at once (refused).
    const deadPort = await freePort();
    server = await startLoggedApp(engine, {
      ip_range_whitelist: ["127.0.0.0/8"],
      federation_custom_resolvers: { "dead.test": `http://127.0.0.1:${deadPort}` },
      remote_media_failure_cache_size: BOUND,
    });
  });
  after(() => server.stop());

  it("remembers at most remote_media_failure_cache_size failures, leaves nothing in flight, rate-limits the warnings", async () => {
    const http = new HttpClient(server.baseUrl);
    const total = 3 * BOUND;
    for (let batch = 0; batch < total; batch += 10) {
      // Ten at once: the anonymous legacy path, distinct ids.
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          http.get(`/_matrix/media/v3/download/dead.test/Dead${batch + i}`),
        ),
      );
      for (const res of answers) {
        assert.equal(res.status, 502);
        assert.equal(res.body.errcode, "M_UNKNOWN");
      }
      const remembered = await gauge(server.baseUrl, "mxcd_remote_fetch_failures_remembered");
      assert.ok(remembered <= BOUND, `${remembered} failures remembered, bound ${BOUND}`);
      assert.equal(await gauge(server.baseUrl, "mxcd_remote_fetches_in_flight"), 0);
    }
    assert.equal(await gauge(server.baseUrl, "mxcd_remote_fetch_failures_remembered"), BOUND);
    // The most recent failure is still remembered: same answer, no new fetch.
    const again = await http.get(`/_matrix/media/v3/download/dead.test/Dead${total - 1}`);
    assert.equal(again.status, 502);
    const warnings = server.logged().filter((l) => l.msg === "remote media fetch failed");
    assert.equal(warnings.length, 1, "one warning per origin per interval");
    assert.equal(warnings[0]!.suppressed_since_last, 0);
    assert.equal(await gauge(server.baseUrl, "mxcd_remote_fetch_warnings_suppressed"), total - 1);
  });
});

/** 1 MiB: REMOTE_TEE_BUFFER_BYTES in src/app.ts. */
const TEE_BOUND = 1024 * 1024;

forEachEngine("a slow first client of a remote fetch", (engine) => {
  const bytes = randomBytes(48 * 1024 * 1024);
  const boundary = "slowbnd";
  const origin = createServer((req, res) => {
    if (!req.url?.startsWith("/_matrix/federation/v1/media/download/")) {
      res.writeHead(404, { "content-type": "application/json" }).end('{"errcode":"M_NOT_FOUND"}');
      return;
    }
    res.writeHead(200, { "content-type": `multipart/mixed; boundary=${boundary}` });
    res.write(`\r\n--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n`);
    res.write(`--${boundary}\r\nContent-Type: application/octet-stream\r\n\r\n`);
    res.write(bytes);
    res.end(`\r\n--${boundary}--\r\n`);
  });
  let server: TestServer;
  let token: string;
  before(async () => {
    await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
    const port = (origin.address() as AddressInfo).port;
    server = await startTestServer(engine, {
      ip_range_whitelist: ["127.0.0.0/8"],
      federation_custom_resolvers: { "origin.test": `http://127.0.0.1:${port}` },
      max_upload_size: "64M",
    });
    token = (await server.user("slow")).token;
  });
  after(async () => {
    await server.stop();
    origin.close();
  });

  /** Starts a download of `id` and stops reading its body at once. */
  async function pausedDownload(id: string): Promise<IncomingMessage> {
    const url = new URL(`/_matrix/client/v1/media/download/origin.test/${id}`, server.baseUrl);
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      // A connection of its own: a reused one may come with receive buffers
      // the kernel already grew for a fast reader.
      const headers = { authorization: `Bearer ${token}` };
      const req = httpRequest(url, { headers, agent: false }, resolve);
      req.on("error", reject);
      req.end();
    });
    response.pause();
    assert.equal(response.statusCode, 200);
    return response;
  }

  /** The fetch completes into the cache at network speed, whatever the client does. */
  const cached = (id: string) =>
    waitFor(async () => {
      const row = await server.app.database.db
        .selectFrom("remote_media_cache")
        .select("media_id")
        .where("media_id", "=", id)
        .executeTakeFirst();
      return row !== undefined;
    }, `${id} to be cached`);

  it("buffers at most the tee bound for it, and it still gets every byte after resuming", async () => {
    const response = await pausedDownload("Big");
    await cached("Big");
    const buffered = await gauge(server.baseUrl, "mxcd_remote_fetch_tee_buffered_bytes");
    // The bound, plus one chunk of slack (the write that reached it).
    assert.ok(buffered <= TEE_BOUND + 256 * 1024, `${buffered} bytes buffered for the client`);
    const hash = createHash("sha256");
    let length = 0;
    for await (const chunk of response) {
      hash.update(chunk as Buffer);
      length += (chunk as Buffer).length;
    }
    assert.equal(length, bytes.length);
    assert.equal(hash.digest("hex"), createHash("sha256").update(bytes).digest("hex"));
    await waitFor(
      async () => (await gauge(server.baseUrl, "mxcd_remote_fetch_tee_buffered_bytes")) === 0,
      "the live stream to close",
    );
    // The fetch leaves the in-flight table once its commit settles, which on
    // S3 may come a moment after the stream closes: wait for it, never sleep.
    await waitFor(
      async () => (await gauge(server.baseUrl, "mxcd_remote_fetches_in_flight")) === 0,
      "nothing left in flight",
    );
  });

  it("forgets a client that goes away while detached", async () => {
    const response = await pausedDownload("Abandoned");
    await cached("Abandoned");
    // Detached and waiting: its stream holds bytes it has not read.
    assert.ok((await gauge(server.baseUrl, "mxcd_remote_fetch_tee_buffered_bytes")) > 0);
    response.destroy();
    await waitFor(
      async () => (await gauge(server.baseUrl, "mxcd_remote_fetch_tee_buffered_bytes")) === 0,
      "the abandoned stream to be released",
    );
    // The fetch leaves the in-flight table once its commit settles, which on
    // S3 may come a moment after the stream closes: wait for it, never sleep.
    await waitFor(
      async () => (await gauge(server.baseUrl, "mxcd_remote_fetches_in_flight")) === 0,
      "nothing left in flight",
    );
  });
});
