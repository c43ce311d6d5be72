/**
 * The nginx configuration of docs/deployment.md, for real: it is extracted
 * from the page (so the page cannot drift from what works), pointed at three
 * `mxcd serve` processes on one PostgreSQL database and one media store, and
 * used to upload (a streamed, chunked body), download and long-poll.
 *
 * Needs nginx (`apt-get install nginx-light`); without it the suite is
 * skipped with a loud message, and under CI=true that is a failure (.ci/run
 * installs nginx-light, and the run fails unless this suite left its marker).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { after, before, it } from "node:test";
import { forEachEngine } from "./support/databases.js";
import { HttpClient } from "./support/http-client.js";
import { download, mediaIdOf } from "./support/media.js";
import { type ProcessGroup, startProcessGroup, until } from "./support/mxcd-processes.js";
import { findNginx, type RunningNginx, startNginxHttp } from "./support/nginx.js";
import { REPO_URL } from "./support/repo-url.js";
import { markSuiteRan } from "./support/run-markers.js";

const ADMIN = "/_synapse/admin/v1";

/** The ```nginx block of docs/deployment.md with our ports substituted (each must be found). */
function documentedConfig(upstreams: number[], port: number): string {
  const page = readFileSync(new URL("docs/deployment.md", REPO_URL), "utf8");
  const block = /```nginx\n([\s\S]*?)```/.exec(page)?.[1];
  assert.ok(block, "docs/deployment.md has an nginx block");
  const substitutions: [string, string][] = [
    ["listen 80;", `listen 127.0.0.1:${port};`],
    ...upstreams.map((p, i): [string, string] => [`127.0.0.1:${8101 + i};`, `127.0.0.1:${p};`]),
  ];
  let config = block;
  for (const [from, to] of substitutions) {
    assert.ok(config.includes(from), `the documented config contains ${from}`);
    config = config.replace(from, to);
  }
  return config;
}

/** POSTs `bytes` as a chunked body in 64 KiB pieces, as a client streaming a file would. */
function chunkedUpload(base: string, token: string, bytes: Buffer): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/_matrix/media/v3/upload`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "transfer-encoding": "chunked" },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      let text = "";
      res.on("data", (d: Buffer) => {
        text += d;
      });
      res.on("end", () => resolve({ status: res.statusCode, body: JSON.parse(text || "null") }));
    });
    for (let at = 0; at < bytes.length; at += 65536) req.write(bytes.subarray(at, at + 65536));
    req.end();
  });
}

const nginxBinary = findNginx();
if (!nginxBinary && process.env.CI === "true") {
  throw new Error("nginx is required under CI=true (apt-get install nginx-light)");
}

/** GET with `path` sent exactly as written (fetch would normalise it). */
function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}/`, { path, method: "GET" });
    req.on("error", reject);
    req.on("response", (res) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.end();
  });
}

forEachEngine("the documented nginx config in front of three processes", (engine) => {
  if (engine !== "postgres" || !nginxBinary) {
    const reason = !nginxBinary
      ? "!!! SKIPPED: nginx is not installed (apt-get install nginx-light) — the documented config is untested"
      : "multi-process is a PostgreSQL deployment shape";
    it("serves through nginx", { skip: reason });
    return;
  }
  let group: ProcessGroup;
  let nginx: RunningNginx;
  let proxy: string;
  let user: string;
  let admin: string;
  before(async () => {
    group = await startProcessGroup(3, { max_upload_size: "50M" });
    const upstreams = group.processes.map((p) => Number(new URL(p.base).port));
    nginx = await startNginxHttp(
      nginxBinary,
      (port) => documentedConfig(upstreams, port),
      (url) =>
        fetch(`${url}/health`).then(
          (res) => res.ok,
          () => false,
        ),
    );
    proxy = nginx.url;
    user = await group.token("alice");
    admin = await group.token("admin", { admin: true });
    markSuiteRan("nginx");
  });
  after(async () => {
    await nginx?.stop();
    await group?.stop();
  });

  it("streams uploads in and downloads out, spread over all three processes", async () => {
    const files = Array.from({ length: 6 }, (_, i) =>
      randomBytes(i === 0 ? 8 * 1024 * 1024 : 4096),
    );
    const ids: string[] = [];
    for (const bytes of files) {
      const res = await chunkedUpload(proxy, user, bytes);
      assert.equal(res.status, 200);
      ids.push(mediaIdOf(res.body.content_uri));
    }
    for (const [i, id] of ids.entries()) {
      const got = await download(proxy, `/_matrix/client/v1/media/download/test.local/${id}`, {
        token: user,
      });
      assert.equal(got.status, 200);
      assert.equal(got.headers.get("content-length"), String(files[i]!.length));
      assert.ok(got.bytes.equals(files[i]!));
    }
    // Round robin: every process took some of the uploads.
    for (const p of group.processes) {
      const metrics = await (await fetch(`${p.base}/metrics`)).text();
      assert.match(metrics, /route="\/_matrix\/media\/v3\/upload",status="200"\} [1-9]/);
    }
  });

  it("does not expose /metrics through the proxy, in any spelling of the path", async () => {
    const scrapes = async () => {
      let total = 0;
      for (const p of group.processes) {
        const text = await (await fetch(`${p.base}/metrics`)).text();
        const match = /^mxcd_http_requests_total\{[^}]*route="\/metrics"[^}]*\} (\d+)$/gm;
        for (const m of text.matchAll(match)) total += Number(m[1]);
      }
      return total;
    };
    const before = await scrapes();
    const paths = [
      "/metrics",
      "/metrics?format=text",
      "/metrics/",
      "//metrics",
      "/%6Detrics",
      "/%6detrics",
      "/./metrics",
      "/_matrix/../metrics",
      "/metrics%3F",
      "/METRICS",
    ];
    for (const path of paths) {
      const res = await rawGet(proxy, path);
      assert.notEqual(res.status, 200, path);
      assert.doesNotMatch(res.body, /# (HELP|TYPE) /, path);
    }
    // No process saw any of them: the only /metrics requests counted are
    // this test's direct scrapes (one per process per call of scrapes()).
    const after = await scrapes();
    assert.equal(after - before, group.processes.length);
    // The processes themselves still serve it, for the scraper.
    assert.match(await (await fetch(`${group.processes[0]!.base}/metrics`)).text(), /# HELP /);
  });

  it("holds a long-poll open until a quarantine through nginx wakes it", async () => {
    const http = new HttpClient(proxy, admin);
    const feed = `${ADMIN}/media/quarantine_changes`;
    const res = await chunkedUpload(proxy, user, randomBytes(1000));
    const id = mediaIdOf(res.body.content_uri);
    const position = (await http.get(`${feed}?from=0&limit=1000`)).body.next_batch;
    const poll = http.get(`${feed}?from=${position}&timeout=60000`);
    const waiting = async () => {
      const counts = await Promise.all(group.processes.map((p) => p.waiting("feed")));
      return counts.reduce((a, b) => a + b, 0);
    };
    await until(async () => (await waiting()) === 1);
    assert.equal((await http.post(`${ADMIN}/media/quarantine/test.local/${id}`)).status, 200);
    const page = (await poll).body;
    assert.deepEqual(
      page.changes.map((c: any) => [c.media_id, c.quarantined]),
      [[id, true]],
    );
  });
});
