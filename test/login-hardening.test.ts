import assert from "node:assert/strict";
import { scryptSync } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { LoginRateLimits } from "../src/accounts/login-rate-limits.js";
import { PasswordHashPool } from "../src/accounts/password-hash-pool.js";
import { registrationMac } from "../src/accounts/shared-secret-registration.js";
import type { ConfigInput } from "../src/config/config-schema.js";
import { MatrixError } from "../src/domain/matrix-error.js";
import { RateLimiter } from "../src/util/rate-limiter.js";
import { forEachEngine } from "./support/databases.js";
import type { HttpClient } from "./support/http-client.js";
import { uploadBytes } from "./support/media.js";
import { until } from "./support/mxcd-processes.js";
import {
  startTestServer,
  TEST_RC_LOGIN,
  TEST_SHARED_SECRET,
  type TestServer,
} from "./support/test-server.js";

function login(http: HttpClient, user: string, password: string, headers = {}) {
  return http.post(
    "/_matrix/client/v3/login",
    { type: "m.login.password", identifier: { type: "m.id.user", user }, password },
    { headers },
  );
}

/** One sample of a metric from /metrics (0 when absent). */
async function metric(server: TestServer, name: string, labels = ""): Promise<number> {
  const text = (await server.http.get("/metrics")).text;
  const escaped = `${name}${labels}`.replace(/[{}]/g, (c) => `\\${c}`);
  const match = new RegExp(`^${escaped} (\\d+)$`, "m").exec(text);
  return Number(match?.[1] ?? 0);
}

function assertLimited(res: { status: number; body: any; headers: Headers }) {
  assert.equal(res.status, 429);
  assert.equal(res.body.errcode, "M_LIMIT_EXCEEDED");
  assert.ok(Number.isInteger(res.body.retry_after_ms) && res.body.retry_after_ms > 0);
  assert.equal(res.headers.get("retry-after"), String(Math.ceil(res.body.retry_after_ms / 1000)));
}

const strict = { per_second: 0.001, burst_count: 3 };

