/**
 * The proxy config with `upstreamKeepalive` (src/http/nginx-proxy-config.ts),
 * run by a real nginx in front of two stand-in upstreams (plain Node `http`
 * servers that count the TCP connections they accept): with the `http`-level
 * upstream blocks, sequential requests reach mxcd and the homeserver over one
 * kept-alive connection each; with the default output (no upstream blocks),
 * nginx opens a new connection to mxcd for every request.
 *
 * Needs nginx; without it the suite is skipped loudly (a failure under CI=true).
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { nginxProxyConfig, nginxUpstreamConfig } from "../src/http/nginx-proxy-config.js";
import { findNginx, type RunningNginx, startNginxHttp } from "./support/nginx.js";
import { markSuiteRan } from "./support/run-markers.js";

const nginxBinary = findNginx();
if (!nginxBinary && process.env.CI === "true") {
  throw new Error("nginx is required under CI=true (apt-get install nginx-light)");
}

/** A stand-in upstream: answers 200, counts connections and requests, notes `Connection` headers. */
interface Upstream {
  readonly url: string;
  connections: number;
  requests: number;
  readonly connectionHeaders: Set<string>;
  readonly server: Server;
}

async function upstream(): Promise<Upstream> {
  const state = {
    connections: 0,
    requests: 0,
    connectionHeaders: new Set<string>(),
  };
  const server = createServer((req, res) => {
    state.requests += 1;
    state.connectionHeaders.add(req.headers.connection ?? "(none)");
    res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
    res.end("ok");
  });
  server.on("connection", () => {
    state.connections += 1;
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, { url: `http://127.0.0.1:${port}`, server });
}

/** nginx with the proxy config, the upstream blocks in its http block when `keepalive`. */
function startProxy(mxcd: Upstream, homeserver: Upstream, keepalive: boolean) {
  const options = {
    mxcd: mxcd.url,
    homeserver: homeserver.url,
    maxUploadSize: 1024 * 1024,
    upstreamKeepalive: keepalive,
  };
  return startNginxHttp(nginxBinary!, (port, dir) => {
    const site = nginxProxyConfig(options);
    return `${keepalive ? nginxUpstreamConfig(options) : ""}
server {
  listen 127.0.0.1:${port};
  ${site.replaceAll("\n", "\n  ")}
  # (the generated part ends here; ${dir})
}`;
  });
}

async function getSequentially(base: string, path: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${base}${path}`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok");
  }
}

const MEDIA = "/_matrix/media/v3/download/example.org/abcdef";
const HOMESERVER = "/_matrix/client/v3/sync";

describe(
  "the nginx proxy config's upstream connections",
  { skip: !nginxBinary && "nginx is not installed" },
  () => {
    let mxcd: Upstream;
    let homeserver: Upstream;
    let nginx: RunningNginx | undefined;

    before(async () => {
      mxcd = await upstream();
      homeserver = await upstream();
    });
    after(async () => {
      await nginx?.stop();
      mxcd.server.close();
      homeserver.server.close();
      mxcd.server.closeAllConnections();
      homeserver.server.closeAllConnections();
    });

    it("with upstreamKeepalive, reuses one connection to each upstream", async () => {
      nginx = await startProxy(mxcd, homeserver, true);
      markSuiteRan("nginx");
      const startConnections = mxcd.connections;
      const startRequests = mxcd.requests;
      await getSequentially(nginx.url, MEDIA, 20);
      await getSequentially(nginx.url, HOMESERVER, 5);
      assert.equal(mxcd.requests - startRequests, 20);
      // One worker, sequential requests: one connection (2 leaves room for a reconnect).
      assert.ok(
        mxcd.connections - startConnections <= 2,
        `${mxcd.connections - startConnections} connections to mxcd for 20 requests`,
      );
      assert.ok(homeserver.connections <= 2, `${homeserver.connections} to the homeserver`);
      assert.ok(!mxcd.connectionHeaders.has("close"), [...mxcd.connectionHeaders].join());
      await nginx.stop();
      nginx = undefined;
    });

    it("without it (the default output), opens a connection per request", async () => {
      nginx = await startProxy(mxcd, homeserver, false);
      const startConnections = mxcd.connections;
      await getSequentially(nginx.url, MEDIA, 10);
      assert.equal(mxcd.connections - startConnections, 10);
      assert.ok(mxcd.connectionHeaders.has("close"));
    });
  },
);

describe("nginxUpstreamConfig", () => {
  it("names each upstream with its port, the default one when the URL has none", () => {
    const text = nginxUpstreamConfig({
      mxcd: "http://[::1]:8009",
      homeserver: "https://matrix.internal",
    });
    assert.match(
      text,
      /^upstream mxcd_media \{\n {2}server \[::1\]:8009;\n {2}keepalive 32;\n\}$/m,
    );
    assert.match(text, /^upstream mxcd_homeserver \{\n {2}server matrix\.internal:443;/m);
  });

  it("passes to the upstreams by name, keeping the scheme, with Connection cleared", () => {
    const text = nginxProxyConfig({
      mxcd: "http://127.0.0.1:8009",
      homeserver: "https://127.0.0.1:8448",
      maxUploadSize: 1024,
      upstreamKeepalive: true,
    });
    assert.match(text, /proxy_pass http:\/\/mxcd_media;/);
    assert.match(text, /proxy_pass https:\/\/mxcd_homeserver;/);
    assert.match(text, /^proxy_set_header Connection "";$/m);
    assert.doesNotMatch(text, /127\.0\.0\.1/);
  });
});
