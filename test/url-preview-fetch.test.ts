/**
 * URL-preview fetching under hostile conditions (docs/previews.md,
 * "Fetching"), end to end on SQLite and PostgreSQL:
 * - the bound on concurrent fresh fetches and its bounded queue (429 beyond);
 * - host names that resolve to refused addresses, through a fake resolver
 *   injected into the app (no real DNS), at the page, a redirect, the
 *   og:image and the oEmbed endpoint: refused, and the "refused" listeners
 *   on 127.0.0.1 and ::1 never see a connection;
 * - pages that drip one byte at a time: 502 at `url_preview_timeout`, and the
 *   connection is closed.
 * The origin listens on 127.0.0.2, the only whitelisted address.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { createServer as createTcpServer } from "node:net";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import type { Dns, ResolvedAddress } from "../src/net/dns.js";
import { Semaphore, SemaphoreFullError } from "../src/util/semaphore.js";
import { forEachEngine } from "./support/databases.js";
import { metric } from "./support/metrics.js";
import { startTestServer, type TestServer, type TestUser } from "./support/test-server.js";
import { waitFor } from "./support/wait-for.js";

const ORIGIN_HOST = "127.0.0.2";

/**
 * The fake resolver: names → addresses. Names ending in `.test` only; any
 * other name does not resolve, so no test depends on real DNS.
 */
const DNS_TABLE: Readonly<Record<string, readonly string[]>> = {
  "origin.test": [ORIGIN_HOST],
  "ten.test": ["10.0.0.1"],
  "loop.test": ["127.0.0.1"],
  "loop6.test": ["::1"],
  "linklocal.test": ["fe80::1"],
  "mapped.test": ["::ffff:127.0.0.1"],
  "mapped-ten.test": ["::ffff:10.0.0.1"],
  // Anti-rebinding: the first (allowed) address is the origin itself, so a
  // guard that checked only the first address would connect to it.
  "mixed.test": [ORIGIN_HOST, "127.0.0.1"],
  "mixed6.test": [ORIGIN_HOST, "::1"],
};

const fakeDns: Pick<Dns, "lookup"> = {
  async lookup(hostname) {
    const addresses = DNS_TABLE[hostname.toLowerCase()];
    if (!addresses) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
    }
    return addresses.map(
      (address): ResolvedAddress => ({ address, family: address.includes(":") ? 6 : 4 }),
    );
  },
};

interface Origin {
  server: Server;
  port: number;
  base: string;
  hits: Map<string, number>;
  /** Releases a held `/hold?id=…` response, by id. */
  releases: Map<string, () => void>;
  /** Drip responses whose connection has closed, by id. */
  closed: Set<string>;
}