forEachEngine("login rate limits and password checks", (engine) => {
  const servers: TestServer[] = [];
  const start = async (overrides: Partial<ConfigInput>) => {
    const server = await startTestServer(engine, overrides);
    servers.push(server);
    return server;
  };
  after(() => Promise.all(servers.map((s) => s.stop())));

  it("limits login requests per client address (rc_login.address), by X-Forwarded-For with listen.x_forwarded", async () => {
    const server = await start({
      rc_login: { ...TEST_RC_LOGIN, address: strict },
      listen: { host: "127.0.0.1", port: 0, x_forwarded: true },
    });
    await server.user("ann", { password: "pw" });
    const from = (ip: string) => ({ "x-forwarded-for": ip });
    for (let i = 0; i < 3; i++) {
      assert.equal((await login(server.http, "ann", "pw", from("203.0.113.1"))).status, 200);
    }
    const limited = await login(server.http, "ann", "pw", from("203.0.113.1"));
    assertLimited(limited);
    // Counted before the fields are checked: even a malformed login is refused.
    const malformed = await server.http.post(
      "/_matrix/client/v3/login",
      { type: "nope" },
      {
        headers: from("203.0.113.1"),
      },
    );
    assert.equal(malformed.status, 429);
    assert.equal((await login(server.http, "ann", "pw", from("203.0.113.2"))).status, 200);
    assert.equal(await metric(server, "mxcd_login_rate_limited_total", '{limit="address"}'), 2);
  });

  it("ignores X-Forwarded-For unless listen.x_forwarded is set", async () => {
    const server = await start({ rc_login: { ...TEST_RC_LOGIN, address: strict } });
    await server.user("abe", { password: "pw" });
    for (let i = 0; i < 3; i++) {
      const forged = { "x-forwarded-for": `198.51.100.${i}` };
      assert.equal((await login(server.http, "abe", "pw", forged)).status, 200);
    }
    assertLimited(await login(server.http, "abe", "pw", { "x-forwarded-for": "198.51.100.9" }));
  });

  it("limits failed attempts per user (rc_login.failed_attempts), even with the right password then", async () => {
    const server = await start({ rc_login: { ...TEST_RC_LOGIN, failed_attempts: strict } });
    await server.user("bea", { password: "pw" });
    await server.user("cid", { password: "pw" });
    for (let i = 0; i < 3; i++) {
      const wrong = await login(server.http, "bea", "wrong");
      assert.equal(wrong.status, 403);
      assert.equal(wrong.body.errcode, "M_FORBIDDEN");
    }
    assertLimited(await login(server.http, "bea", "pw"));
    assertLimited(await login(server.http, "@BEA:test.local", "pw"));
    assert.equal((await login(server.http, "cid", "pw")).status, 200, "other users unaffected");
    for (let i = 0; i < 3; i++) {
      assert.equal((await login(server.http, "ghost", "x")).status, 403);
    }
    assertLimited(await login(server.http, "ghost", "x"));
  });

  it("limits successful logins per account (rc_login.account)", async () => {
    const server = await start({ rc_login: { ...TEST_RC_LOGIN, account: strict } });
    await server.user("dee", { password: "pw" });
    for (let i = 0; i < 3; i++) {
      assert.equal((await login(server.http, "dee", "pw")).status, 200);
    }
    assertLimited(await login(server.http, "dee", "pw"));
    assert.equal(await metric(server, "mxcd_login_rate_limited_total", '{limit="account"}'), 1);
  });

  it("runs exactly one KDF verification per login, whether or not the user exists", async () => {
    const server = await start({});
    await server.user("eve", { password: "pw" });
    await server.app.accounts.register({ localpart: "nopass", password: null, admin: false });
    const verifications = () => metric(server, "mxcd_password_hash_total", '{op="verify"}');
    for (const [user, password, status] of [
      ["eve", "wrong", 403],
      ["eve", "pw", 200],
      ["nobody", "pw", 403],
      ["nopass", "pw", 403],
    ] as const) {
      const before = await verifications();
      assert.equal((await login(server.http, user, password)).status, status, user);
      assert.equal((await verifications()) - before, 1, `${user}: one KDF run`);
    }
  });

  it("hashes new passwords on the same pool: shared-secret registration and the admin API", async () => {
    const server = await start({});
    const admin = await server.user("root", { admin: true });
    const hashes = () => metric(server, "mxcd_password_hash_total", '{op="hash"}');
    const { nonce } = (await server.http.get("/_synapse/admin/v1/register")).body;
    const fields = { nonce, username: "fay", password: "pw", admin: false };
    const mac = registrationMac(TEST_SHARED_SECRET, fields);
    let before = await hashes();
    const reg = await server.http.post("/_synapse/admin/v1/register", { ...fields, mac });
    assert.equal(reg.status, 200);
    assert.equal((await hashes()) - before, 1);
    before = await hashes();
    const put = await admin.http.put("/_synapse/admin/v2/users/@fay:test.local", {
      password: "new",
    });
    assert.equal(put.status, 200);
    assert.equal((await hashes()) - before, 1);
    assert.equal((await login(server.http, "fay", "new")).status, 200);
  });
});

describe("password hashing does not starve file reads", () => {
  let server: TestServer;
  before(async () => {
    // One hash at a time and one waiting: the rest of a flood is refused.
    server = await startTestServer("sqlite", {
      password_hash_workers: 1,
      password_hash_queue_size: 1,
    });
  });
  after(() => server.stop());

  it("serves a download while a login flood is still hashing, and refuses the excess with 429", async () => {
    const uploader = await server.user("uploader");
    const bytes = Buffer.alloc(4096, 7);
    const mediaId = await uploadBytes(uploader.http, bytes);
    // A deliberately slow stored hash (p = 32: 32 times the default work, a
    // second or more), so every login below holds a hash slot far longer than
    // a 4 KiB download takes, even from s3rver on a loaded machine.
    const { userId } = await server.user("slow");
    const salt = Buffer.alloc(16, 1);
    const key = scryptSync("right", salt, 32, { N: 16384, r: 8, p: 32, maxmem: 64 << 20 });
    const slowHash = `scrypt$16384$8$32$${salt.toString("base64")}$${key.toString("base64")}`;
    await server.app.database.db
      .updateTable("users")
      .set({ password_hash: slowHash })
      .where("name", "=", userId)
      .execute();

    // More logins than libuv has threads (4): with hashing on libuv's
    // threadpool, the download's file reads would queue behind them.
    const FLOOD = 6;
    let hashed = 0;
    const logins = Array.from({ length: FLOOD }, () =>
      login(server.http, "slow", "wrong").then((res) => {
        if (res.status !== 429) hashed++;
        return res;
      }),
    );
    const jobs = async () =>
      (await metric(server, "mxcd_password_hash_jobs", '{state="running"}')) +
      (await metric(server, "mxcd_password_hash_jobs", '{state="queued"}')) +
      (await metric(server, "mxcd_password_hash_rejected_total"));
    await until(async () => (await jobs()) === FLOOD);

    const download = await uploader.http.get(
      `/_matrix/client/v1/media/download/test.local/${mediaId}`,
    );
    assert.equal(download.status, 200);
    assert.equal(download.text, bytes.toString());
    assert.equal(hashed, 0, "the download finished before any login's hash");

    const statuses = (await Promise.all(logins)).map((res) => res.status).sort();
    assert.deepEqual(statuses, [403, 403, 429, 429, 429, 429]);
    const refused = (await Promise.all(logins)).find((res) => res.status === 429)!;
    assertLimited(refused);
  });
});

