/**
 * The room-history backfill (docs/attached.md "Backfilling rooms from before
 * the application service"): an attached mxcd, on SQLite and PostgreSQL,
 * against the scripted homeserver's admin `rooms` and `rooms/<id>/messages`
 * APIs (written from Synapse's behaviour, not from mxcd). History from before
 * the application service reaches the room media list; live pushes overlap
 * harmlessly; a stopped job resumes without fetching a page twice; hostile
 * answers stop one room, not the job; `mxcd jobs` shows the job.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { ConfigInput } from "../../src/config/config-schema.js";
import { validateConfig } from "../../src/config/load-config.js";
import { createDatabase, type Database } from "../../src/db/database.js";
import {
  generateRegistration,
  registrationYaml,
} from "../../src/homeserver/app-service-registration.js";
import { HomeserverClient } from "../../src/homeserver/homeserver-client.js";
import { HomeserverRoomHistory } from "../../src/homeserver/homeserver-room-history.js";
import { roomHistoryBackfillSetting } from "../../src/homeserver/room-history-backfill.js";
import { RoomHistoryStatusService } from "../../src/homeserver/room-history-status-service.js";
import { createBackgroundJobs } from "../../src/jobs/create-background-jobs.js";
import { type JobObserver, JobRunner } from "../../src/jobs/job-runner.js";
import { ROOM_HISTORY_BACKFILL } from "../../src/jobs/room-history-backfill-job.js";
import { createLogger } from "../../src/logging/logger.js";
import { addressPolicy } from "../../src/net/ip-ranges.js";
import { OutboundHttp } from "../../src/net/outbound-http.js";
import { RoomHistoryBackfillRepository } from "../../src/repositories/room-history-backfill-repository.js";
import { AppServicePusher } from "../support/app-service-pusher.js";
import { runCli } from "../support/cli.js";
import { forEachEngine } from "../support/databases.js";
import { uploadBytes } from "../support/media.js";
import { ScriptedHomeserver } from "../support/scripted-homeserver.js";
import { startTestServer, TEST_SERVER_NAME, type TestServer } from "../support/test-server.js";

const S = TEST_SERVER_NAME;
const ADMIN = `@admin:${S}`;
const ALICE = `@alice:${S}`;
const ADMIN_TOKEN = "syt_backfill_admin";
const USER_TOKEN = "syt_backfill_user";
const ROOMS = "/_synapse/admin/v1/rooms";
const logger = createLogger("silent");
const FAST = { batchSize: 3, pauseMs: 0, retryMs: 1, maxRetryMs: 5, busyRetryMs: 1 };

const messagesPath = (roomId: string) => `${ROOMS}/${encodeURIComponent(roomId)}/messages`;

let mediaSerial = 0;
/** Sends an m.image event at the homeserver; returns its mxc URI. */
function sendImage(hs: ScriptedHomeserver, roomId: string, origin = S): string {
  const url = `mxc://${origin}/img${++mediaSerial}_${Math.random().toString(36).slice(2, 8)}`;
  hs.sendEvent(roomId, ALICE, "m.room.message", { msgtype: "m.image", body: "x.png", url });
  return url;
}

/** A room with `images` m.image events (plus text), all persisted now. */
function roomWithImages(
  hs: ScriptedHomeserver,
  images: number,
): { roomId: string; urls: string[] } {
  const roomId = hs.createRoom(ALICE);
  const urls: string[] = [];
  for (let i = 0; i < images; i++) {
    urls.push(sendImage(hs, roomId, i % 3 === 2 ? "elsewhere.example" : S));
    hs.sendEvent(roomId, ALICE, "m.room.message", { msgtype: "m.text", body: `text ${i}` });
  }
  return { roomId, urls };
}

/** Writes a registration file; returns its path and hs_token. */
function registrationFile(): { path: string; hsToken: string } {
  const registration = generateRegistration({ url: "http://127.0.0.1:1" });
  const path = join(mkdtempSync(join(tmpdir(), "mxcd-backfill-")), "registration.yaml");
  writeFileSync(path, registrationYaml(registration));
  return { path, hsToken: registration.hs_token };
}

