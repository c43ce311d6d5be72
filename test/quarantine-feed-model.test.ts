/**
 * Model-based test of the quarantine feed: a thousand random operations
 * (uploads with repeated bytes, async uploads, quarantine and release by id,
 * room and user, protection, deletion, media posted into rooms, cached remote
 * copies; the rarest kind comes up about forty times), then the whole feed is
 * replayed from `from=0` in pages and must reproduce exactly the final
 * quarantine state of every media item, with no gap in the ids and no
 * duplicate transition. On PostgreSQL a second real `mxcd serve` process
 * takes half of the operations at the same time. MXCD_MODEL_OPERATIONS runs
 * more (the seeds are fixed: a failure replays).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { HttpClient } from "./support/http-client.js";
import { mediaIdOf } from "./support/media.js";
import {
  type SecondProcess,
  startSecondProcess,
  stopSecondProcess,
} from "./support/second-process.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

const OPERATIONS = Number(process.env.MXCD_MODEL_OPERATIONS ?? 1000);
const ADMIN = "/_synapse/admin/v1";
const PATTERNS = Array.from({ length: 6 }, (_, i) => Buffer.from(`pattern-${i}-`.repeat(20)));
const REMOTE = "remote.example";

/** Deterministic PRNG (mulberry32), so a failure can be replayed with the same seed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface World {
  local: string[];
  remote: string[];
  rooms: string[];
  users: { userId: string; token: string }[];
}

/** One random operation through `http` (a client bound to one server process). */
async function randomOperation(
  random: () => number,
  base: string,
  adminToken: string,
  world: World,
) {
  const pick = <T>(items: T[]) => items[Math.floor(random() * items.length)]!;
  const admin = new HttpClient(base, adminToken);
  const user = pick(world.users);
  const asUser = new HttpClient(base, user.token);
  const roll = random();
  const mxc = () => {
    const remote = random() < 0.25;
    return remote ? `${REMOTE}/${pick(world.remote)}` : `test.local/${pick(world.local)}`;
  };
  if (roll < 0.25 || world.local.length < 3) {
    const res = await asUser.request("POST", "/_matrix/media/v3/upload", {
      rawBody: pick(PATTERNS),
    });
    world.local.push(mediaIdOf(res.body.content_uri));
  } else if (roll < 0.3) {
    const created = await asUser.post("/_matrix/media/v1/create");
    if (created.status !== 200) return;
    const id = mediaIdOf(created.body.content_uri);
    await asUser.request("PUT", `/_matrix/media/v3/upload/test.local/${id}`, {
      rawBody: pick(PATTERNS),
    });
    world.local.push(id);
  } else if (roll < 0.45) {
    await admin.post(`${ADMIN}/media/quarantine/${mxc()}`);
  } else if (roll < 0.57) {
    await admin.post(`${ADMIN}/media/unquarantine/${mxc()}`);
  } else if (roll < 0.65) {
    await admin.post(
      `${ADMIN}/media/${random() < 0.6 ? "protect" : "unprotect"}/${pick(world.local)}`,
    );
  } else if (roll < 0.69) {
    await admin.post(
      `${ADMIN}/user/${encodeURIComponent(pick(world.users).userId)}/media/quarantine`,
    );
  } else if (roll < 0.8) {
    const room = encodeURIComponent(pick(world.rooms));
    const txn = `t${Math.floor(random() * 1e9)}`;
    await new HttpClient(base, world.users[0]!.token).put(
      `/_matrix/client/v3/rooms/${room}/send/m.room.message/${txn}`,
      { msgtype: "m.image", body: "x", url: `mxc://${mxc()}` },
    );
  } else if (roll < 0.84) {
    await admin.post(`${ADMIN}/room/${encodeURIComponent(pick(world.rooms))}/media/quarantine`);
  } else if (roll < 0.88) {
    const id = pick(world.local);
    const res = await admin.delete(`${ADMIN}/media/test.local/${id}`);
    if (res.status === 200) world.local.splice(world.local.indexOf(id), 1);
  } else {
    await asUser
      .request("POST", "/_matrix/media/v3/upload", { rawBody: pick(PATTERNS) })
      .then((res) => {
        world.local.push(mediaIdOf(res.body.content_uri));
      });
  }
}

