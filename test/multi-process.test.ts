/**
 * Three real `mxcd serve` processes on one PostgreSQL database and one media
 * store (docs/deployment.md): every step of a media item's life goes through
 * a different process and is answered as one process would; waiters are
 * woken by commits in other processes; concurrent quarantines from all three
 * keep the feed gapless; a remote item is fetched once for all three.
 *
 * `notification_poll_interval` is one hour here, so only a NOTIFY can wake a
 * waiter early: without it a waiting download or long-poll would sit until
 * its 60 s timeout, and a remote fetch waiter for an hour. The tests that
 * wait so have a test time limit (`WOKEN`) far below those and far above what
 * they need (well under a second), so a lost NOTIFY fails them by time-out —
 * no timing is asserted.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { after, before, it } from "node:test";
import sharp from "sharp";
import { multipartFrame } from "../src/federation/multipart.js";
import { forEachEngine } from "./support/databases.js";
import type { HttpClient } from "./support/http-client.js";
import { download, uploadBytes } from "./support/media.js";
import { metric } from "./support/metrics.js";
import { type ProcessGroup, startProcessGroup, until } from "./support/mxcd-processes.js";
import { freePort } from "./support/postgres-cluster.js";

const ADMIN = "/_synapse/admin/v1";
const FEED = `${ADMIN}/media/quarantine_changes`;
const ORIGIN = "origin.test";
/** Test time limit of the tests that only a NOTIFY can finish early. */
const WOKEN = { timeout: 30_000 };

