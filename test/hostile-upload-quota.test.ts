/**
 * Hostile pass over upload quotas and reservations (issue 17, docs/media.md
 * "Upload limits"): a client that declares a large body and sends nothing, a
 * process killed with `kill -9` in the middle of a reserved upload, 100
 * concurrent uploads by one user racing its quota, and the usage admin API
 * fed hostile user ids. Each attack must end in a Matrix error or a clean
 * success: no 500, no hang, no reservation held for ever, no leftover file.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, utimesSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { LEASE_MS } from "../src/media/upload-quota-service.js";
import { forEachEngine } from "./support/databases.js";
import {
  type SecondProcess,
  startSecondProcess,
  stopSecondProcess,
} from "./support/second-process.js";
import { storeTempFiles } from "./support/store-files.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { mediaRowsOf, reservationsOf } from "./support/upload-quota.js";
import { waitFor } from "./support/wait-for.js";

const usagePath = (userId: string) =>
  `/_mxcd/admin/v1/users/${encodeURIComponent(userId)}/media_usage`;

/**
 * Starts an upload to `base` declaring `declared` bytes and sends only
 * `sent` of them; resolves with how the exchange ended (an answer, or the
 * connection cut). The request is left open otherwise.
 */
function stalledUpload(base: string, token: string, declared: number, sent: number) {
  const req = httpRequest(`${base}/_matrix/media/v3/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-length": String(declared) },
  });
  const ended = new Promise<{ status?: number; cut?: string }>((resolve) => {
    req.on("error", (error) => resolve({ cut: (error as NodeJS.ErrnoException).code ?? "error" }));
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode! }));
      res.on("error", () => resolve({ status: res.statusCode! }));
    });
  });
  if (sent > 0) req.write(randomBytes(sent));
  else req.flushHeaders();
  return { req, ended };
}

forEachEngine("hostile: upload quota and reservations", (engine) => {
  let server: TestServer;
  let admin: TestUser;
  let mediaRoot: string;
  let clock = Date.UTC(2026, 0, 1);

  before(async () => {
    mediaRoot = join(mkdtempSync(join(tmpdir(), "mxcd-hostile-quota-")), "media");
    server = await startTestServer(
      engine,
      {
        max_upload_size: 10_000_000,
        media_upload_limits: [{ time_period: "1h", max_size: 10_000 }],
        media_store: { engine: "filesystem", path: mediaRoot },
        // A stalled body is cut off after this; the default is a minute.
        http_timeouts: { headers: "60s", body_idle: "300ms" },
      },
      { appOptions: { uploadNow: () => clock } },
    );
    admin = await server.user("admin", { admin: true });
  });
  after(() => server.stop());

  it("a client that declares a large body and sends nothing loses its reservation at body_idle", async () => {
    const user = await server.user("staller");
    const stalled = stalledUpload(server.baseUrl, user.token, 9_000, 0);
    // The declared length is reserved before a byte is read...
    await waitFor(async () => (await reservationsOf(server, user.userId)) === 1, "the reservation");
    const held = await admin.http.get(usagePath(user.userId));
    assert.deepEqual(held.body.pending, { uploads: 1, bytes: 9_000 });
    // ...and released when the idle body is cut off, without an answer the client
    // has to wait for and without a file.
    await waitFor(
      async () => (await reservationsOf(server, user.userId)) === 0,
      "the stalled upload's reservation to be dropped",
    );
    const end = await stalled.ended;
    assert.ok(end.cut !== undefined || (end.status ?? 500) < 500, JSON.stringify(end));
    const freed = await admin.http.get(usagePath(user.userId));
    assert.deepEqual(freed.body.pending, { uploads: 0, bytes: 0 });
    assert.equal(freed.body.windows[0].remaining, 10_000);
    assert.equal(await mediaRowsOf(server, user.userId), 0);
    assert.deepEqual(storeTempFiles(mediaRoot), []);
    // The user can use the whole quota again.
    const ok = await user.http.request("POST", "/_matrix/media/v3/upload", {
      rawBody: randomBytes(10_000),
    });
    assert.equal(ok.status, 200, ok.text);
  });

  it("a client that stalls mid-body is cut off the same way: no file, no reservation", async () => {
    const user = await server.user("midstaller");
    const stalled = stalledUpload(server.baseUrl, user.token, 9_000, 4_000);
    await waitFor(
      async () => (await reservationsOf(server, user.userId)) === 0,
      "the mid-body staller's reservation to be dropped",
    );
    await stalled.ended;
    await waitFor(() => storeTempFiles(mediaRoot).length === 0, "its temp file to go");
    assert.equal(await mediaRowsOf(server, user.userId), 0);
  });

  it("a stalled chunked body and a stalled async PUT release their reservation and their id", async () => {
    const user = await server.user("chunkstaller");
    const chunked = httpRequest(`${server.baseUrl}/_matrix/media/v3/upload`, {
      method: "POST",
      headers: { authorization: `Bearer ${user.token}`, "transfer-encoding": "chunked" },
    });
    const chunkedEnded = new Promise<void>((resolve) => {
      chunked.on("error", () => resolve());
      chunked.on("response", (res) => res.resume().on("end", resolve));
    });
    chunked.write(randomBytes(100));
    await waitFor(
      async () => (await reservationsOf(server, user.userId)) === 1,
      "the chunked step",
    );
    await waitFor(
      async () => (await reservationsOf(server, user.userId)) === 0,
      "the stalled chunked upload's reservation to be dropped",
    );
    await chunkedEnded;

    const created = await user.http.post("/_matrix/media/v1/create");
    assert.equal(created.status, 200, created.text);
    const mediaId = created.body.content_uri.split("/").pop();
    const putPath = `/_matrix/media/v3/upload/test.local/${mediaId}`;
    const put = httpRequest(`${server.baseUrl}${putPath}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${user.token}`, "content-length": "9000" },
    });
    const putEnded = new Promise<void>((resolve) => {
      put.on("error", () => resolve());
      put.on("response", (res) => res.resume().on("end", resolve));
    });
    put.flushHeaders();
    await waitFor(
      async () => (await reservationsOf(server, user.userId)) === 1,
      "the PUT's reservation",
    );
    await waitFor(
      async () => (await reservationsOf(server, user.userId)) === 0,
      "the stalled PUT's reservation to be dropped",
    );
    await putEnded;
    // The id is pending again: a retried PUT fills it (409 only while the
    // stalled one still held it).
    const seen = new Set<number>();
    await waitFor(async () => {
      const retry = await user.http.request("PUT", putPath, { rawBody: randomBytes(100) });
      seen.add(retry.status);
      return retry.status === 200;
    }, "a retried PUT to fill the id");
    assert.deepEqual(
      [...seen].filter((s) => s !== 200 && s !== 409),
      [],
      `statuses ${[...seen]}`,
    );
    assert.equal(await mediaRowsOf(server, user.userId), 1);
    assert.deepEqual(storeTempFiles(mediaRoot), []);
  });

  it("100 concurrent uploads by one user land exactly the quota; all answered 200 or 403", async () => {
    const user = await server.user("hundred");
    const size = 300; // 10,000 / 300: 33 fit
    const answers = await Promise.all(
      Array.from({ length: 100 }, () =>
        user.http.request("POST", "/_matrix/media/v3/upload", { rawBody: randomBytes(size) }),
      ),
    );
    const statuses = answers.map((a) => a.status);
    assert.ok(
      statuses.every((s) => s === 200 || s === 403),
      `only 200 and 403: ${statuses.filter((s) => s !== 200 && s !== 403)}`,
    );
    for (const refused of answers.filter((a) => a.status === 403))
      assert.equal(refused.body.errcode, "M_USER_LIMIT_EXCEEDED");
    const landed = statuses.filter((s) => s === 200).length;
    assert.equal(landed, Math.floor(10_000 / size), "exactly what fits lands");
    assert.equal(await mediaRowsOf(server, user.userId), landed);
    assert.equal(
      await reservationsOf(server, user.userId),
      0,
      "no reservation outlives its upload",
    );
    const usage = await admin.http.get(usagePath(user.userId));
    assert.equal(usage.body.windows[0].used, landed * size);
    assert.deepEqual(usage.body.pending, { uploads: 0, bytes: 0 });
    assert.deepEqual(storeTempFiles(mediaRoot), []);
  });

  it("the usage admin API answers every hostile user id with a Matrix error, never a 500", async () => {
    const hostile = [
      `@${"a".repeat(5_000)}:test.local`, // far over the 255-character limit
      "@ünïcödé:test.local",
      "@💥:test.local",
      "@a\u0000b:test.local",
      "@alice:test.local\u0000",
      "@alice:elsewhere.example",
      "@alice:test.local:8448",
      "@alice:[::1]",
      "@:test.local",
      "@alice:",
      "@alice",
      "alice:test.local",
      "@al ice:test.local",
      "@alice:test.local/../../etc/passwd",
      "%00",
      "@alice:test.local%00",
      " ",
    ];
    for (const userId of hostile) {
      const res = await admin.http.get(usagePath(userId));
      const what = `${JSON.stringify(userId.slice(0, 60))} → ${res.status} ${res.text.slice(0, 200)}`;
      assert.ok([400, 404].includes(res.status), what);
      assert.equal(typeof res.body.errcode, "string", what);
      assert.equal(typeof res.body.error, "string", what);
      if (res.status === 400) assert.equal(res.body.errcode, "M_INVALID_PARAM", what);
      else assert.equal(res.body.errcode, "M_NOT_FOUND", what);
    }
    // A path segment too long for the URL parser itself is still a clean answer.
    const huge = await admin.http.get(usagePath(`@${"b".repeat(20_000)}:test.local`));
    assert.ok(huge.status < 500, `a 20,000-character id: ${huge.status}`);
    // A raw, undecodable percent escape in the segment.
    const raw = await admin.http.get("/_mxcd/admin/v1/users/%E0%A4%A/media_usage");
    assert.ok([400, 404].includes(raw.status), `bad escape: ${raw.status} ${raw.text}`);
    assert.equal(typeof raw.body.errcode, "string");
  });

  it("kill -9 mid-upload: the reservation lapses, a restart sweeps the temp file, usage is right", async () => {
    const user = await server.user("killed");
    let second: SecondProcess | undefined = await startSecondProcess(server, {
      media_upload_limits: [{ time_period: "1h", max_size: 10_000 }],
      max_upload_size: 10_000_000,
    });
    try {
      const stalled = stalledUpload(second.base, user.token, 8_000, 3_000);
      stalled.ended.catch(() => {});
      await waitFor(
        async () =>
          (await reservationsOf(server, user.userId)) === 1 &&
          storeTempFiles(mediaRoot).length === 1,
        "the second process's reservation and temp file",
      );
      second.kill("SIGKILL");
      await once(second, "exit");
      second = undefined;
      await stalled.ended;
    } finally {
      await stopSecondProcess(second);
    }
    // The dead process's reservation holds the quota until its lease ends...
    const held = await admin.http.get(usagePath(user.userId));
    assert.deepEqual(held.body.pending, { uploads: 1, bytes: 8_000 });
    const refused = await user.http.request("POST", "/_matrix/media/v3/upload", {
      rawBody: randomBytes(5_000),
    });
    assert.equal(refused.status, 403);
    // ...and no longer once it has (the clock moved past the lease the second
    // process, on the real clock, gave it).
    clock = Date.now() + LEASE_MS + 60_000;
    const lapsed = await admin.http.get(usagePath(user.userId));
    assert.deepEqual(lapsed.body.pending, { uploads: 0, bytes: 0 });
    assert.equal(lapsed.body.windows[0].used, 0);
    // Its temp file is still there; a restart sweeps it once it is old enough.
    const [leftover] = storeTempFiles(mediaRoot);
    assert.ok(leftover, "kill -9 leaves the temp file for the sweep");
    const old = new Date(Date.now() - 24 * 3_600_000);
    utimesSync(leftover, old, old);
    const restarted = await startTestServer(engine, {
      database: server.app.config.database,
      media_store: { engine: "filesystem", path: mediaRoot },
    });
    try {
      await waitFor(() => storeTempFiles(mediaRoot).length === 0, "the restart's temp-file sweep");
    } finally {
      await restarted.stop();
    }
    assert.equal(await mediaRowsOf(server, user.userId), 0, "no row from the killed upload");
    const ok = await user.http.request("POST", "/_matrix/media/v3/upload", {
      rawBody: randomBytes(10_000),
    });
    assert.equal(ok.status, 200, "the whole quota is free again");
  });
});
