/**
 * RoomMediaSource on its own: the room history status that spares the
 * homeserver request, the bound on the homeserver's answer, hostile answers
 * (wrong shapes, invalid entries counted in one log line, odd statuses).
 * The homeserver is the scripted one over real HTTP where its counters
 * matter, and a scripted `get` where the answer must be something no
 * homeserver written from the spec would send.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import type { MatrixError } from "../../src/domain/matrix-error.js";
import { HomeserverClient } from "../../src/homeserver/homeserver-client.js";
import {
  type RoomMediaIndex,
  RoomMediaSource,
  type RoomMediaSourceOptions,
  type RoomQuarantine,
} from "../../src/homeserver/room-media-source.js";
import type { MxcUri } from "../../src/identifiers/mxc-uri.js";
import { createLogger } from "../../src/logging/logger.js";
import { addressPolicy } from "../../src/net/ip-ranges.js";
import { OutboundHttp } from "../../src/net/outbound-http.js";
import { ScriptedHomeserver } from "../support/scripted-homeserver.js";

const S = "example.org";
const ADMIN_TOKEN = "syt_admin";
const caller = { accessToken: ADMIN_TOKEN };
const path = (roomId: string) => `/_synapse/admin/v1/room/${encodeURIComponent(roomId)}/media`;

let hs: ScriptedHomeserver;
let transport: OutboundHttp;
before(async () => {
  hs = await ScriptedHomeserver.start({ serverName: S });
  hs.addToken(ADMIN_TOKEN, { userId: `@admin:${S}`, admin: true });
  transport = new OutboundHttp({
    policy: addressPolicy([], ["0.0.0.0/0", "::/0"]),
    defaultTimeoutMs: 5_000,
  });
});
after(async () => {
  transport.close();
  await hs.stop();
});

/** Log lines written, parsed. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", {
    write: (line: string) => {
      lines.push(JSON.parse(line));
    },
  });
  return { logger, lines };
}

const emptyIndex: RoomMediaIndex = { roomMediaUris: async () => ({ local: [], remote: [] }) };

/** A quarantine that records what it was asked (a "was this called" question). */
function recordingQuarantine() {
  const calls: { room?: string; local?: readonly string[]; remote?: readonly MxcUri[] }[] = [];
  const quarantine: RoomQuarantine = {
    async quarantineRoom(room) {
      calls.push({ room });
      return 0;
    },
    async quarantine(targets) {
      calls.push({ local: targets.local, remote: targets.remote });
      return targets.local.length;
    },
  };
  return { quarantine, calls };
}

function source(overrides: Partial<RoomMediaSourceOptions> = {}, fullHistory?: boolean) {
  const homeserver = new HomeserverClient({
    baseUrl: hs.baseUrl,
    timeoutMs: 5_000,
    failureThreshold: 1_000,
    transport,
  });
  const options: RoomMediaSourceOptions = {
    serverName: S,
    homeserver,
    adminAccessToken: null,
    index: emptyIndex,
    quarantine: recordingQuarantine().quarantine,
    logger: capturedLogger().logger,
    ...overrides,
  };
  return fullHistory === undefined
    ? new RoomMediaSource(options)
    : new RoomMediaSource(options, { hasFullHistory: async () => fullHistory });
}

function roomWith(...urls: string[]): string {
  const roomId = hs.createRoom(`@alice:${S}`);
  for (const url of urls) hs.sendEvent(roomId, `@alice:${S}`, "m.room.message", { url });
  return roomId;
}

it("asks the homeserver by default (no room has full history until the backfill says so)", async () => {
  const roomId = roomWith(`mxc://${S}/a`);
  const asked = hs.count(path(roomId));
  assert.deepEqual(await source().roomMediaUris(roomId, caller), {
    local: [`mxc://${S}/a`],
    remote: [],
  });
  assert.equal(hs.count(path(roomId)), asked + 1);
});

it("does not ask the homeserver about a room whose history the index holds in full", async () => {
  const roomId = roomWith(`mxc://${S}/a`);
  const index: RoomMediaIndex = {
    roomMediaUris: async () => ({ local: [`mxc://${S}/indexed`], remote: [] }),
  };
  const { quarantine, calls } = recordingQuarantine();
  const full = source({ index, quarantine }, true);
  const total = hs.total;
  assert.deepEqual(await full.roomMediaUris(roomId, caller), {
    local: [`mxc://${S}/indexed`],
    remote: [],
  });
  assert.equal(await full.quarantineRoom(roomId, "@admin:example.org", caller), 0);
  assert.deepEqual(calls, [{ room: roomId }], "the index's room quarantine only");
  assert.equal(hs.count(path(roomId)), 0);
  assert.equal(hs.total, total, "no homeserver request at all");
});