/** A federation origin that counts media requests and answers them only when released. */
async function startFakeOrigin(bytes: Buffer) {
  let requests = 0;
  let arrived!: () => void;
  let release!: () => void;
  const firstRequest = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const server: Server = createServer((req, res) => {
    if (!req.url?.startsWith("/_matrix/federation/v1/media/download/")) {
      res.writeHead(404, { "content-type": "application/json" }).end('{"errcode":"M_NOT_FOUND"}');
      return;
    }
    requests += 1;
    arrived();
    void released.then(() => {
      const frame = multipartFrame("b0undary", {
        contentType: "application/octet-stream",
        contentDisposition: "attachment; filename=remote.bin",
        length: bytes.length,
      });
      res.writeHead(200, {
        "content-type": "multipart/mixed; boundary=b0undary",
        "content-length": String(frame.length),
      });
      res.end(Buffer.concat([frame.head, bytes, frame.tail]));
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { port, server, firstRequest, release, requests: () => requests };
}

/** Reads the feed from `from` to its end, checking that ids are contiguous. */
async function replay(http: HttpClient, from = 0) {
  const changes: any[] = [];
  let expectedNext = Math.max(from, 1);
  for (;;) {
    const res = await http.get(`${FEED}?from=${from}&limit=37`);
    assert.equal(res.status, 200);
    const { changes: page, next_batch: next } = res.body;
    if (page.length === 0) return { changes, position: next as number };
    assert.equal(next, expectedNext + page.length, "stream ids are contiguous");
    changes.push(...page);
    from = expectedNext = next;
  }
}

forEachEngine("three mxcd processes on one database", (engine) => {
  if (engine !== "postgres") {
    it("runs on PostgreSQL only (several processes need a shared database)", {
      skip: "multi-process is a PostgreSQL deployment shape",
    });
    return;
  }
  let group: ProcessGroup;
  let origin: Awaited<ReturnType<typeof startFakeOrigin>>;
  const remoteBytes = randomBytes(300_000);
  let user: string;
  let admin: string;
  before(async () => {
    origin = await startFakeOrigin(remoteBytes);
    group = await startProcessGroup(3, {
      notification_poll_interval: "1h",
      // Exact sizes on request: a request never depends on how far the
      // uploader's background pre-generation has got.
      dynamic_thumbnails: true,
      ip_range_whitelist: ["127.0.0.0/8"],
      federation_custom_resolvers: { [ORIGIN]: `http://127.0.0.1:${origin.port}` },
    });
    user = await group.token("alice");
    admin = await group.token("admin", { admin: true });
  });
  after(async () => {
    origin?.release();
    origin?.server.close();
    await group?.stop();
  });
  const p = (i: number) => group.processes[i % 3]!;
  const get = (i: number, id: string, query = "") =>
    download(p(i).base, `/_matrix/client/v1/media/download/test.local/${id}${query}`, {
      token: user,
    });

  it("answers each step, each through another process, as one process would", WOKEN, async () => {
    const first = Buffer.from("uploaded through process one");
    const id = await uploadBytes(p(0).http(user), first);
    assert.deepEqual((await get(1, id)).bytes, first);

    // Async upload: created on 3, awaited on 1, filled on 2.
    const created = await p(2).http(user).post("/_matrix/media/v1/create");
    const asyncId = String(created.body.content_uri).split("/").pop()!;
    const waiting = get(0, asyncId, "?timeout_ms=60000");
    await until(async () => (await p(0).waiting("async_upload")) === 1);
    const bytes = Buffer.from("filled through process two");
    const put = await p(1)
      .http(user)
      .request("PUT", `/_matrix/media/v3/upload/test.local/${asyncId}`, { rawBody: bytes });
    assert.equal(put.status, 200);
    const woken = await waiting;
    assert.equal(woken.status, 200, "woken by the NOTIFY of process two");
    assert.deepEqual(woken.bytes, bytes);

    const before = (await replay(p(0).http(admin))).position;
    const quarantine = `${ADMIN}/media/quarantine/test.local/${asyncId}`;
    assert.equal((await p(2).http(admin).post(quarantine)).status, 200);
    const feed = await p(0).http(admin).get(`${FEED}?from=${before}`);
    assert.deepEqual(
      feed.body.changes.map((c: any) => [c.media_id, c.quarantined, c.quarantined_by]),
      [[asyncId, true, "@admin:test.local"]],
    );
    // At once on the process that quarantined; on the others once their
    // caches heard of it (docs/deployment.md "Caches": milliseconds).
    assert.equal((await get(2, asyncId)).status, 404);
    for (const i of [0, 1]) await until(async () => (await get(i, asyncId)).status === 404);

    const release = `${ADMIN}/media/unquarantine/test.local/${asyncId}`;
    assert.equal((await p(1).http(admin).post(release)).status, 200);
    assert.deepEqual((await get(1, asyncId)).bytes, bytes);
    for (const i of [0, 2]) await until(async () => (await get(i, asyncId)).status === 200);
    for (const i of [0, 2]) assert.deepEqual((await get(i, asyncId)).bytes, bytes);
    const released = await p(2).http(admin).get(`${FEED}?from=${feed.body.next_batch}`);
    assert.deepEqual(
      released.body.changes.map((c: any) => [c.media_id, c.quarantined]),
      [[asyncId, false]],
    );

    const deleted = await p(2).http(admin).delete(`${ADMIN}/media/test.local/${asyncId}`);
    assert.deepEqual(deleted.body, { deleted_media: [asyncId], total: 1 });
    assert.equal((await get(2, asyncId)).status, 404);
    for (const i of [0, 1]) await until(async () => (await get(i, asyncId)).status === 404);
    assert.equal(await group.services.media.getLocal(asyncId), undefined);
  });

  it("thumbnails media uploaded through another process, once", WOKEN, async () => {
    // Large enough that rendering takes a while: the eight requests, sent at
    // once to two processes, all ask before the one render ends.
    const png = await sharp({
      create: { width: 3000, height: 2000, channels: 3, background: "#345" },
    })
      .png()
      .toBuffer();
    const id = await uploadBytes(p(0).http(user), png, { contentType: "image/png" });
    const generated = async () => {
      let sum = 0;
      for (const i of [0, 1, 2]) {
        sum += await metric(p(i).base, "mxcd_thumbnails_generated_total", 'trigger="request"');
      }
      return sum;
    };
    const before = await generated();
    const thumbs = await Promise.all(
      [1, 2, 1, 2, 1, 2, 1, 2].map((i) =>
        download(
          p(i).base,
          `/_matrix/client/v1/media/thumbnail/test.local/${id}?width=50&height=50&method=crop`,
          { token: user },
        ),
      ),
    );
    for (const thumb of thumbs) {
      assert.equal(thumb.status, 200);
      assert.equal(thumb.headers.get("content-type"), "image/png");
      assert.deepEqual(thumb.bytes, thumbs[0]!.bytes);
    }
    // One render for all eight: the row count alone cannot show it (a
    // duplicate insert is ignored), the counters of the three processes can.
    assert.equal((await generated()) - before, 1);
    const rows = await group.services.database.db
      .selectFrom("local_media_repository_thumbnails")
      .select("thumbnail_type")
      .where("media_id", "=", id)
      .where("thumbnail_width", "=", 50)
      .execute();
    assert.deepEqual(rows, [{ thumbnail_type: "image/png" }]);
  });

  it("wakes a long-poll on one process with a quarantine committed on another", WOKEN, async () => {
    const id = await uploadBytes(p(2).http(user), randomBytes(64));
    const { position } = await replay(p(0).http(admin));
    const poll = p(0).http(admin).get(`${FEED}?from=${position}&timeout=60000`);
    await until(async () => (await p(0).waiting("feed")) === 1);
    assert.equal(
      (await p(1).http(admin).post(`${ADMIN}/media/quarantine/test.local/${id}`)).status,
      200,
    );
    const page = (await poll).body;
    assert.deepEqual(
      page.changes.map((c: any) => [c.media_id, c.quarantined]),
      [[id, true]],
      "woken by the NOTIFY of process two",
    );
    assert.equal(page.next_batch, position + 1);
  });

  it("keeps the feed gapless under concurrent quarantines from all three", async () => {
    // Eight byte patterns over 24 items: hash siblings propagate quarantines.
    const patterns = Array.from({ length: 8 }, (_, i) => Buffer.from(`pattern ${i} `.repeat(9)));
    const ids = await Promise.all(
      Array.from({ length: 24 }, (_, i) => uploadBytes(p(i).http(user), patterns[i % 8]!)),
    );
    const start = (await replay(p(0).http(admin))).position;
    let writing = true;
    const consumed: any[] = [];
    const consumer = (async () => {
      // A consumer paging with long-polls through every process in turn.
      let from = start;
      for (let turn = 0; ; turn++) {
        const res = await p(turn).http(admin).get(`${FEED}?from=${from}&limit=13&timeout=1000`);
        consumed.push(...res.body.changes);
        if (res.body.changes.length === 0 && !writing) return;
        from = res.body.next_batch;
      }
    })();
    const worker = async (process: number) => {
      for (let n = 0; n < 50; n++) {
        const id = ids[Math.floor(Math.random() * ids.length)]!;
        const action = Math.random() < 0.55 ? "quarantine" : "unquarantine";
        const res = await p(process).http(admin).post(`${ADMIN}/media/${action}/test.local/${id}`);
        assert.equal(res.status, 200);
      }
    };
    // 3 processes x 4 concurrent workers x 50 operations.
    await Promise.all([0, 1, 2].flatMap((i) => [i, i, i, i].map(worker)));
    writing = false;
    await consumer;

    const all = await replay(p(1).http(admin));
    const state = new Map<string, boolean>();
    for (const change of all.changes) {
      const previous = state.get(change.media_id) ?? false;
      assert.notEqual(change.quarantined, previous, `transitions alternate for ${change.media_id}`);
      state.set(change.media_id, change.quarantined);
    }
    const rows = await group.services.database.db
      .selectFrom("local_media_repository")
      .select(["media_id", "quarantined_by"])
      .execute();
    for (const row of rows) {
      assert.equal(state.get(row.media_id) ?? false, row.quarantined_by !== null, row.media_id);
    }
    // What the live consumer saw is exactly the tail of the replay: nothing skipped.
    const key = (c: any) => `${c.media_id}:${c.quarantined}`;
    assert.deepEqual(consumed.map(key), all.changes.slice(start - 1).map(key));
    assert.ok(consumed.length > 50, "the run made plenty of transitions");
  });

  it("fetches a remote item once for requests on all three processes", WOKEN, async () => {
    const path = `/_matrix/client/v1/media/download/${ORIGIN}/RemoteItem1`;
    const fetch = (i: number) => download(p(i).base, path, { token: user });
    const firstClient = fetch(0);
    await origin.firstRequest;
    const others = [fetch(1), fetch(2)];
    await until(
      async () => (await p(1).waiting("remote_fetch")) + (await p(2).waiting("remote_fetch")) === 2,
    );
    origin.release();
    for (const res of await Promise.all([firstClient, ...others])) {
      assert.equal(res.status, 200);
      assert.deepEqual(res.bytes, remoteBytes);
    }
    assert.equal(origin.requests(), 1);
  });
});