function attachedConfig(
  hs: ScriptedHomeserver,
  registration: string,
  homeserver: Record<string, unknown> = {},
  appService: Record<string, unknown> = {},
): Partial<ConfigInput> {
  return {
    mode: "attached",
    homeserver: { base_url: hs.baseUrl, admin_api: "synapse", ...homeserver },
    access_token_cache: { ttl: "10m", negative_ttl: "10m", admin_ttl: "10m" },
    app_service: { registration, ...appService },
  } as Partial<ConfigInput>;
}

/** The backfill job over `database`, reading `hs` with `token`, run by a runner of its own. */
function backfillRunner(
  database: Database,
  hs: ScriptedHomeserver,
  options: { observer?: JobObserver; token?: string; batchSize?: number } = {},
) {
  const transport = new OutboundHttp({
    policy: addressPolicy([], ["0.0.0.0/0", "::/0"]),
    defaultTimeoutMs: 10_000,
  });
  const client = new HomeserverClient({
    baseUrl: hs.baseUrl,
    timeoutMs: 10_000,
    failureThreshold: 1000,
    transport,
  });
  const history = new HomeserverRoomHistory(client, options.token ?? ADMIN_TOKEN);
  const jobs = createBackgroundJobs({ roomHistory: { history, database, logger } }).filter(
    (job) => job.name === ROOM_HISTORY_BACKFILL,
  );
  const pacing = { ...FAST, batchSize: options.batchSize ?? FAST.batchSize };
  const runner = new JobRunner(database, jobs, logger, pacing, options.observer);
  return { runner, close: () => transport.close() };
}

async function jobState(runner: JobRunner) {
  const state = (await runner.states()).find((s) => s.name === ROOM_HISTORY_BACKFILL);
  assert.ok(state, "the backfill job is listed");
  return state;
}

