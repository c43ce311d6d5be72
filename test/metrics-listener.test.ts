/**
 * `metrics_listen`: with it, `/metrics` is served only on its own listener
 * (a private address for Prometheus) and the main listener, the one that may
 * face the internet, has no `/metrics`; without it, `/metrics` stays on the
 * main listener.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { freePort } from "./support/postgres-cluster.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

describe("metrics_listen", () => {
  let server: TestServer;
  let metricsBase: string;
  before(async () => {
    const port = await freePort();
    metricsBase = `http://127.0.0.1:${port}`;
    server = await startTestServer("sqlite", { metrics_listen: { host: "127.0.0.1", port } });
  });
  after(() => server.stop());

  it("serves /metrics on its own listener, counting the main listener's requests", async () => {
    assert.equal((await server.http.get("/health")).status, 200);
    const res = await fetch(`${metricsBase}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain/);
    const text = await res.text();
    assert.match(text, /^mxcd_http_requests_total\{[^}]*route="\/health"[^}]*\} [1-9]/m);
    assert.match(text, /^# HELP mxcd_waiting_requests /m);
  });

  it("has no /metrics on the main listener", async () => {
    for (const path of ["/metrics", "/metrics?x=1"]) {
      const res = await server.http.get(path);
      assert.equal(res.status, 404, path);
      assert.equal(res.body.errcode, "M_UNRECOGNIZED");
      assert.doesNotMatch(res.text, /# (HELP|TYPE) /);
    }
  });

  it("answers nothing but GET /metrics on the metrics listener", async () => {
    assert.equal((await fetch(`${metricsBase}/health`)).status, 404);
    assert.equal((await fetch(`${metricsBase}/_matrix/client/versions`)).status, 404);
    assert.equal((await fetch(`${metricsBase}/metrics`, { method: "POST" })).status, 404);
  });
});

describe("without metrics_listen", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer("sqlite");
  });
  after(() => server.stop());

  it("serves /metrics on the main listener", async () => {
    const res = await server.http.get("/metrics");
    assert.equal(res.status, 200);
    assert.match(res.text, /^# HELP mxcd_http_requests_total /m);
  });
});