/** Replays the feed in pages; checks ids are contiguous and transitions alternate. */
async function replay(admin: HttpClient): Promise<Map<string, boolean>> {
  const state = new Map<string, boolean>();
  let from = 0;
  let expectedNext = 1;
  for (;;) {
    const res = await admin.get(`${ADMIN}/media/quarantine_changes?from=${from}&limit=${257}`);
    assert.equal(res.status, 200);
    const { changes, next_batch: next } = res.body;
    if (changes.length === 0) {
      assert.equal(next, from);
      return state;
    }
    // Contiguous ids: each page advances next_batch by exactly its length.
    assert.equal(next, Math.max(from, expectedNext) + changes.length);
    for (const change of changes) {
      const key = `${change.origin}/${change.media_id}`;
      const previous = state.get(key) ?? false;
      assert.notEqual(change.quarantined, previous, `duplicate transition for ${key}`);
      state.set(key, change.quarantined);
    }
    from = next;
    expectedNext = next;
  }
}

forEachEngine("quarantine feed model", (engine) => {
  let server: TestServer;
  let second: SecondProcess | undefined;
  before(async () => {
    server = await startTestServer(engine, { max_pending_media_uploads: 1000 });
    if (engine !== "postgres") return;
    second = await startSecondProcess(server, { max_pending_media_uploads: 1000 });
  });
  after(async () => {
    await stopSecondProcess(second);
    await server.stop();
  });

  it(`replays ${OPERATIONS} random operations to exactly the final state`, async () => {
    const admin = await server.user("admin", { admin: true });
    const users = await Promise.all(["u1", "u2", "u3"].map((name) => server.user(name)));
    const world: World = {
      local: [],
      remote: [],
      rooms: [],
      users: users.map((u) => ({ userId: u.userId, token: u.token })),
    };
    for (let i = 0; i < 6; i++) {
      const id = `Remote${i}`;
      await server.app.database.db
        .insertInto("remote_media_cache")
        .values({
          media_origin: REMOTE,
          media_id: id,
          media_type: "application/octet-stream",
          media_length: 1,
          created_ts: Date.now(),
          upload_name: null,
          filesystem_id: `RemoteFile${i}`.padEnd(24, "x"),
          last_access_ts: Date.now(),
          authenticated: true,
          sha256: createHash("sha256")
            .update(PATTERNS[i % 3]!)
            .digest("hex"),
        })
        .execute();
      world.remote.push(id);
    }
    world.remote.push("NeverCached1", "NeverCached2");
    for (const name of ["one", "two"]) {
      const res = await users[0]!.http.post("/_matrix/client/v3/createRoom", { name });
      world.rooms.push(res.body.room_id);
    }

    const bases = second ? [server.baseUrl, second.base] : [server.baseUrl];
    await Promise.all(
      bases.map(async (base, i) => {
        const random = prng(1234 + i);
        for (let n = 0; n < OPERATIONS / bases.length; n++) {
          await randomOperation(random, base, admin.token, world);
        }
      }),
    );

    const state = await replay(admin.http);
    const db = server.app.database.db;
    const local = await db
      .selectFrom("local_media_repository")
      .select(["media_id", "quarantined_by"])
      .execute();
    const remote = await db
      .selectFrom("remote_media_cache")
      .select(["media_origin", "media_id", "quarantined_by"])
      .execute();
    let quarantined = 0;
    for (const row of local) {
      const expected = row.quarantined_by !== null;
      quarantined += Number(expected);
      assert.equal(state.get(`test.local/${row.media_id}`) ?? false, expected, row.media_id);
    }
    for (const row of remote) {
      assert.equal(
        state.get(`${row.media_origin}/${row.media_id}`) ?? false,
        row.quarantined_by !== null,
      );
    }
    assert.ok(local.length > OPERATIONS / 5, "the run made plenty of media");
    assert.ok(quarantined > 0 && quarantined < local.length, "a mix of states");
  });
});
