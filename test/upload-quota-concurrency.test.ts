/**
 * Uploads racing one quota (docs/media.md "Upload limits"): with declared
 * lengths exactly the allowed bytes land — from one process, through async
 * PUTs, and (PostgreSQL) from two processes at once; chunked bodies never
 * land more than allowed. Refused uploads leave no file, no row and no
 * reservation.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { allKeys, mediaIdOf } from "./support/media.js";
import {
  type SecondProcess,
  startSecondProcess,
  stopSecondProcess,
} from "./support/second-process.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";

const QUOTA = 1000;
const SIZE = 250;
const RACERS = 10;
const LIMITS = [{ time_period: "1d", max_size: QUOTA }];

/** POSTs `bytes` to `base` with a Content-Length, or chunked; resolves with the status. */
function post(base: string, token: string, bytes: Buffer, chunked = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}/_matrix/media/v3/upload`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        ...(chunked ? { "transfer-encoding": "chunked" } : { "content-length": bytes.length }),
      },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
    });
    if (chunked) {
      // Two pieces, so a body grows past its first reservation while others race.
      req.write(bytes.subarray(0, 100));
      setImmediate(() => req.end(bytes.subarray(100)));
    } else req.end(bytes);
  });
}

async function storedBytes(server: TestServer, userId: string) {
  const rows = await server.app.database.db
    .selectFrom("local_media_repository")
    .select("media_length")
    .where("user_id", "=", userId)
    .where("media_length", ">", 0)
    .execute();
  return rows.reduce((sum, r) => sum + Number(r.media_length), 0);
}

async function reservations(server: TestServer): Promise<number> {
  const rows = await server.app.database.db
    .selectFrom("media_upload_reservations")
    .select("reservation_id")
    .execute();
  return rows.length;
}

function count(statuses: readonly number[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const s of statuses) counts[s] = (counts[s] ?? 0) + 1;
  return counts;
}

forEachEngine("upload quota races", (engine) => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer(engine, {
      max_upload_size: 4096,
      max_pending_media_uploads: 50,
      media_upload_limits: LIMITS,
    });
  });
  after(() => server.stop());

  /** Asserts exactly QUOTA bytes landed for `user`, one file per success, nothing else left. */
  async function assertExactlyAllowed(user: TestUser, statuses: number[], keysBefore: string[]) {
    assert.deepEqual(count(statuses), { 200: QUOTA / SIZE, 403: RACERS - QUOTA / SIZE });
    assert.equal(await storedBytes(server, user.userId), QUOTA);
    assert.equal((await allKeys(server.app.store)).length, keysBefore.length + QUOTA / SIZE);
    assert.equal(await reservations(server), 0);
  }

  it("lands exactly the allowed bytes from concurrent uploads with Content-Length", async () => {
    const user = await server.user("racer");
    const keys = await allKeys(server.app.store);
    const statuses = await Promise.all(
      Array.from({ length: RACERS }, () => post(server.baseUrl, user.token, randomBytes(SIZE))),
    );
    await assertExactlyAllowed(user, statuses, keys);
  });

  it("lands exactly the allowed bytes from concurrent async PUTs", async () => {
    const user = await server.user("asyncracer");
    const ids: string[] = [];
    for (let i = 0; i < RACERS; i++) {
      const res = await user.http.request("POST", "/_matrix/media/v1/create");
      ids.push(mediaIdOf(res.body.content_uri));
    }
    const keys = await allKeys(server.app.store);
    const statuses = await Promise.all(
      ids.map(async (id) => {
        const res = await user.http.request("PUT", `/_matrix/media/v3/upload/test.local/${id}`, {
          rawBody: randomBytes(SIZE),
        });
        return res.status;
      }),
    );
    await assertExactlyAllowed(user, statuses, keys);
  });

  it("never lands more than allowed from concurrent chunked uploads", async () => {
    const user = await server.user("chunkracer");
    const keys = await allKeys(server.app.store);
    const statuses = await Promise.all(
      Array.from({ length: RACERS }, () =>
        post(server.baseUrl, user.token, randomBytes(SIZE), true),
      ),
    );
    const landed = count(statuses)[200] ?? 0;
    assert.ok(landed >= 1, JSON.stringify(count(statuses)));
    assert.equal(landed + (count(statuses)[403] ?? 0), RACERS);
    assert.equal(await storedBytes(server, user.userId), landed * SIZE);
    assert.ok(landed * SIZE <= QUOTA);
    assert.equal((await allKeys(server.app.store)).length, keys.length + landed);
    assert.equal(await reservations(server), 0);
  });
});

// Two processes share a database only on PostgreSQL (SQLite's is one process).
forEachEngine("upload quota races across processes", (engine) => {
  if (engine !== "postgres") return;
  let server: TestServer;
  let second: SecondProcess | undefined;

  before(async () => {
    server = await startTestServer(engine, { max_upload_size: 4096, media_upload_limits: LIMITS });
    second = await startSecondProcess(server, {
      max_upload_size: 4096,
      media_upload_limits: LIMITS,
    });
  });
  after(async () => {
    await stopSecondProcess(second);
    await server.stop();
  });

  it("lands exactly the allowed bytes when two processes take one user's uploads", async () => {
    const user = await server.user("twoprocs");
    const keys = await allKeys(server.app.store);
    const bases = [server.baseUrl, second!.base];
    const statuses = await Promise.all(
      Array.from({ length: RACERS }, (_, i) => post(bases[i % 2]!, user.token, randomBytes(SIZE))),
    );
    assert.deepEqual(count(statuses), { 200: QUOTA / SIZE, 403: RACERS - QUOTA / SIZE });
    assert.equal(await storedBytes(server, user.userId), QUOTA);
    assert.equal((await allKeys(server.app.store)).length, keys.length + QUOTA / SIZE);
    assert.equal(await reservations(server), 0);
  });
});
