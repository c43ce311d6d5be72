import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startTestServer, type TestServer } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

describe("HTTP core", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer("sqlite");
  });
  after(() => server.stop());

  it("answers /_matrix/client/versions with v1.11 and later", async () => {
    const res = await server.http.get("/_matrix/client/versions");
    assert.equal(res.status, 200);
    assert.ok(res.body.versions.includes("v1.11"));
    assert.ok(res.body.versions.includes("r0.6.1"));
  });

  for (const prefix of [
    "/_matrix/client",
    "/_matrix/media",
    "/_matrix/federation",
    "/_matrix/key",
    "/_synapse/admin",
  ]) {
    it(`answers an unknown path under ${prefix} with 404 M_UNRECOGNIZED`, async () => {
      const res = await server.http.get(`${prefix}/v9/no/such/endpoint`);
      assert.equal(res.status, 404);
      assert.deepEqual(res.body, { errcode: "M_UNRECOGNIZED", error: "Unrecognized request" });
    });
  }

  for (const [method, path] of [
    ["PUT", "/_matrix/client/versions"],
    ["DELETE", "/_matrix/client/v3/login"],
    ["POST", "/_matrix/client/v3/account/whoami"],
    ["DELETE", "/_synapse/admin/v1/register"],
    ["POST", "/_synapse/admin/v2/users/@a:test.local/login/extra"],
  ] as const) {
    it(`answers ${method} ${path} as the right status and M_UNRECOGNIZED`, async () => {
      const res = await server.http.request(method, path);
      const expected = path.endsWith("/extra") ? 404 : 405;
      assert.equal(res.status, expected);
      assert.equal(res.body.errcode, "M_UNRECOGNIZED");
    });
  }

  it("answers malformed JSON with 400 M_NOT_JSON", async () => {
    const res = await server.http.request("POST", "/_matrix/client/v3/login", {
      rawBody: '{"type": "m.login.password",',
      headers: { "content-type": "application/json" },
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.errcode, "M_NOT_JSON");
  });

  it("parses JSON sent without a content type", async () => {
    const res = await server.http.request("POST", "/_matrix/client/v3/login", {
      rawBody: '{"type": "m.login.unknown"}',
    });
    assert.equal(res.status, 400);
    assert.equal(res.body.errcode, "M_UNKNOWN");
  });

  it("answers a JSON body that is not an object with 400 M_NOT_JSON", async () => {
    const res = await server.http.post("/_matrix/client/v3/login", [1, 2]);
    assert.equal(res.status, 400);
    assert.equal(res.body.errcode, "M_NOT_JSON");
  });

  it("answers a JSON body over the limit with 413 M_TOO_LARGE", async () => {
    const res = await server.http.post("/_matrix/client/v3/login", { pad: "x".repeat(2 << 20) });
    assert.equal(res.status, 413);
    assert.equal(res.body.errcode, "M_TOO_LARGE");
  });

  it("answers CORS preflights and sets CORS headers on every answer, errors included", async () => {
    const preflight = await server.http.request("OPTIONS", "/_matrix/client/v3/login", {
      headers: { origin: "https://app.element.io", "access-control-request-method": "POST" },
    });
    assert.equal(preflight.status, 200);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
    assert.match(preflight.headers.get("access-control-allow-headers")!, /Authorization/);
    assert.match(preflight.headers.get("access-control-allow-methods")!, /PUT/);
    const error = await server.http.get("/_matrix/client/v3/nothing");
    assert.equal(error.headers.get("access-control-allow-origin"), "*");
  });

  it("answers /health", async () => {
    const res = await server.http.get("/health");
    assert.equal(res.status, 200);
    assert.equal(res.text, "OK");
  });

  it("counts requests by route pattern in /metrics", async () => {
    await server.http.get("/_matrix/client/versions");
    await server.http.get("/_synapse/admin/v2/users/@someone:test.local");
    const res = await server.http.get("/metrics");
    assert.equal(res.status, 200);
    assert.match(
      res.text,
      /mxcd_http_requests_total\{method="GET",route="\/_matrix\/client\/versions",status="200"\} \d+/,
    );
    // Route patterns, not paths, label the series.
    assert.match(res.text, /route="\/_synapse\/admin\/v2\/users\/:userId",status="401"/);
    assert.match(res.text, /mxcd_http_request_duration_seconds_bucket/);
  });

  it("refuses a request without a token with 401 M_MISSING_TOKEN", async () => {
    const res = await server.http.get("/_matrix/client/v3/account/whoami");
    assert.equal(res.status, 401);
    assert.equal(res.body.errcode, "M_MISSING_TOKEN");
  });

  it("refuses an unknown token with 401 M_UNKNOWN_TOKEN, from the header or the query", async () => {
    const header = await server.http
      .withToken("mxcd_nope")
      .get("/_matrix/client/v3/account/whoami");
    assert.equal(header.status, 401);
    assert.equal(header.body.errcode, "M_UNKNOWN_TOKEN");
    assert.equal(header.body.soft_logout, false);
    const query = await server.http.get("/_matrix/client/v3/account/whoami?access_token=nope");
    assert.equal(query.status, 401);
    assert.equal(query.body.errcode, "M_UNKNOWN_TOKEN");
  });
});

describe("graceful shutdown", () => {
  it("lets an in-flight request finish and refuses new connections after stop", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let entered!: () => void;
    const inRoute = new Promise<void>((r) => {
      entered = r;
    });
    const server = await startTestServer(
      "sqlite",
      {},
      {
        // A slow route for this test only.
        beforeStart: (app) =>
          app.http.get("/test/slow", async () => {
            entered();
            await gate;
            return { done: true };
          }),
      },
    );
    const inFlight = server.http.get("/test/slow");
    await inRoute;
    const stopping = server.stop();
    // The listener closes while the slow request is still held open.
    await waitFor(
      () =>
        fetch(`${server.baseUrl}/health`).then(
          () => false,
          () => true,
        ),
      "the listener to refuse new connections",
    );
    release();
    const res = await inFlight;
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { done: true });
    await stopping;
  });
});