it("skips invalid entries and counts them in one log line, without their text", async () => {
  const roomId = roomWith(
    `mxc://${S}/good`,
    "mxc://bad host/x",
    "mxc://remote.example/../x",
    `mxc://${S}/good`,
    "mxc://remote.example/fine",
  );
  const { logger, lines } = capturedLogger();
  const { quarantine, calls } = recordingQuarantine();
  const media = source({ logger, quarantine });
  assert.deepEqual(await media.roomMediaUris(roomId, caller), {
    local: [`mxc://${S}/good`],
    remote: ["mxc://remote.example/fine"],
  });
  const warnings = lines.filter((l) => l.skipped !== undefined);
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]!.skipped, 2);
  assert.equal(warnings[0]!.kept, 2);
  assert.ok(!JSON.stringify(lines).includes("bad host"), "entries are not logged");
  // Quarantine gets the same valid, distinct media.
  await media.quarantineRoom(roomId, "@admin:example.org", caller);
  assert.deepEqual(calls[1], {
    local: ["good"],
    remote: [{ origin: "remote.example", mediaId: "fine" }],
  });
});

it("refuses an answer over the bound with 502, quarantining nothing", async () => {
  const urls = Array.from({ length: 50 }, (_, i) => `mxc://${S}/media${i}`);
  const roomId = roomWith(...urls);
  const { quarantine, calls } = recordingQuarantine();
  const small = source({ quarantine, maxAnswerBytes: 1024 });
  for (const attempt of [
    () => small.roomMediaUris(roomId, caller),
    () => small.quarantineRoom(roomId, "@admin:example.org", caller),
  ]) {
    await assert.rejects(attempt, (error: MatrixError) => {
      assert.equal(error.status, 502);
      assert.equal(error.errcode, "M_UNKNOWN");
      return true;
    });
  }
  assert.deepEqual(calls, []);
  // Within the default bound the same room lists.
  assert.equal((await source().roomMediaUris(roomId, caller)).local.length, 50);
});

/** A source whose homeserver answers `json` with `status`. */
function answering(status: number, json: unknown, adminAccessToken: string | null = null) {
  const { quarantine, calls } = recordingQuarantine();
  const media = source({
    homeserver: { get: async () => ({ status, json }) },
    adminAccessToken,
    quarantine,
  });
  return { media, calls };
}

it("answers 502 for a 200 that is not {local: [...], remote: [...]}, quarantining nothing", async () => {
  for (const json of [
    null,
    [],
    "text",
    42,
    {},
    { local: [] },
    { local: "mxc://example.org/a", remote: [] },
    { local: [], remote: { 0: "mxc://remote.example/a" } },
  ]) {
    const { media, calls } = answering(200, json);
    await assert.rejects(
      media.quarantineRoom(`!r:${S}`, "@admin:example.org", caller),
      (error: MatrixError) => error.status === 502 && error.errcode === "M_UNKNOWN",
      JSON.stringify(json),
    );
    assert.deepEqual(calls, [], JSON.stringify(json));
  }
  // Entries of any type are skipped one by one, not passed on.
  const { media } = answering(200, {
    local: [1, null, {}, ["x"], `mxc://${S}/ok`],
    remote: [true],
  });
  assert.deepEqual(await media.roomMediaUris(`!r:${S}`, caller), {
    local: [`mxc://${S}/ok`],
    remote: [],
  });
});

it("maps the homeserver's refusals", async () => {
  const cases: [number, unknown, string | null, number, string][] = [
    [404, { errcode: "M_NOT_FOUND" }, null, 200, ""],
    [403, { errcode: "M_FORBIDDEN" }, null, 403, "M_FORBIDDEN"],
    [401, { errcode: "M_UNKNOWN_TOKEN", soft_logout: true }, null, 401, "M_UNKNOWN_TOKEN"],
    [400, { errcode: "M_INVALID_PARAM" }, null, 502, "M_UNKNOWN"],
    [403, { errcode: "M_FORBIDDEN" }, "syt_configured", 502, "M_UNKNOWN"],
    [401, { errcode: "M_UNKNOWN_TOKEN" }, "syt_configured", 502, "M_UNKNOWN"],
  ];
  for (const [status, json, token, expected, errcode] of cases) {
    const { media } = answering(status, json, token);
    const label = `${status} with ${token ?? "the caller's token"}`;
    if (expected === 200) {
      assert.deepEqual(await media.roomMediaUris(`!r:${S}`, caller), { local: [], remote: [] });
      continue;
    }
    await assert.rejects(
      media.roomMediaUris(`!r:${S}`, caller),
      (error: MatrixError) => {
        assert.equal(error.status, expected, label);
        assert.equal(error.errcode, errcode, label);
        if (status === 401 && token === null) assert.equal(error.extra.soft_logout, true);
        if (token !== null) assert.match(error.message, /admin_access_token/, label);
        return true;
      },
      label,
    );
  }
});