forEachEngine("room-history backfill", (engine) => {
  /** The homeserver the server asks about tokens (admin checks of the room media list). */
  let identity: ScriptedHomeserver;
  /** A fresh homeserver per test, whose rooms the test's job backfills. */
  let hs: ScriptedHomeserver;
  let server: TestServer;
  let pusher: AppServicePusher;

  before(async () => {
    identity = await ScriptedHomeserver.start({ serverName: S });
    identity.addToken(ADMIN_TOKEN, { userId: ADMIN, admin: true });
    identity.addToken(USER_TOKEN, { userId: ALICE });
    const registration = registrationFile();
    // No admin token: the server registers no backfill of its own; each
    // test runs the job with a runner it controls.
    server = await startTestServer(engine, {
      ...attachedConfig(identity, registration.path),
      media_redaction_policy: "quarantine",
    });
    pusher = new AppServicePusher({ url: server.baseUrl, hsToken: registration.hsToken });
  });
  after(async () => {
    await server?.stop();
    await identity?.stop();
  });
  beforeEach(async () => {
    hs = await ScriptedHomeserver.start({ serverName: S });
    hs.addToken(ADMIN_TOKEN, { userId: ADMIN, admin: true });
    hs.addToken(USER_TOKEN, { userId: ALICE });
    // Each test starts the job afresh (a done job never runs again).
    const db = server.app.database.db;
    await db.deleteFrom("background_jobs").where("name", "=", ROOM_HISTORY_BACKFILL).execute();
    await db.deleteFrom("room_history_backfill").execute();
  });
  afterEach(() => hs.stop());

  const admin = () => server.http.withToken(ADMIN_TOKEN);
  const rooms = () => new RoomHistoryBackfillRepository(server.app.database);

  /** mxcd's room media list, all URIs (local then remote). */
  async function roomMedia(roomId: string): Promise<string[]> {
    const res = await admin().get(`/_synapse/admin/v1/room/${encodeURIComponent(roomId)}/media`);
    assert.equal(res.status, 200, res.text);
    return [...res.body.local, ...res.body.remote];
  }

  /** Reference rows per event id of a room (each media event must have exactly its own). */
  async function referenceRows(roomId: string): Promise<Map<string, number>> {
    const rows = await server.app.database.db
      .selectFrom("media_references")
      .select(["event_id", (eb) => eb.fn.countAll<number>().as("n")])
      .where("room_id", "=", roomId)
      .groupBy("event_id")
      .execute();
    return new Map(rows.map((r) => [r.event_id ?? "", Number(r.n)]));
  }

  it("puts media from before the application service in the room media list; pushes overlap once", async () => {
    // History persisted before mxcd's application service existed: the
    // homeserver never pushes it.
    const big = roomWithImages(hs, 40); // 82 events: several pages
    const small = roomWithImages(hs, 2);
    const gone = sendImage(hs, small.roomId);
    const goneEvent = hs.events(small.roomId).at(-1)!.event_id;
    hs.redact(small.roomId, ALICE, goneEvent); // redacted before the backfill: pruned
    hs.attachAppService(pusher);
    assert.deepEqual(await roomMedia(big.roomId), [], "nothing indexed before the backfill");

    // One live push before the job, one while it runs, one after it.
    const early = sendImage(hs, big.roomId);
    await hs.pushed();
    let during: string | undefined;
    const { runner, close } = backfillRunner(server.app.database, hs, {
      observer: {
        committed() {
          if (during === undefined && hs.count(messagesPath(big.roomId)) === 1) {
            during = sendImage(hs, big.roomId);
          }
        },
      },
    });
    await runner.run({ failFast: true });
    await hs.pushed();
    const late = sendImage(hs, big.roomId);
    await hs.pushed();
    hs.attachAppService(undefined);
    close();
    assert.ok(during, "an event was pushed while the backfill ran");

    const expectedBig = [...big.urls, early, during, late];
    assert.deepEqual((await roomMedia(big.roomId)).sort(), [...expectedBig].sort());
    assert.deepEqual((await roomMedia(small.roomId)).sort(), [...small.urls].sort());
    assert.ok(!(await roomMedia(small.roomId)).includes(gone), "a redacted event's media is not");
    // Every media event is recorded once, whichever path saw it first.
    const perEvent = await referenceRows(big.roomId);
    assert.equal(perEvent.size, expectedBig.length);
    assert.deepEqual([...new Set(perEvent.values())], [1]);

    const state = await jobState(runner);
    assert.equal(state.status, "done");
    const bigState = await rooms().get(big.roomId);
    assert.equal(bigState?.status, "complete");
    assert.ok(bigState.pages > 2, `paged (${bigState.pages} pages)`);
    const status = server.app.roomHistory;
    assert.equal(await status.hasFullHistory(big.roomId), true);
    assert.equal(await status.hasFullHistory(small.roomId), true);
    assert.equal(await status.hasFullHistory(`!unknown:${S}`), false);
    // Without the application service later events would be missed: never complete.
    assert.equal(
      await new RoomHistoryStatusService(rooms(), false).hasFullHistory(big.roomId),
      false,
    );
  });

  it("drops the references of an event redacted while it backfills, without media_redaction_policy", async () => {
    const mediaId = await uploadBytes(server.http.withToken(USER_TOKEN), "own upload", {
      contentType: "text/plain",
    });
    const roomId = hs.createRoom(ALICE); // 2 events; the image is the 3rd: page 1 of 3
    hs.sendEvent(roomId, ALICE, "m.room.message", {
      msgtype: "m.image",
      body: "mine.png",
      url: `mxc://${S}/${mediaId}`,
    });
    const image = hs.events(roomId).at(-1)!.event_id;
    hs.sendEvent(roomId, ALICE, "m.room.message", { msgtype: "m.text", body: "filler" });
    let redacted = false;
    const { runner, close } = backfillRunner(server.app.database, hs, {
      observer: {
        committed: () => {
          if (!redacted && hs.count(messagesPath(roomId)) === 1) {
            // Recorded by the first page, redacted before the next one is read.
            assert.ok(hs.events(roomId).length === 4);
            hs.redact(roomId, ALICE, image);
            redacted = true;
          }
        },
      },
    });
    await runner.run({ failFast: true });
    close();
    assert.ok(redacted);
    assert.deepEqual(await roomMedia(roomId), [], "the redaction in the history dropped it");
    const row = await server.app.database.db
      .selectFrom("local_media_repository")
      .select("quarantined_by")
      .where("media_id", "=", mediaId)
      .executeTakeFirstOrThrow();
    assert.equal(row.quarantined_by, null, "the policy is not applied retroactively");
    assert.equal((await rooms().get(roomId))?.status, "complete");
  });

  it(
    "resumes a stopped job where it was: no page is fetched twice beyond the one in flight",
    {
      timeout: 60_000,
    },
    async () => {
      const { roomId, urls } = roomWithImages(hs, 7); // 16 events: pages of 3
      const froms: string[] = [];
      hs.intercept = (url) => {
        if (url.pathname === messagesPath(roomId)) froms.push(url.searchParams.get("from") ?? "");
        return undefined;
      };
      // Run until two pages of the room are recorded, then stall the homeserver
      // so the third request is in flight when the job stops.
      let stopping: Promise<void> | undefined;
      const one = backfillRunner(server.app.database, hs, {
        observer: {
          committed: () => {
            if (froms.length === 2 && !stopping) hs.failWith = "stall";
          },
        },
      });
      await one.runner.start();
      while (froms.length < 3) await sleep(5);
      // The request in flight holds no database transaction: others write meanwhile
      // (on SQLite a batch transaction would hold the one connection until it ends).
      await uploadBytes(server.http.withToken(USER_TOKEN), "while the backfill waits", {
        contentType: "text/plain",
      });
      stopping = one.runner.stop();
      await stopping;
      hs.release();
      one.close();
      const stopped = await rooms().get(roomId);
      assert.equal(stopped?.pages, 2, "two pages recorded before the stop");
      assert.ok(stopped.token !== null);

      const two = backfillRunner(server.app.database, hs);
      await two.runner.run({ failFast: true });
      two.close();
      // The room has ceil(16 / 3) = 6 pages and one empty page; the first
      // run asked 3 (2 recorded, 1 in flight), the second the other 5.
      const repeated = froms.filter((from, i) => froms.indexOf(from) !== i);
      assert.equal(repeated.length, 1, `only the page in flight is asked twice: ${froms}`);
      assert.equal(froms.length, 8);
      assert.equal((await rooms().get(roomId))?.status, "complete");
      assert.deepEqual((await roomMedia(roomId)).sort(), [...urls].sort());
    },
  );

  it("two runners on two connection pools record each page once", { timeout: 60_000 }, async () => {
    const { roomId, urls } = roomWithImages(hs, 40); // 82 events: 28 pages of 3, then an empty one
    const other = createDatabase(server.app.config.database);
    const a = backfillRunner(server.app.database, hs);
    const b = backfillRunner(other, hs);
    await Promise.all([a.runner.run({ failFast: true }), b.runner.run({ failFast: true })]);
    a.close();
    b.close();
    await other.close();
    const state = await rooms().get(roomId);
    assert.equal(state?.status, "complete");
    assert.equal(state.pages, 29, "a page fetched by both runners is recorded by one");
    assert.equal(state.events, 82);
    assert.ok(hs.count(messagesPath(roomId)) >= 29);
    const perEvent = await referenceRows(roomId);
    assert.equal(perEvent.size, urls.length);
    assert.deepEqual([...new Set(perEvent.values())], [1]);
  });

  it(
    "stops a room whose end token does not advance, with a recorded error, and goes on",
    {
      timeout: 30_000, // without the check it would page forever
    },
    async () => {
      const stuck = roomWithImages(hs, 3);
      const fine = roomWithImages(hs, 2);
      hs.intercept = (url) => {
        const from = url.searchParams.get("from");
        if (url.pathname !== messagesPath(stuck.roomId) || from === null) return undefined;
        const event = hs.events(stuck.roomId)[3];
        return { status: 200, body: JSON.stringify({ chunk: [event], start: from, end: from }) };
      };
      const { runner, close } = backfillRunner(server.app.database, hs);
      await runner.run({ failFast: true });
      close();
      const state = await rooms().get(stuck.roomId);
      assert.equal(state?.status, "failed");
      assert.match(state.lastError ?? "", /does not advance/);
      assert.equal(hs.count(messagesPath(stuck.roomId)), 2, "asked twice, then gave up");
      assert.equal((await rooms().get(fine.roomId))?.status, "complete");
      assert.deepEqual((await roomMedia(fine.roomId)).sort(), [...fine.urls].sort());
      assert.equal(await server.app.roomHistory.hasFullHistory(stuck.roomId), false);
      assert.equal((await jobState(runner)).status, "done");

      // Run again as docs/attached.md says, the homeserver fixed: the room
      // resumes from its watermark and completes.
      hs.intercept = undefined;
      const fineAsked = hs.count(messagesPath(fine.roomId));
      const db = server.app.database.db;
      await db
        .updateTable("room_history_backfill")
        .set({ status: "pending" })
        .where("status", "=", "failed")
        .execute();
      await db.deleteFrom("background_jobs").where("name", "=", ROOM_HISTORY_BACKFILL).execute();
      const again = backfillRunner(server.app.database, hs);
      await again.runner.run({ failFast: true });
      again.close();
      assert.equal((await rooms().get(stuck.roomId))?.status, "complete");
      // 8 events: on from the watermark (s3): s3, s6, then the empty page at s8.
      assert.equal(hs.count(messagesPath(stuck.roomId)), 2 + 3, "resumed at its watermark");
      assert.deepEqual((await roomMedia(stuck.roomId)).sort(), [...stuck.urls].sort());
      assert.equal(hs.count(messagesPath(fine.roomId)), fineAsked, "a complete room is left alone");
    },
  );

  it("gives up rooms answered with garbage or oversized pages; skips and counts bad events", async () => {
    const garbage = roomWithImages(hs, 1);
    const tooMany = roomWithImages(hs, 1);
    const tooBig = roomWithImages(hs, 1);
    const malformed = roomWithImages(hs, 2);
    const real = hs.events(malformed.roomId);
    const good = real.find((e) => e.content.msgtype === "m.image")!;
    const bad = [
      { ...good, event_id: undefined },
      { ...good, event_id: 42 },
      { ...good, event_id: "$x\u0000y" },
      { ...good, room_id: garbage.roomId }, // another room's event
      { ...good, sender: ["@a:b"] },
      { ...good, state_key: 7 },
      { ...good, event_id: `$${"e".repeat(300)}` },
      "not an event",
      null,
    ];
    hs.intercept = (url) => {
      if (url.pathname === messagesPath(garbage.roomId)) {
        return { status: 200, body: '{"chunk": [ {"event_id": ' };
      }
      if (url.pathname === messagesPath(tooMany.roomId)) {
        const chunk = Array.from({ length: 51 }, () => hs.events(tooMany.roomId)[0]);
        return { status: 200, body: JSON.stringify({ chunk, start: "s0", end: "s51" }) };
      }
      if (url.pathname === messagesPath(tooBig.roomId)) {
        const huge = { ...good, content: { body: "x".repeat(9 * 1024 * 1024) } };
        return { status: 200, body: JSON.stringify({ chunk: [huge], start: "s0", end: "s1" }) };
      }
      if (url.pathname === messagesPath(malformed.roomId) && !url.searchParams.get("from")) {
        const chunk = [...bad, ...real];
        return {
          status: 200,
          body: JSON.stringify({ chunk, start: "s0", end: `s${real.length}` }),
        };
      }
      return undefined;
    };
    const { runner, close } = backfillRunner(server.app.database, hs, { batchSize: 500 });
    await runner.run({ failFast: true });
    close();
    for (const [room, reason] of [
      [garbage, /non-JSON/],
      [tooMany, /51 events for limit=50/],
      [tooBig, /larger than/],
    ] as const) {
      const state = await rooms().get(room.roomId);
      assert.equal(state?.status, "failed", room.roomId);
      assert.match(state.lastError ?? "", reason);
      assert.deepEqual(await roomMedia(room.roomId), [], "nothing recorded from a bad page");
    }
    const state = await rooms().get(malformed.roomId);
    assert.equal(state?.status, "complete");
    assert.equal(state.skipped, bad.length);
    assert.equal(state.events, real.length);
    assert.deepEqual((await roomMedia(malformed.roomId)).sort(), [...malformed.urls].sort());
    const job = await jobState(runner);
    assert.equal(job.status, "done");
    assert.equal(job.processed, 4, "failed rooms count as done");
  });

  it("skips and counts room-list entries without a valid room id", async () => {
    const real = roomWithImages(hs, 1);
    hs.intercept = (url) => {
      if (url.pathname !== ROOMS) return undefined;
      const rooms = [
        { room_id: real.roomId },
        { room_id: "not-a-room" },
        { room_id: 5 },
        {},
        "x",
        { room_id: `!${"r".repeat(300)}:${S}` },
      ];
      return { status: 200, body: JSON.stringify({ rooms, offset: 0, total_rooms: 6 }) };
    };
    const { runner, close } = backfillRunner(server.app.database, hs, { batchSize: 500 });
    await runner.run({ failFast: true });
    close();
    const state = await jobState(runner);
    assert.equal(state.status, "done");
    assert.equal((state.progress as { skippedRooms: number }).skippedRooms, 5);
    assert.equal(state.processed, 1, "one room done");
    assert.equal((await rooms().get(real.roomId))?.status, "complete");
  });

  it(
    "ends a room list that does not advance or pages on with empty pages",
    {
      timeout: 30_000, // without the checks it would list forever
    },
    async () => {
      for (const answer of [
        (from: number) => ({ rooms: [], offset: from, total_rooms: 1, next_batch: from + 3 }),
        (from: number) => ({ rooms: [{ room_id: `!r${from}:${S}` }], next_batch: from }),
      ]) {
        await server.app.database.db
          .deleteFrom("background_jobs")
          .where("name", "=", ROOM_HISTORY_BACKFILL)
          .execute();
        const before = hs.count(ROOMS);
        hs.intercept = (url) => {
          if (url.pathname !== ROOMS) return undefined;
          const from = Number(url.searchParams.get("from") ?? 0);
          return { status: 200, body: JSON.stringify(answer(from)) };
        };
        const { runner, close } = backfillRunner(server.app.database, hs, { batchSize: 500 });
        await runner.run({ failFast: true });
        close();
        assert.equal((await jobState(runner)).status, "done");
        assert.equal(hs.count(ROOMS) - before, 1, "one room-list page, then on");
      }
    },
  );

  it("fails with an error naming homeserver.admin_access_token when the token is not an admin's", async () => {
    roomWithImages(hs, 1);
    const { runner, close } = backfillRunner(server.app.database, hs, { token: USER_TOKEN });
    await assert.rejects(runner.run({ failFast: true }), /homeserver\.admin_access_token/);
    close();
    const state = await jobState(runner);
    assert.match(state.lastError ?? "", /homeserver\.admin_access_token.*403 M_FORBIDDEN/);
    assert.equal(state.status, "pending", "nothing was recorded");
  });

  it("retries while the homeserver is down, losing no progress", async () => {
    const { roomId, urls } = roomWithImages(hs, 4); // 10 events: 4 pages of 3, one empty
    const froms: string[] = [];
    hs.intercept = (url) => {
      if (url.pathname === messagesPath(roomId)) froms.push(url.searchParams.get("from") ?? "");
      return undefined;
    };
    let failures = 0;
    const modes = ["500", "html502", "reset"] as const;
    const { runner, close } = backfillRunner(server.app.database, hs, {
      observer: {
        committed: () => {
          // Down after the first page of the room: three failed attempts.
          if (froms.length === 1 && failures === 0) hs.failWith = modes[0];
        },
        failed: () => {
          failures += 1;
          hs.failWith = failures < modes.length ? modes[failures] : undefined;
        },
      },
    });
    await runner.run();
    close();
    assert.equal(failures, 3);
    const state = await jobState(runner);
    assert.equal(state.status, "done");
    assert.ok(state.lastError, "the failures are recorded");
    // Each page was asked once after the outage (failed attempts are not answers).
    const answered = froms.filter((_, i) => i === 0 || i > 3);
    assert.equal(new Set(answered).size, answered.length, `${froms}`);
    assert.equal((await rooms().get(roomId))?.status, "complete");
    assert.deepEqual((await roomMedia(roomId)).sort(), [...urls].sort());
  });
});

