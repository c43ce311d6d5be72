/**
 * Serving the moderation console (docs/console.md "Serving"): index.html
 * for the app's routes with no-cache, hashed assets cached for a year, 404
 * for a missing asset, a strict Content-Security-Policy and nosniff on
 * every answer, nothing outside the built folder reachable, `console.enabled:
 * false` turns the paths off, and an unbuilt console says how to build it.
 * Needs `npm run build` first (scripts/run-tests.ts runs after it).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { CONSOLE_CSP } from "../src/http/routes/console-routes.js";
import { REPO_URL } from "./support/repo-url.js";
import { startTestServer, type TestServer } from "./support/test-server.js";

const INDEX = readFileSync(new URL("dist/console/index.html", REPO_URL), "utf8");
const SCRIPT = /<script type="module" crossorigin src="([^"]+)"/.exec(INDEX)?.[1];

/** A GET with the path sent exactly as written (fetch would normalise `..`). */
function rawGet(baseUrl: string, path: string) {
  const { hostname, port } = new URL(baseUrl);
  return new Promise<{
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: string;
  }>((resolve, reject) => {
    const req = request({ host: hostname, port, path, method: "GET" }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

function assertSecurityHeaders(headers: Headers) {
  assert.equal(headers.get("content-security-policy"), CONSOLE_CSP);
  assert.equal(headers.get("x-content-type-options"), "nosniff");
}

describe("console serving", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer("sqlite");
  });
  after(() => server.stop());

  it("serves index.html with a strict CSP, no inline script and no-cache", async () => {
    const res = await fetch(`${server.baseUrl}/_mxcd/console/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/html/);
    assertSecurityHeaders(res.headers);
    assert.equal(res.headers.get("cache-control"), "no-cache");
    const csp = CONSOLE_CSP;
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /img-src 'self' blob:/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:|data:/);
    const body = await res.text();
    assert.equal(body, INDEX);
    assert.ok(
      SCRIPT?.startsWith("/_mxcd/console/assets/"),
      "the bundle is served from /_mxcd/console/assets/",
    );
    // Every script has a src (nothing inline), nothing comes from elsewhere.
    assert.doesNotMatch(body, /<script(?![^>]*\ssrc=)[^>]*>/);
    assert.doesNotMatch(body, /(src|href)="(https?:)?\/\//);
  });

  it("answers the app's routes with index.html (SPA fallback)", async () => {
    for (const path of [
      "/_mxcd/console/feed",
      "/_mxcd/console/media/test.local/abcdef",
      "/_mxcd/console/user/%40alice%3Atest.local",
      "/_mxcd/console/room/!r%3Atest.local?x=1",
    ]) {
      const res = await fetch(`${server.baseUrl}${path}`);
      assert.equal(res.status, 200, path);
      assertSecurityHeaders(res.headers);
      assert.equal(await res.text(), INDEX, path);
    }
    const bare = await fetch(`${server.baseUrl}/_mxcd/console`, { redirect: "manual" });
    assert.equal(bare.status, 302);
    assert.equal(bare.headers.get("location"), "/_mxcd/console/");
  });

  it("serves hashed assets with a long cache, and 404 for a missing one", async () => {
    const res = await fetch(`${server.baseUrl}${SCRIPT}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.equal(res.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assertSecurityHeaders(res.headers);
    assert.ok((await res.text()).length > 1000);
    const missing = await fetch(`${server.baseUrl}/_mxcd/console/assets/index-missing.js`);
    assert.equal(missing.status, 404);
    assertSecurityHeaders(missing.headers);
    assert.equal(((await missing.json()) as { errcode: string }).errcode, "M_NOT_FOUND");
  });

  it("never serves a file outside the build", async () => {
    for (const path of [
      "/_mxcd/console/../../package.json",
      "/_mxcd/console/%2e%2e/%2e%2e/package.json",
      "/_mxcd/console/assets/..%2f..%2f..%2fpackage.json",
      "/_mxcd/console/assets/%2e%2e/%2e%2e/%2e%2e/src/app.ts",
      "/_mxcd/console//etc/passwd",
    ]) {
      const res = await rawGet(server.baseUrl, path);
      assert.ok(res.status === 200 || res.status === 404, `${path}: ${res.status}`);
      assert.doesNotMatch(res.body, /"name": "mxcd"|createApp|root:/, path);
    }
  });

  it("tells the app the deployment shape and server name", async () => {
    const res = await fetch(`${server.baseUrl}/_mxcd/console/config.json`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { mode: "standalone", server_name: "test.local" });
  });
});

describe("console serving options", () => {
  it("console.enabled: false answers 404 M_UNRECOGNIZED", async () => {
    const server = await startTestServer("sqlite", { console: { enabled: false } });
    try {
      for (const path of ["/_mxcd/console/", `${SCRIPT}`, "/_mxcd/console/config.json"]) {
        const res = await fetch(`${server.baseUrl}${path}`);
        assert.equal(res.status, 404, path);
        assert.equal(((await res.json()) as { errcode: string }).errcode, "M_UNRECOGNIZED", path);
      }
    } finally {
      await server.stop();
    }
  });

  it("is served in the attached shape too, which the app learns from config.json", async () => {
    // No request here reaches the homeserver: nothing listens at its address.
    const server = await startTestServer("sqlite", {
      mode: "attached",
      homeserver: { base_url: "http://127.0.0.1:9", admin_api: "synapse" },
    });
    try {
      const index = await fetch(`${server.baseUrl}/_mxcd/console/user/%40a%3Atest.local`);
      assert.equal(index.status, 200);
      assert.equal(await index.text(), INDEX);
      const config = await fetch(`${server.baseUrl}/_mxcd/console/config.json`);
      assert.deepEqual(await config.json(), { mode: "attached", server_name: "test.local" });
    } finally {
      await server.stop();
    }
  });

  it("an unbuilt console answers 404 saying how to build it", async () => {
    const empty = mkdtempSync(join(tmpdir(), "mxcd-console-"));
    const server = await startTestServer("sqlite", {}, { appOptions: { consoleDir: empty } });
    try {
      const res = await fetch(`${server.baseUrl}/_mxcd/console/`);
      assert.equal(res.status, 404);
      const body = (await res.json()) as { errcode: string; error: string };
      assert.equal(body.errcode, "M_NOT_FOUND");
      assert.match(body.error, /not built: run `npm run build`/);
    } finally {
      await server.stop();
    }
  });
});