describe("PasswordHashPool", () => {
  it("refuses a job beyond workers + queue with 429 M_LIMIT_EXCEEDED, at once", async () => {
    const pool = new PasswordHashPool({ workers: 1, maxQueue: 1 });
    try {
      const job = { password: "pw", salt: Buffer.alloc(16), n: 1024, r: 8, p: 1, keyLength: 32 };
      const running = pool.derive(job);
      const queued = pool.derive(job);
      assert.deepEqual(pool.stats, { running: 1, queued: 1, rejected: 0 });
      await assert.rejects(pool.derive(job), (error: unknown) => {
        assert.ok(error instanceof MatrixError);
        assert.equal(error.status, 429);
        assert.equal(error.errcode, "M_LIMIT_EXCEEDED");
        assert.equal(typeof error.extra.retry_after_ms, "number");
        return true;
      });
      const expected = scryptSync("pw", Buffer.alloc(16), 32, { N: 1024, r: 8, p: 1 });
      assert.deepEqual(await running, expected);
      assert.deepEqual(await queued, expected);
      assert.deepEqual(pool.stats, { running: 0, queued: 0, rejected: 1 });
    } finally {
      await pool.close();
    }
  });
});

describe("RateLimiter", () => {
  it("follows Synapse's leaky bucket: burst, refusal with retry time, leak", () => {
    let now = 0;
    const limiter = new RateLimiter({ perSecond: 0.5, burstCount: 2 }, 10, () => now);
    assert.equal(limiter.check("k").allowed, true);
    assert.equal(limiter.check("k").allowed, true);
    const refused = limiter.check("k");
    assert.deepEqual(refused, { allowed: false, retryAfterMs: 2000 });
    now = 2000;
    assert.equal(limiter.check("k").allowed, true, "one action leaked away after 2 s");
    assert.equal(limiter.check("k").allowed, false);
    assert.equal(limiter.check("other").allowed, true, "keys are independent");
  });

  it("does not count a check made with record = false", () => {
    const limiter = new RateLimiter({ perSecond: 1, burstCount: 1 }, 10, () => 0);
    for (let i = 0; i < 5; i++) assert.equal(limiter.check("k", false).allowed, true);
    assert.equal(limiter.check("k").allowed, true);
    assert.equal(limiter.check("k", false).allowed, false);
  });

  it("keeps at most maxKeys buckets, evicting the least recently used", () => {
    const limiter = new RateLimiter({ perSecond: 0.001, burstCount: 1 }, 3, () => 0);
    for (let i = 0; i < 1000; i++) limiter.check(`key${i}`);
    assert.equal(limiter.size, 3);
    assert.equal(limiter.check("key999").allowed, false, "a recent key is still tracked");
    assert.equal(limiter.check("key0").allowed, true, "an evicted key starts afresh");
  });

  it("LoginRateLimits: failed attempts are keyed case-insensitively and checked without counting", () => {
    const limits = new LoginRateLimits(
      {
        address: { perSecond: 1, burstCount: 100 },
        account: { perSecond: 1, burstCount: 100 },
        failed_attempts: { perSecond: 0.001, burstCount: 1 },
      },
      () => 0,
    );
    limits.checkFailedAttempts("@a:x");
    limits.checkFailedAttempts("@a:x");
    limits.recordFailure("@A:x");
    assert.throws(() => limits.checkFailedAttempts("@a:x"), MatrixError);
    assert.deepEqual(limits.refused, { address: 0, account: 0, failed_attempts: 1 });
  });
});