forEachEngine("room-history backfill in the server", (engine) => {
  let hs: ScriptedHomeserver;
  let server: TestServer | undefined;
  before(async () => {
    hs = await ScriptedHomeserver.start({ serverName: S });
    hs.addToken(ADMIN_TOKEN, { userId: ADMIN, admin: true });
  });
  after(async () => {
    await server?.stop();
    await hs.stop();
  });

  it("runs in the background when homeserver.admin_access_token is set", async () => {
    const { roomId, urls } = roomWithImages(hs, 3);
    const registration = registrationFile();
    server = await startTestServer(
      engine,
      attachedConfig(hs, registration.path, { admin_access_token: ADMIN_TOKEN }),
    );
    const { jobs, roomHistory } = server.app;
    while ((await jobState(jobs)).status !== "done") await sleep(20);
    const state = await jobState(jobs);
    assert.equal(state.processed, 1);
    assert.equal(state.total, 1);
    assert.equal(await roomHistory.hasFullHistory(roomId), true);
    const res = await server.http
      .withToken(ADMIN_TOKEN)
      .get(`/_synapse/admin/v1/room/${encodeURIComponent(roomId)}/media`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual([...res.body.local, ...res.body.remote].sort(), [...urls].sort());
  });
});

describe("room-history backfill: configuration", () => {
  const base = (homeserver: object, appService?: object, mode = "attached") =>
    ({
      server_name: S,
      mode,
      ...(mode === "attached" && {
        homeserver: { base_url: "http://127.0.0.1:1", ...homeserver },
      }),
      ...(appService && { app_service: { registration: "r.yaml", ...appService } }),
    }) as ConfigInput;
  // The decision the server and `mxcd jobs` both make.
  const jobNames = async (input: ConfigInput) => roomHistoryBackfillSetting(validateConfig(input));

  it("is on with an admin token and the application service, unless backfill: none", async () => {
    assert.equal(await jobNames(base({ admin_access_token: "t" }, {})), "admin_api");
    assert.equal(await jobNames(base({ admin_access_token: "t" }, { backfill: "none" })), "none");
    assert.equal(await jobNames(base({}, {})), "none");
    assert.equal(await jobNames(base({ admin_access_token: "t" })), "none", "no AS, no backfill");
  });

  it("refuses backfill: admin_api without a token or outside attached mode", () => {
    assert.throws(
      () => validateConfig(base({}, { backfill: "admin_api" })),
      /app_service\.backfill.*homeserver\.admin_access_token/,
    );
    assert.throws(
      () => validateConfig(base({}, { backfill: "admin_api" }, "standalone")),
      /app_service\.backfill.*attached/,
    );
  });
});

describe("mxcd jobs with the room-history backfill (CLI)", () => {
  it("`jobs` lists it pending; `jobs run` backfills every room; `jobs` shows rooms done/total", async () => {
    const hs = await ScriptedHomeserver.start({ serverName: S });
    try {
      hs.addToken(ADMIN_TOKEN, { userId: ADMIN, admin: true });
      const roomIds = [roomWithImages(hs, 2), roomWithImages(hs, 1)].map((r) => r.roomId);
      const dir = mkdtempSync(join(tmpdir(), "mxcd-backfill-cli-"));
      const registration = registrationFile();
      const config = join(dir, "mxcd.yaml");
      writeFileSync(
        config,
        [
          `server_name: "${S}"`,
          "mode: attached",
          "log_level: warn",
          "homeserver:",
          `  base_url: "${hs.baseUrl}"`,
          `  admin_access_token: "${ADMIN_TOKEN}"`,
          "app_service:",
          `  registration: "${registration.path}"`,
          "",
        ].join("\n"),
      );
      const before = await runCli(["jobs", "-c", config], { cwd: dir });
      assert.equal(before.code, 0, before.stderr);
      assert.match(before.stdout, /room-history-backfill\s+pending\s+\[-+\]\s+\?%\s+0\/\?/);
      assert.equal(hs.count(ROOMS), 0, "listing jobs asks the homeserver nothing");

      const run = await runCli(["jobs", "run", "-c", config], { cwd: dir });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /room-history-backfill\s+done\s+\[#+\]\s+100%\s+2\/2/);
      for (const roomId of roomIds) assert.ok(hs.count(messagesPath(roomId)) >= 1);

      const after = await runCli(["jobs", "-c", config], { cwd: dir });
      assert.match(after.stdout, /room-history-backfill\s+done\s+\[#{30}\]\s+100%\s+2\/2/);
    } finally {
      await hs.stop();
    }
  });

  it("`jobs run` exits 1 naming homeserver.admin_access_token when the token is refused", async () => {
    const hs = await ScriptedHomeserver.start({ serverName: S });
    try {
      hs.addToken(USER_TOKEN, { userId: ALICE });
      roomWithImages(hs, 1);
      const dir = mkdtempSync(join(tmpdir(), "mxcd-backfill-cli-"));
      const config = join(dir, "mxcd.yaml");
      writeFileSync(
        config,
        `server_name: "${S}"\nmode: attached\nlog_level: fatal\nhomeserver:\n  base_url: "${hs.baseUrl}"\n  admin_access_token: "${USER_TOKEN}"\napp_service:\n  registration: "${registrationFile().path}"\n`,
      );
      const run = await runCli(["jobs", "run", "-c", config], { cwd: dir });
      assert.equal(run.code, 1);
      assert.match(run.stdout + run.stderr, /homeserver\.admin_access_token/);
    } finally {
      await hs.stop();
    }
  });
});