async function startOrigin(image: Buffer): Promise<Origin> {
  const origin: Origin = {
    server: createServer(),
    port: 0,
    base: "",
    hits: new Map(),
    releases: new Map(),
    closed: new Set(),
  };
  const html = (res: ServerResponse, body: string) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(body);
  };
  const routes: Record<
    string,
    (req: IncomingMessage, res: ServerResponse, q: URLSearchParams) => void
  > = {
    "/og": (_r, res) =>
      html(
        res,
        `<html><head><meta property="og:title" content="Origin page">
          <meta property="og:image" content="/img.png"></head></html>`,
      ),
    "/img.png": (_r, res) => {
      res.writeHead(200, { "content-type": "image/png" });
      res.end(image);
    },
    "/plain": (_r, res, q) => html(res, `<title>plain ${q.get("n") ?? ""}</title>`),
    "/mixed-page": (_r, res) => html(res, "<title>must not be fetched</title>"),
    "/redirect": (_r, res, q) => {
      res.writeHead(302, { location: q.get("to") ?? "/" });
      res.end();
    },
    // A page whose og:image is `img` (absolute).
    "/image-page": (_r, res, q) =>
      html(
        res,
        `<html><head><meta property="og:title" content="With image">
          <meta property="og:image" content="${q.get("img")}"></head></html>`,
      ),
    // A page whose oEmbed autodiscovery link is `oembed` (absolute).
    "/oembed-page": (_r, res, q) =>
      html(
        res,
        `<html><head><title>Page only</title>
          <link rel="alternate" type="application/json+oembed" href="${q.get("oembed")}"></head></html>`,
      ),
    // Held open until the test releases it.
    "/hold": (_r, res, q) => {
      const id = q.get("id") ?? "";
      origin.releases.set(id, () => {
        if (!res.headersSent) html(res, `<title>held ${id}</title>`);
      });
    },
    // One byte every 100 ms, never ending.
    "/drip": (req, res, q) => {
      const id = q.get("id") ?? "";
      res.writeHead(200, { "content-type": "text/html" });
      res.on("error", () => {});
      const timer = setInterval(() => res.write("a"), 100);
      req.socket.once("close", () => {
        clearInterval(timer);
        origin.closed.add(id);
      });
    },
  };
  origin.server.on("request", (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const key =
      url.pathname + (url.searchParams.has("id") ? `?id=${url.searchParams.get("id")}` : "");
    origin.hits.set(key, (origin.hits.get(key) ?? 0) + 1);
    const route = routes[url.pathname];
    if (route) route(req, res, url.searchParams);
    else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => origin.server.listen(0, ORIGIN_HOST, r));
  origin.port = (origin.server.address() as AddressInfo).port;
  origin.base = `http://${ORIGIN_HOST}:${origin.port}`;
  return origin;
}

/** A listener on a refused address: counts the connections it gets (must stay 0). */
async function startRefusedListener(host: string) {
  const listener = { connections: 0, port: 0, close: async () => {} };
  const server = createTcpServer((socket: Socket) => {
    listener.connections += 1;
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  listener.port = (server.address() as AddressInfo).port;
  listener.close = () => new Promise<void>((r) => server.close(() => r()));
  return listener;
}

/**
 * A raw TCP "server" on the origin address that sends a status line and
 * then one byte of a header every 100 ms: the response headers never end.
 */
async function startHeaderDrip() {
  const state = { port: 0, closed: 0, close: async () => {} };
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.write("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Slow: ");
    const timer = setInterval(() => socket.write("a"), 100);
    socket.once("close", () => {
      clearInterval(timer);
      sockets.delete(socket);
      state.closed += 1;
    });
  });
  await new Promise<void>((r) => server.listen(0, ORIGIN_HOST, r));
  state.port = (server.address() as AddressInfo).port;
  state.close = () => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  };
  return state;
}

const BLACKLIST = ["127.0.0.0/8", "10.0.0.0/8", "::1/128", "fc00::/7", "fe80::/10"];

describe("Semaphore with maxWaiting", () => {
  it("refuses a waiter beyond the queue at once, and serves the queued ones", async () => {
    const semaphore = new Semaphore(1, { maxWaiting: 1 });
    const first = await semaphore.acquire();
    const second = semaphore.acquire();
    assert.equal(semaphore.waiting, 1);
    await assert.rejects(semaphore.acquire(), SemaphoreFullError);
    assert.equal(semaphore.waiting, 1);
    first();
    (await second)();
    assert.equal(semaphore.active, 0);
    assert.throws(() => new Semaphore(1, { maxWaiting: -1 }), RangeError);
  });
});

