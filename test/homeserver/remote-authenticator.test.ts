/**
 * Identity from the homeserver (attached mode): whoami with caching,
 * single-flight, negative caching only of unknown tokens, errors passed
 * through (soft_logout kept), an unreachable homeserver never reading as
 * M_UNKNOWN_TOKEN, the failure breaker, masquerading, guests and the three
 * ways of recognising admins. Driven against the scripted homeserver over
 * real HTTP on loopback.
 */
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { MatrixError } from "../../src/domain/matrix-error.js";
import { HomeserverClient } from "../../src/homeserver/homeserver-client.js";
import {
  type AdminApi,
  RemoteAuthenticator,
  type RemoteAuthenticatorOptions,
} from "../../src/homeserver/remote-authenticator.js";
import { addressPolicy } from "../../src/net/ip-ranges.js";
import { OutboundHttp } from "../../src/net/outbound-http.js";
import { ScriptedHomeserver } from "../support/scripted-homeserver.js";

const SERVER = "example.org";
const WHOAMI = "/_matrix/client/v3/account/whoami";

let hs: ScriptedHomeserver;
// Not 0: lru-cache reads a start time of 0 as "no ttl".
let clock = 1_000_000;

before(async () => {
  hs = await ScriptedHomeserver.start();
});
after(() => hs.stop());

// One homeserver for all tests; each test issues its own tokens.
beforeEach(() => {
  hs.failWith = undefined;
});

function authenticator(
  overrides: Partial<RemoteAuthenticatorOptions> & {
    failureThreshold?: number;
    timeoutMs?: number;
  } = {},
): RemoteAuthenticator {
  const transport = new OutboundHttp({
    policy: addressPolicy([], ["0.0.0.0/0", "::/0"]),
    defaultTimeoutMs: 5_000,
  });
  const homeserver = new HomeserverClient({
    baseUrl: hs.baseUrl,
    timeoutMs: overrides.timeoutMs ?? 5_000,
    failureThreshold: overrides.failureThreshold ?? 1_000,
    cooldownMs: 60_000,
    transport,
    now: () => clock,
  });
  return new RemoteAuthenticator({
    serverName: SERVER,
    homeserver,
    adminApi: "synapse",
    admins: [],
    ttlMs: 60_000,
    negativeTtlMs: 5_000,
    adminTtlMs: 60_000,
    maxEntries: 1_000,
    now: () => clock,
    ...overrides,
  });
}

let serial = 0;
/** A fresh token for `userId` (so counts per test start from zero). */
function token(userId: string, extra: { admin?: boolean; guest?: boolean } = {}): string {
  const value = `syt_${++serial}_${Math.random().toString(36).slice(2)}`;
  hs.addToken(value, { userId, deviceId: "DEV", ...extra });
  return value;
}

