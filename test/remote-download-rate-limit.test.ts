/**
 * The download rate limit of uncached remote media (docs/media.md "Rate
 * limits"): a leaky bucket of bytes per user (authenticated) or client
 * address (legacy routes), stored in the database so that every process
 * draws from the same bucket. Checked against a scripted origin that counts
 * the requests and connections it gets: a refusal before the request opens
 * none; a refusal on the declared Content-Length reads no body.
 *
 * Buckets here hold 2 MiB and leak 1 KiB/s on a fake clock, so 1 ms of
 * leak is 1.024 bytes and every `retry_after_ms` is exact.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { ConfigInput } from "../src/config/config-schema.js";
import { createDatabase, type Database } from "../src/db/database.js";
import { runMigrations } from "../src/db/migrate.js";
import { RateLimitBucketRepository } from "../src/repositories/rate-limit-bucket-repository.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { download } from "./support/media.js";
import { metric } from "./support/metrics.js";
import {
  type SecondProcess,
  startSecondProcess,
  stopSecondProcess,
} from "./support/second-process.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const KIB = 1024;
const MIB = 1024 * KIB;
const BURST = 2 * MIB;
const HEADROOM = MIB;
/** The bucket rows' `limiter` and the refusal counter's label are this one name. */
const LIMITER = "remote_media_download";
const REFUSED = `limiter="${LIMITER}"`;

/**
 * An origin serving media ids `n<bytes>_<anything>` over the federation
 * endpoint (multipart, with a Content-Length, unless the id starts with
 * `u`: then chunked, no length). Counts requests by id and connections.
 */