forEachEngine("URL preview fetching", (engine) => {
  let bounded: TestServer;
  let dripping: TestServer;
  let user: TestUser;
  let dripUser: TestUser;
  let origin: Origin;
  let refused: Awaited<ReturnType<typeof startRefusedListener>>;
  let refused6: Awaited<ReturnType<typeof startRefusedListener>>;
  let headerDrip: Awaited<ReturnType<typeof startHeaderDrip>>;

  const previewOn = (u: TestUser, url: string) =>
    u.http.get(`/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`);
  const preview = (url: string) => previewOn(user, url);
  const refusedConnections = () => refused.connections + refused6.connections;

  before(async () => {
    const image = await sharp({
      create: { width: 32, height: 24, channels: 3, background: "green" },
    })
      .png()
      .toBuffer();
    origin = await startOrigin(image);
    refused = await startRefusedListener("127.0.0.1");
    refused6 = await startRefusedListener("::1");
    headerDrip = await startHeaderDrip();
    const previewConfig = {
      url_preview_enabled: true,
      url_preview_ip_range_blacklist: BLACKLIST,
      url_preview_ip_range_whitelist: [`${ORIGIN_HOST}/32`],
    };
    // One fetch at a time, one waiting: the bound test needs nothing more,
    // and every other test here previews one URL at a time.
    bounded = await startTestServer(
      engine,
      {
        ...previewConfig,
        url_preview_timeout: "60s",
        url_preview_max_concurrent_fetches: 1,
        url_preview_fetch_queue_size: 1,
      },
      { appOptions: { dns: fakeDns } },
    );
    dripping = await startTestServer(engine, { ...previewConfig, url_preview_timeout: "1s" });
    user = await bounded.user("fetcher");
    dripUser = await dripping.user("dripper");
  });
  after(async () => {
    for (const release of origin?.releases.values() ?? []) release();
    await bounded?.stop();
    await dripping?.stop();
    await refused?.close();
    await refused6?.close();
    await headerDrip?.close();
    origin?.server.closeAllConnections();
    await new Promise((r) => origin?.server.close(r));
  });

  describe("the bound on concurrent fresh fetches", () => {
    it("queues a second distinct URL, refuses one beyond the queue with 429, and lets the waiter finish", async () => {
      const waiting = () =>
        metric(bounded.baseUrl, "mxcd_waiting_requests", 'kind="url_preview_fetch"');
      const first = preview(`${origin.base}/hold?id=a`);
      await waitFor(() => origin.releases.has("a"), "the first fetch to reach the origin");
      // A request for the URL being fetched joins that fetch: no turn, no queue place.
      const joined = preview(`${origin.base}/hold?id=a`);
      await waitFor(
        async () => (await metric(bounded.baseUrl, "mxcd_url_preview_flight_joins_total")) >= 1,
        "the second request for the same URL to join the fetch",
      );
      assert.equal(await waiting(), 0);
      const second = preview(`${origin.base}/hold?id=b`);
      await waitFor(async () => (await waiting()) === 1, "the second URL to wait for a turn");
      assert.equal(origin.hits.get("/hold?id=b"), undefined, "the waiter has not fetched yet");

      const third = await preview(`${origin.base}/plain?n=third`);
      assert.equal(third.status, 429, third.text);
      assert.equal(third.body.errcode, "M_LIMIT_EXCEEDED");
      assert.equal(typeof third.body.retry_after_ms, "number");
      assert.equal(origin.hits.get("/plain"), undefined, "the refused URL was never fetched");

      origin.releases.get("a")!();
      const [a, aJoined] = await Promise.all([first, joined]);
      assert.equal(a.status, 200);
      assert.equal(a.body["og:title"], "held a");
      assert.deepEqual(aJoined.body, a.body);
      await waitFor(() => origin.releases.has("b"), "the waiter to fetch once the turn is free");
      origin.releases.get("b")!();
      const b = await second;
      assert.equal(b.status, 200);
      assert.equal(b.body["og:title"], "held b");
      assert.equal(await waiting(), 0);

      // The refusal was not cached: the same URL previews now.
      const again = await preview(`${origin.base}/plain?n=third`);
      assert.equal(again.status, 200, again.text);
    });
  });

  describe("host names that resolve to refused addresses", () => {
    it("refuses every name with a refused address, without connecting", async () => {
      const failures = () =>
        metric(bounded.baseUrl, "mxcd_url_preview_fetch_failures_total", 'kind="ip_blacklist"');
      const before = await failures();
      const urls = [
        `http://ten.test:${refused.port}/`,
        `http://loop.test:${refused.port}/`,
        `http://loop6.test:${refused6.port}/`,
        `http://linklocal.test:${refused6.port}/`,
        `http://mapped.test:${refused.port}/`,
        `http://mapped-ten.test:${refused.port}/`,
        `http://mixed.test:${origin.port}/mixed-page`,
        `http://mixed6.test:${origin.port}/mixed-page`,
      ];
      for (const url of urls) {
        const res = await preview(url);
        assert.equal(res.status, 403, `${url}: ${res.text}`);
        assert.equal(res.body.errcode, "M_FORBIDDEN", url);
        assert.equal(res.body.error, "IP address blocked", url);
      }
      assert.equal(refusedConnections(), 0);
      assert.equal(
        origin.hits.get("/mixed-page"),
        undefined,
        "no connection to the allowed address either",
      );
      assert.equal((await failures()) - before, urls.length);
    });

    it("previews a name that resolves to the whitelisted origin", async () => {
      const res = await preview(`http://origin.test:${origin.port}/og`);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body["og:title"], "Origin page");
      assert.match(String(res.body["og:image"]), /^mxc:\/\//);
    });

    it("refuses a redirect to such a name without connecting", async () => {
      for (const target of [
        `http://loop.test:${refused.port}/`,
        `http://mixed.test:${origin.port}/mixed-page`,
      ]) {
        const res = await preview(`${origin.base}/redirect?to=${encodeURIComponent(target)}`);
        assert.equal(res.status, 403, res.text);
        assert.equal(res.body.error, "IP address blocked");
      }
      assert.equal(refusedConnections(), 0);
      assert.equal(origin.hits.get("/mixed-page"), undefined);
    });

    it("serves the page without an og:image whose host resolves to a refused address", async () => {
      for (const img of [
        `http://loop.test:${refused.port}/i.png`,
        `http://loop6.test:${refused6.port}/i.png`,
        `http://mixed.test:${origin.port}/img.png`,
      ]) {
        const res = await preview(`${origin.base}/image-page?img=${encodeURIComponent(img)}`);
        assert.equal(res.status, 200, res.text);
        assert.equal(res.body["og:title"], "With image");
        assert.equal(res.body["og:image"], undefined, img);
      }
      assert.equal(refusedConnections(), 0);
      assert.equal(
        origin.hits.get("/img.png") ?? 0,
        1,
        "only the origin.test preview fetched the image",
      );
    });

    it("ignores an oEmbed endpoint whose host resolves to a refused address", async () => {
      const oembed = `http://loop.test:${refused.port}/oembed.json`;
      const res = await preview(`${origin.base}/oembed-page?oembed=${encodeURIComponent(oembed)}`);
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.body, { "og:title": "Page only" });
      assert.equal(refusedConnections(), 0);
    });
  });

  describe("slow drip", () => {
    it("a body that drips one byte at a time is a 502 at the timeout, and its connection is closed", async () => {
      const res = await previewOn(dripUser, `${origin.base}/drip?id=body`);
      assert.equal(res.status, 502, res.text);
      assert.equal(res.body.errcode, "M_UNKNOWN");
      assert.equal(res.body.error, "Fetching the URL took too long");
      await waitFor(() => origin.closed.has("body"), "the dripping connection to close");
    });

    it("headers that drip one byte at a time are a 502 at the timeout, and the connection is closed", async () => {
      const res = await previewOn(dripUser, `http://${ORIGIN_HOST}:${headerDrip.port}/`);
      assert.equal(res.status, 502, res.text);
      assert.equal(res.body.errcode, "M_UNKNOWN");
      assert.equal(res.body.error, "Fetching the URL took too long");
      await waitFor(() => headerDrip.closed === 1, "the dripping connection to close");
    });
  });
});