async function refusal(promise: Promise<unknown>): Promise<MatrixError> {
  const error = await promise.then(
    () => assert.fail("expected a refusal"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof MatrixError, String(error));
  return error;
}

describe("RemoteAuthenticator: whoami", () => {
  it("asks once per token within the ttl, and again after it", async () => {
    const auth = authenticator();
    const t = token("@alice:example.org");
    const before = hs.count(WHOAMI);
    const first = await auth.authenticate(t);
    assert.equal(first.userId, "@alice:example.org");
    assert.equal(first.deviceId, "DEV");
    assert.equal(first.isGuest, false);
    assert.ok(!first.tokenHash.includes(t), "the cache key is a hash, not the token");
    await auth.authenticate(t);
    assert.equal(hs.count(WHOAMI) - before, 1);
    clock += 60_001;
    await auth.authenticate(t);
    assert.equal(hs.count(WHOAMI) - before, 2);
  });

  it("shares one homeserver request among 50 concurrent checks of a cold token", async () => {
    const auth = authenticator();
    const t = token("@bob:example.org");
    const before = hs.count(WHOAMI);
    const all = await Promise.all(Array.from({ length: 50 }, () => auth.authenticate(t)));
    assert.ok(all.every((r) => r.userId === "@bob:example.org"));
    assert.equal(hs.count(WHOAMI) - before, 1);
  });

  it("passes a 401 through and caches it only for negative_ttl", async () => {
    const auth = authenticator();
    const before = hs.count(WHOAMI);
    const error = await refusal(auth.authenticate("syt_never_issued"));
    assert.equal(error.status, 401);
    assert.deepEqual(error.toJSON(), {
      errcode: "M_UNKNOWN_TOKEN",
      error: "Unrecognised access token",
      soft_logout: false,
    });
    await refusal(auth.authenticate("syt_never_issued"));
    assert.equal(hs.count(WHOAMI) - before, 1, "the refusal is cached");
    clock += 5_001;
    await refusal(auth.authenticate("syt_never_issued"));
    assert.equal(hs.count(WHOAMI) - before, 2, "and only for negative_ttl");
  });

  it("keeps soft_logout of an expired token", async () => {
    const auth = authenticator();
    const t = token("@carol:example.org");
    hs.expire(t);
    const error = await refusal(auth.authenticate(t));
    assert.equal(error.errcode, "M_UNKNOWN_TOKEN");
    assert.equal(error.extra.soft_logout, true);
  });

  it("sees a logout after the ttl", async () => {
    const auth = authenticator();
    const t = token("@dave:example.org");
    await auth.authenticate(t);
    hs.logout(t);
    await auth.authenticate(t); // still cached
    clock += 60_001;
    assert.equal((await refusal(auth.authenticate(t))).errcode, "M_UNKNOWN_TOKEN");
  });

  for (const mode of ["500", "html502", "reset"] as const) {
    it(`answers 502 M_UNKNOWN, uncached, when the homeserver fails (${mode}); cached tokens keep working`, async () => {
      const auth = authenticator();
      const known = token("@erin:example.org");
      await auth.authenticate(known);
      const cold = token("@frank:example.org");
      hs.failWith = mode;
      const before = hs.count(WHOAMI);
      for (let i = 0; i < 2; i++) {
        const error = await refusal(auth.authenticate(cold));
        assert.equal(error.status, 502);
        assert.equal(error.errcode, "M_UNKNOWN");
      }
      assert.equal(hs.count(WHOAMI) - before, 2, "failures are not cached");
      assert.equal((await auth.authenticate(known)).userId, "@erin:example.org");
      hs.failWith = undefined;
      assert.equal((await auth.authenticate(cold)).userId, "@frank:example.org");
    });
  }

  it("answers 504 M_UNKNOWN when the homeserver does not answer in time", async () => {
    const auth = authenticator({ timeoutMs: 200 });
    hs.failWith = "stall";
    const error = await refusal(auth.authenticate(token("@gina:example.org")));
    assert.equal(error.status, 504);
    assert.equal(error.errcode, "M_UNKNOWN");
    hs.release();
  });

  it("fails fast after failure_threshold consecutive failures", async () => {
    const auth = authenticator({ failureThreshold: 3 });
    hs.failWith = "500";
    const before = hs.count(WHOAMI);
    for (let i = 0; i < 6; i++) {
      assert.equal((await refusal(auth.authenticate(`syt_fail_${i}`))).status, 502);
    }
    assert.equal(hs.count(WHOAMI) - before, 3, "three requests, then none while open");
    hs.failWith = undefined;
    clock += 60_001; // the cool-down passes: one probe goes through and closes the breaker
    assert.equal((await auth.authenticate(token("@hank:example.org"))).userId, "@hank:example.org");
    assert.equal(hs.count(WHOAMI) - before, 4);
  });

  it("refuses a whoami user of another server, and a 100 KB token without asking", async () => {
    const auth = authenticator();
    const foreign = token("@mallory:evil.example");
    assert.equal((await refusal(auth.authenticate(foreign))).status, 502);
    const before = hs.total;
    const error = await refusal(auth.authenticate("x".repeat(100 * 1024)));
    assert.equal(error.errcode, "M_UNKNOWN_TOKEN");
    assert.equal(hs.total, before, "no homeserver request for an impossible token");
  });

  it("forwards the client address", async () => {
    const auth = authenticator();
    await auth.authenticate(token("@ivan:example.org"), { clientAddress: "203.0.113.7" });
    assert.equal(hs.seen.at(-1)?.["x-forwarded-for"], "203.0.113.7");
  });
});

describe("RemoteAuthenticator: application-service masquerading", () => {
  const asToken = "as_token_for_bridge";
  before(() => {
    hs.addAppService(asToken, {
      sender: "@bridge:example.org",
      userRegexes: ["@bridge_.*:example\\.org"],
      registered: new Set(["@bridge_joe:example.org"]),
    });
  });

  it("passes user_id to the homeserver, which decides", async () => {
    const auth = authenticator();
    const joe = await auth.authenticate(asToken, { masqueradeAs: "@bridge_joe:example.org" });
    assert.equal(joe.userId, "@bridge_joe:example.org");
    const self = await auth.authenticate(asToken);
    assert.equal(self.userId, "@bridge:example.org");
    assert.notEqual(joe.tokenHash, self.tokenHash, "cached per masqueraded user");
    for (const user of ["@alice:example.org", "@bridge_unregistered:example.org"]) {
      const error = await refusal(auth.authenticate(asToken, { masqueradeAs: user }));
      assert.equal(error.status, 403);
      assert.equal(error.errcode, "M_FORBIDDEN");
    }
  });

  it("refuses a user_id that is no user id without asking", async () => {
    const auth = authenticator();
    const before = hs.total;
    for (const bad of ["alice", "@:", `@a:${"x".repeat(300)}`]) {
      assert.equal((await refusal(auth.authenticate(asToken, { masqueradeAs: bad }))).status, 400);
    }
    assert.equal(hs.total, before);
  });
});

describe("RemoteAuthenticator: guests and admins", () => {
  it("marks guests, who are never admins and cost no admin probe", async () => {
    const auth = authenticator({ admins: [] });
    const guest = await auth.authenticate(token("@guest1:example.org", { guest: true }));
    assert.equal(guest.isGuest, true);
    const before = hs.total;
    assert.equal(await auth.isAdmin(guest, "unused"), false);
    assert.equal(hs.total, before);
  });

  for (const adminApi of ["synapse", "matrix"] as const satisfies readonly AdminApi[]) {
    it(`recognises admins through the ${adminApi} probe, cached for admin_ttl`, async () => {
      const auth = authenticator({ adminApi });
      const adminToken = token("@admin:example.org", { admin: true });
      const userToken = token("@user:example.org");
      const admin = await auth.authenticate(adminToken);
      const user = await auth.authenticate(userToken);
      const before = hs.total;
      assert.equal(await auth.isAdmin(admin, adminToken), true);
      assert.equal(await auth.isAdmin(user, userToken), false);
      assert.equal(await auth.isAdmin(admin, adminToken), true);
      assert.equal(hs.total - before, 2, "one probe per token");
      clock += 60_001;
      await auth.isAdmin(admin, adminToken);
      assert.equal(hs.total - before, 3);
    });
  }

  it("uses only the admins list with admin_api none, and the list always applies", async () => {
    for (const adminApi of ["none", "synapse"] as const) {
      const auth = authenticator({ adminApi, admins: ["@listed:example.org"] });
      const listedToken = token("@listed:example.org");
      const listed = await auth.authenticate(listedToken);
      const before = hs.total;
      assert.equal(await auth.isAdmin(listed, listedToken), true);
      assert.equal(hs.total, before);
    }
    const none = authenticator({ adminApi: "none" });
    const hsAdminToken = token("@admin:example.org", { admin: true });
    const hsAdmin = await none.authenticate(hsAdminToken);
    assert.equal(await none.isAdmin(hsAdmin, hsAdminToken), false);
  });

  it("does not cache an admin probe that failed", async () => {
    const auth = authenticator();
    const adminToken = token("@admin:example.org", { admin: true });
    const admin = await auth.authenticate(adminToken);
    hs.failWith = "500";
    assert.equal((await refusal(auth.isAdmin(admin, adminToken))).status, 502);
    hs.failWith = undefined;
    assert.equal(await auth.isAdmin(admin, adminToken), true);
  });
});