class CountingOrigin {
  readonly requests = new Map<string, number>();
  /** Bytes each id's response declared (the whole multipart body). */
  readonly declared = new Map<string, number>();
  connections = 0;
  readonly server: Server = createServer((req, res) => this.#handle(req, res));

  constructor() {
    this.server.on("connection", () => this.connections++);
  }

  get base(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  hits(id: string): number {
    return this.requests.get(id) ?? 0;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const id = (req.url ?? "").split("?")[0]!.split("/").pop()!;
    this.requests.set(id, this.hits(id) + 1);
    const match = /^([nu])(\d+)_/.exec(id);
    if (!match) return void res.writeHead(404).end('{"errcode":"M_NOT_FOUND"}');
    const media = Buffer.alloc(Number(match[2]), 0x61);
    const body = Buffer.concat([
      Buffer.from(
        "\r\n--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nContent-Type: text/plain\r\n\r\n",
      ),
      media,
      Buffer.from("\r\n--b--\r\n"),
    ]);
    const headers: Record<string, string> = { "content-type": "multipart/mixed; boundary=b" };
    if (match[1] === "n") {
      headers["content-length"] = String(body.length);
      this.declared.set(id, body.length);
    }
    res.writeHead(200, headers);
    // Chunked answers come in pieces, so no length is known up front.
    for (let at = 0; at < body.length; at += 64 * KIB) res.write(body.subarray(at, at + 64 * KIB));
    res.end();
  }
}

async function startOrigin(): Promise<CountingOrigin> {
  const origin = new CountingOrigin();
  await new Promise<void>((resolve) => origin.server.listen(0, "127.0.0.1", resolve));
  return origin;
}

/** The config of a server limited to BURST bytes leaking 1 KiB/s, fetching from `origin`. */
function limitedConfig(origin: CountingOrigin): Partial<ConfigInput> {
  return {
    ip_range_whitelist: ["127.0.0.0/8"],
    federation_custom_resolvers: { "origin.test": origin.base },
    remote_media_download_burst_count: "2M",
    remote_media_download_per_second: "1K",
  };
}

/** Milliseconds until `cost` more bytes fit in a bucket holding `held` (1 KiB/s). */
function waitMs(held: number, cost: number): number {
  return ((held + cost - BURST) * 1000) / KIB;
}

function assertLimited(
  res: { status: number; headers: Headers; bytes: Buffer },
  retryAfterMs?: number,
): void {
  assert.equal(res.status, 429, res.bytes.toString());
  const body = JSON.parse(res.bytes.toString());
  assert.equal(body.errcode, "M_LIMIT_EXCEEDED");
  if (retryAfterMs === undefined) return;
  // Within a millisecond: the bucket's times are floating point.
  assert.ok(Math.abs(body.retry_after_ms - retryAfterMs) <= 1, `retry ${body.retry_after_ms}`);
  assert.equal(res.headers.get("retry-after"), String(Math.ceil(body.retry_after_ms / 1000)));
}

forEachEngine("shared bucket charges", (engine) => {
  let database: Database;
  before(async () => {
    database = createDatabase(await freshDatabaseConfig(engine));
    await runMigrations(database);
  });
  after(() => database.close());

  it("lets exactly what fits through when many charges race on one key", async () => {
    const buckets = new RateLimitBucketRepository(database);
    const nowMs = 1_000_000;
    // Room for 10 charges of 100 ms in a 1000 ms window; 40 race for it.
    const results = await Promise.all(
      Array.from({ length: 40 }, () =>
        buckets.charge("race", "k", { costMs: 100, windowMs: 1000, nowMs, force: false }),
      ),
    );
    assert.equal(results.filter(Boolean).length, 10);
    assert.equal(await buckets.emptyAt("race", "k"), nowMs + 1000);
    // A forced charge goes past the window; nothing fits until it leaked back.
    assert.ok(
      await buckets.charge("race", "k", { costMs: 50, windowMs: 1000, nowMs, force: true }),
    );
    const later = { costMs: 100, windowMs: 1000, force: false };
    assert.equal(await buckets.charge("race", "k", { ...later, nowMs: nowMs + 149 }), false);
    assert.ok(await buckets.charge("race", "k", { ...later, nowMs: nowMs + 150 }));
    assert.equal(await buckets.prune(nowMs + 1150), 0);
    assert.equal(await buckets.prune(nowMs + 1151), 1);
  });
});

forEachEngine("remote download rate limit", (engine) => {
  let origin: CountingOrigin;
  let server: TestServer;
  let clock = Date.now();
  const get = (user: TestUser, id: string) =>
    download(server.baseUrl, `/_matrix/client/v1/media/download/origin.test/${id}`, {
      token: user.token,
    });
  before(async () => {
    origin = await startOrigin();
    server = await startTestServer(engine, limitedConfig(origin), {
      appOptions: { now: () => clock },
    });
  });
  after(async () => {
    await server.stop();
    origin.server.close();
  });

  it("refuses a fetch that leaves no headroom with 429 before connecting, per user; cached media is free", async () => {
    const alice = await server.user("alice");
    const bob = await server.user("bob");
    const first = await get(alice, "n600000_a1");
    assert.equal(first.status, 200);
    assert.equal(first.bytes.length, 600_000);
    assert.equal((await get(alice, "n600000_a2")).status, 200);
    const held = origin.declared.get("n600000_a1")! + origin.declared.get("n600000_a2")!;
    const connections = origin.connections;
    const refused = await get(alice, "n1000_a3");
    assertLimited(refused, waitMs(held, HEADROOM));
    assert.equal(origin.hits("n1000_a3"), 0, "a refused fetch sends no request");
    assert.equal(origin.connections, connections, "and opens no connection");
    assert.equal(await metric(server.baseUrl, "mxcd_rate_limited_total", REFUSED), 1);
    const limiters = await server.app.database.db
      .selectFrom("rate_limit_buckets")
      .select("limiter")
      .distinct()
      .execute();
    assert.deepEqual(
      limiters.map((row) => row.limiter),
      [LIMITER],
      "the bucket is stored under the counter's name",
    );
    // A thumbnail of uncached remote media is a fetch too.
    const thumb = await download(
      server.baseUrl,
      "/_matrix/client/v1/media/thumbnail/origin.test/n1000_a4?width=32&height=32",
      { token: alice.token },
    );
    assertLimited(thumb);
    assert.equal(origin.hits("n1000_a4"), 0);
    // Cached media is never limited, however often.
    for (let i = 0; i < 3; i++) assert.equal((await get(alice, "n600000_a1")).status, 200);
    assert.equal(origin.hits("n600000_a1"), 1);
    // Bob has his own bucket.
    assert.equal((await get(bob, "n1000_a3")).status, 200);
    // Once enough has leaked, alice may fetch again.
    clock += Math.ceil(waitMs(held, HEADROOM));
    assert.equal((await get(alice, "n1000_a5")).status, 200);
  });

  it("refuses on the declared Content-Length before reading the body; caches nothing", async () => {
    const carol = await server.user("carol");
    assert.equal((await get(carol, "n600000_c1")).status, 200);
    const held = origin.declared.get("n600000_c1")!;
    const refused = await get(carol, "n1500000_c2");
    const declared = origin.declared.get("n1500000_c2")!;
    assertLimited(refused, waitMs(held, declared));
    assert.equal(origin.hits("n1500000_c2"), 1, "the headroom check passed: the request went out");
    const rows = await server.app.database.db
      .selectFrom("remote_media_cache")
      .select("media_id")
      .where("media_id", "=", "n1500000_c2")
      .execute();
    assert.equal(rows.length, 0);
    // Not remembered as a failure of the item: another user fetches it at once.
    const dave = await server.user("dave");
    assert.equal((await get(dave, "n1500000_c2")).status, 200);
  });

  it("charges media of unknown length after it arrived", async () => {
    const erin = await server.user("erin");
    const first = await get(erin, "u1500000_e1");
    assert.equal(first.status, 200);
    assert.equal(first.bytes.length, 1_500_000);
    // 1.5 MB charged after the fact: 1 MiB of headroom no longer fits.
    const refused = await get(erin, "n1000_e2");
    assertLimited(refused);
    assert.equal(origin.hits("n1000_e2"), 0);
  });

  it("keeps only buckets that are not empty: emptied ones are pruned", async () => {
    const count = async () =>
      Number(
        (
          await server.app.database.db
            .selectFrom("rate_limit_buckets")
            .select((eb) => eb.fn.countAll().as("n"))
            .executeTakeFirstOrThrow()
        ).n,
      );
    assert.ok((await count()) >= 4, "alice, bob, carol, dave and erin have buckets");
    // Every bucket leaks empty within BURST / 1 KiB/s = 2048 s; a charge then prunes.
    clock += 3 * 3_600_000;
    const frank = await server.user("frank");
    assert.equal((await get(frank, "n1000_f1")).status, 200);
    await waitFor(async () => (await count()) === 1, "only frank's bucket left");
  });
});

forEachEngine("remote download rate limit by client address", (engine) => {
  let origin: CountingOrigin;
  let direct: TestServer;
  let proxied: TestServer;
  const legacy = (server: TestServer, id: string, forwardedFor: string) =>
    download(server.baseUrl, `/_matrix/media/v3/download/origin.test/${id}`, {
      headers: { "x-forwarded-for": forwardedFor },
    });
  before(async () => {
    origin = await startOrigin();
    const config = { ...limitedConfig(origin), enable_authenticated_media: false };
    direct = await startTestServer(engine, config);
    proxied = await startTestServer(engine, {
      ...config,
      listen: { host: "127.0.0.1", port: 0, x_forwarded: true },
    });
  });
  after(async () => {
    await direct.stop();
    await proxied.stop();
    origin.server.close();
  });

  it("ignores X-Forwarded-For without listen.x_forwarded: one bucket for the peer address", async () => {
    assert.equal((await legacy(direct, "n1200000_d1", "203.0.113.1")).status, 200);
    assertLimited(await legacy(direct, "n1000_d2", "203.0.113.2"));
    assert.equal(origin.hits("n1000_d2"), 0);
  });

  it("keys by the forwarded address with listen.x_forwarded: true", async () => {
    assert.equal((await legacy(proxied, "n1200000_p1", "203.0.113.1")).status, 200);
    assert.equal((await legacy(proxied, "n1000_p2", "203.0.113.2")).status, 200);
    assertLimited(await legacy(proxied, "n1000_p3", "203.0.113.1"));
    assert.equal(origin.hits("n1000_p3"), 0);
  });
});

describe("remote download rate limit shared by two processes [postgres]", () => {
  if (!process.env.MXCD_TEST_POSTGRES_URL) return;
  let origin: CountingOrigin;
  let server: TestServer;
  let second: SecondProcess | undefined;
  before(async () => {
    origin = await startOrigin();
    // 1 byte/s: nothing leaks noticeably while the test runs (real clocks here).
    const config = { ...limitedConfig(origin), remote_media_download_per_second: 1 };
    server = await startTestServer("postgres", config);
    second = await startSecondProcess(server, config);
  });
  after(async () => {
    await stopSecondProcess(second);
    await server.stop();
    origin.server.close();
  });

  it("draws one user's fetches in either process from one bucket", async () => {
    const alice = await server.user("alice");
    const fetchVia = (base: string, id: string) =>
      download(base, `/_matrix/client/v1/media/download/origin.test/${id}`, {
        token: alice.token,
      });
    assert.equal((await fetchVia(server.baseUrl, "n600000_x1")).status, 200);
    assert.equal((await fetchVia(second!.base, "n600000_x2")).status, 200);
    // 1.2 MB in the shared bucket: the second process has no 1 MiB headroom left.
    // With a bucket per process it would hold 0.6 MB and fetch.
    assertLimited(await fetchVia(second!.base, "n1000_x3"));
    assertLimited(await fetchVia(server.baseUrl, "n1000_x4"));
    assert.equal(origin.hits("n1000_x3") + origin.hits("n1000_x4"), 0);
    assert.equal(await metric(second!.base, "mxcd_rate_limited_total", REFUSED), 1);
  });
});
