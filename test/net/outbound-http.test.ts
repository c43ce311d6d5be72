/**
 * OutboundHttp against real servers on 127.0.0.1 (never any other address):
 * the address policy, size caps, timeouts, typed errors and TLS names.
 */
import assert from "node:assert/strict";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Server } from "node:net";
import { after, describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import type { Dns, ResolvedAddress } from "../../src/net/dns.js";
import { addressPolicy, SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST } from "../../src/net/ip-ranges.js";
import { readAll } from "../../src/net/json-response.js";
import {
  ConnectError,
  DnsLookupError,
  ForbiddenAddressError,
  HttpStatusError,
  InvalidJsonResponseError,
  OutboundTimeoutError,
  ResponseTooLargeError,
} from "../../src/net/outbound-errors.js";
import { OutboundHttp, type OutboundHttpOptions } from "../../src/net/outbound-http.js";
import { TEST_CERT, TEST_KEY } from "./tls-fixture.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface TestServer {
  readonly port: number;
  /** Requests the server received, in order. */
  readonly seen: IncomingMessage[];
  connections: number;
}

const servers: Server[] = [];
const clients: OutboundHttp[] = [];
after(() => {
  for (const client of clients) client.close();
  for (const server of servers) {
    (server as import("node:http").Server).closeAllConnections();
    server.close();
  }
});

/** Starts a loopback HTTP (or HTTPS) server running `handler`. */
async function serve(handler: Handler, tls = false): Promise<TestServer> {
  const server = tls ? createHttpsServer({ key: TEST_KEY, cert: TEST_CERT }) : createHttpServer();
  const state: TestServer = { port: 0, seen: [], connections: 0 };
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    state.seen.push(req);
    handler(req, res);
  });
  server.on(tls ? "secureConnection" : "connection", () => state.connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return Object.assign(state, { port: (server.address() as AddressInfo).port });
}

const LOOPBACK_OK = addressPolicy(SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST, ["127.0.0.0/8"]);
const DEFAULT_POLICY = addressPolicy(SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST, []);

function client(options: Partial<OutboundHttpOptions> = {}): OutboundHttp {
  const http = new OutboundHttp({ policy: LOOPBACK_OK, defaultTimeoutMs: 5_000, ...options });
  clients.push(http);
  return http;
}

/** A Dns whose names all resolve from `table` (never the network). */
function fakeDns(table: Record<string, ResolvedAddress[]>): Pick<Dns, "lookup"> {
  return {
    async lookup(hostname) {
      const found = table[hostname];
      if (!found) throw Object.assign(new Error(`no ${hostname}`), { code: "ENOTFOUND" });
      return found;
    },
  };
}

const ok: Handler = (_req, res) => res.end("hello");

describe("OutboundHttp address policy", () => {
  it("refuses a loopback server by default; the server sees nothing", async () => {
    const server = await serve(ok);
    const http = client({ policy: DEFAULT_POLICY });
    const url = `http://127.0.0.1:${server.port}/x`;
    await assert.rejects(http.request({ url, maxBytes: 100 }), ForbiddenAddressError);
    assert.equal(server.seen.length, 0);
    assert.equal(server.connections, 0);
  });

  it("reaches it when 127.0.0.0/8 is whitelisted", async () => {
    const server = await serve(ok);
    const response = await client().request({
      url: `http://127.0.0.1:${server.port}/x`,
      maxBytes: 100,
    });
    assert.equal(response.status, 200);
    assert.equal((await readAll(response.body)).toString(), "hello");
  });

  it("refuses IP literals in every spelling the URL parser accepts", async () => {
    const server = await serve(ok);
    const http = client({ policy: DEFAULT_POLICY });
    for (const host of ["[::1]", "[::ffff:127.0.0.1]", "0x7f.1", "2130706433", "0.0.0.0", "[::]"]) {
      const url = `http://${host}:${server.port}/`;
      await assert.rejects(http.request({ url, maxBytes: 100 }), ForbiddenAddressError, host);
    }
    assert.equal(server.seen.length, 0);
  });

  it("refuses a host name that resolves to a blocked address", async () => {
    const server = await serve(ok);
    const dns = fakeDns({
      "evil.test": [{ address: "127.0.0.1", family: 4 }],
      "mixed.test": [
        { address: "127.0.0.1", family: 4 },
        { address: "::ffff:10.0.0.1", family: 6 },
      ],
    });
    const strict = client({ policy: DEFAULT_POLICY, dns });
    for (const host of ["evil.test", "mixed.test"]) {
      const error = await strict
        .request({ url: `http://${host}:${server.port}/`, maxBytes: 100 })
        .catch((e) => e);
      assert.ok(error instanceof ForbiddenAddressError, String(error));
      assert.equal(error.target, host);
    }
    // One forbidden address refuses the host, even when another is allowed.
    const loopbackOnly = client({ dns });
    await assert.rejects(
      loopbackOnly.request({ url: `http://mixed.test:${server.port}/`, maxBytes: 100 }),
      ForbiddenAddressError,
    );
    assert.equal(server.seen.length, 0);
  });

  it("refuses localhost through the system resolver", async () => {
    const server = await serve(ok);
    const http = client({ policy: DEFAULT_POLICY });
    const url = `http://localhost:${server.port}/`;
    await assert.rejects(http.request({ url, maxBytes: 100 }), ForbiddenAddressError);
    assert.equal(server.seen.length, 0);
  });

  it("connects to the checked address and sends the Host header", async () => {
    const server = await serve(ok);
    const http = client({ dns: fakeDns({ "remote.test": [{ address: "127.0.0.1", family: 4 }] }) });
    const url = `http://remote.test:${server.port}/a`;
    await readAll((await http.request({ url, maxBytes: 100 })).body);
    await readAll((await http.request({ url, maxBytes: 100, hostHeader: "example.org" })).body);
    assert.equal(server.seen[0]!.headers.host, `remote.test:${server.port}`);
    assert.equal(server.seen[1]!.headers.host, "example.org");
    assert.equal(server.connections, 1, "the keep-alive agent reuses the connection");
  });
});

describe("OutboundHttp errors", () => {
  it("DnsLookupError for a name that does not resolve", async () => {
    const http = client({ dns: fakeDns({ "empty.test": [] }) });
    for (const host of ["nowhere.test", "empty.test"]) {
      const request = http.request({ url: `http://${host}/`, maxBytes: 100 });
      await assert.rejects(request, DnsLookupError);
    }
  });

  it("ConnectError for a refused connection", async () => {
    const server = await serve(ok);
    const port = server.port;
    const closing = servers.pop() as import("node:http").Server;
    await new Promise((resolve) => closing.close(resolve));
    const error = await client()
      .request({ url: `http://127.0.0.1:${port}/`, maxBytes: 1 })
      .catch((e) => e);
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(error.code, "ECONNREFUSED");
  });

  it("OutboundTimeoutError when the server never answers", async () => {
    const server = await serve(() => {});
    const request = client().request({
      url: `http://127.0.0.1:${server.port}/`,
      maxBytes: 1,
      timeoutMs: 200,
    });
    const error = await request.catch((e) => e);
    assert.ok(error instanceof OutboundTimeoutError, String(error));
    assert.equal(error.phase, "headers");
  });

  it("OutboundTimeoutError when the body stalls", async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial");
    });
    const url = `http://127.0.0.1:${server.port}/`;
    const response = await client().request({ url, maxBytes: 1000, idleTimeoutMs: 200 });
    const error = await readAll(response.body).catch((e) => e);
    assert.ok(error instanceof OutboundTimeoutError, String(error));
    assert.equal(error.phase, "body");
  });

  it("ConnectError when the connection drops mid-body", async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { "content-length": "100" });
      res.write("partial", () => res.socket?.destroy());
    });
    const response = await client().request({
      url: `http://127.0.0.1:${server.port}/`,
      maxBytes: 1000,
    });
    await assert.rejects(readAll(response.body), ConnectError);
  });

  it("rejects with the signal's reason when aborted", async () => {
    const controller = new AbortController();
    // Abort once the server holds the request (it never answers): the
    // request is then surely in flight, waiting for headers.
    const server = await serve(() => controller.abort(new Error("caller gave up")));
    const url = `http://127.0.0.1:${server.port}/`;
    const request = client().request({ url, maxBytes: 1, signal: controller.signal });
    await assert.rejects(request, /caller gave up/);
    assert.equal(server.seen.length, 1);
  });
});

describe("OutboundHttp size caps", () => {
  it("fails before reading when Content-Length is over the cap", async () => {
    const server = await serve((_req, res) => res.end(Buffer.alloc(1000)));
    const error = await client()
      .request({ url: `http://127.0.0.1:${server.port}/`, maxBytes: 999 })
      .catch((e) => e);
    assert.ok(error instanceof ResponseTooLargeError, String(error));
    assert.equal(error.declared, 1000);
  });

  it("errors the stream once more than maxBytes arrive", async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200); // chunked: no length declared
      for (let i = 0; i < 10; i++) res.write(Buffer.alloc(100));
      res.end();
    });
    const url = `http://127.0.0.1:${server.port}/`;
    const response = await client().request({ url, maxBytes: 250 });
    const error = await readAll(response.body).catch((e) => e);
    assert.ok(error instanceof ResponseTooLargeError, String(error));
    const exact = await client().request({ url, maxBytes: 1000 });
    assert.equal((await readAll(exact.body)).length, 1000);
  });
  it("does not time out a slow consumer while the server waits on backpressure", async () => {
    const server = await serve((_req, res) => res.end(Buffer.alloc(4 * 1024 * 1024)));
    const url = `http://127.0.0.1:${server.port}/`;
    const response = await client().request({ url, maxBytes: 8 * 1024 * 1024, idleTimeoutMs: 100 });
    let total = 0;
    for await (const chunk of response.body) {
      // The stall itself is what is tested (longer than idleTimeoutMs while
      // the server waits on backpressure), not a wait for a condition.
      if (total === 0) await new Promise((resolve) => setTimeout(resolve, 300));
      total += (chunk as Buffer).length;
    }
    assert.equal(total, 4 * 1024 * 1024);
  });
});

describe("OutboundHttp requests", () => {
  it("returns redirects instead of following them", async () => {
    const server = await serve((_req, res) =>
      res.writeHead(302, { location: "http://10.0.0.1/" }).end(),
    );
    const response = await client().request({
      url: `http://127.0.0.1:${server.port}/`,
      maxBytes: 100,
    });
    assert.equal(response.status, 302);
    assert.equal(response.headers.location, "http://10.0.0.1/");
    response.body.destroy();
    assert.equal(server.seen.length, 1);
  });

  it("sends `path` exactly as given", async () => {
    const server = await serve(ok);
    const path = "/a/../b%2Fc/%E2%9C%93?x=%20&y=a/../b";
    const response = await client().request({
      url: `http://127.0.0.1:${server.port}/ignored`,
      path,
      maxBytes: 100,
    });
    await readAll(response.body);
    assert.equal(server.seen[0]!.url, path);
  });

  it("getJson parses JSON and types the failures", async () => {
    const server = await serve((req, res) => {
      if (req.url === "/ok") res.end('{"a":1}');
      else if (req.url === "/missing") res.writeHead(404).end('{"errcode":"M_NOT_FOUND"}');
      else if (req.url === "/html") res.end("<html>");
      else res.end(JSON.stringify({ big: "x".repeat(2 * 1024 * 1024) }));
    });
    const http = client();
    const base = `http://127.0.0.1:${server.port}`;
    assert.deepEqual((await http.getJson({ url: `${base}/ok` })).json, { a: 1 });
    const missing = await http.getJson({ url: `${base}/missing` }).catch((e) => e);
    assert.ok(missing instanceof HttpStatusError);
    assert.equal(missing.status, 404);
    assert.equal(missing.errcode, "M_NOT_FOUND");
    await assert.rejects(http.getJson({ url: `${base}/html` }), InvalidJsonResponseError);
    await assert.rejects(http.getJson({ url: `${base}/big` }), ResponseTooLargeError);
  });
});

describe("OutboundHttp TLS", () => {
  const dns = fakeDns({ "remote.test": [{ address: "127.0.0.1", family: 4 }] });

  it("verifies certificates by default", async () => {
    const server = await serve(ok, true);
    const url = `https://127.0.0.1:${server.port}/`;
    const error = await client()
      .request({ url, maxBytes: 100 })
      .catch((e) => e);
    assert.ok(error instanceof ConnectError, String(error));
    assert.equal(server.seen.length, 0);
    const unverified = client({ verifyCertificates: false });
    assert.equal((await unverified.request({ url, maxBytes: 100 })).status, 200);
  });

  it("sends tlsServerName as SNI and checks the certificate against it", async () => {
    const server = await serve(
      (req, res) => res.end(String((req.socket as TLSSocket).servername)),
      true,
    );
    const http = client({ ca: TEST_CERT, dns });
    const url = `https://remote.test:${server.port}/`;
    const named = await http.request({ url, maxBytes: 100 });
    assert.equal((await readAll(named.body)).toString(), "remote.test");
    const bySrv = await http.request({
      url: `https://127.0.0.1:${server.port}/`,
      tlsServerName: "remote.test",
      maxBytes: 100,
    });
    assert.equal((await readAll(bySrv.body)).toString(), "remote.test");
    const wrongName = http.request({ url, tlsServerName: "other.test", maxBytes: 100 });
    await assert.rejects(wrongName, ConnectError);
  });

  it("sends no SNI to an IP and checks the certificate against the IP", async () => {
    const server = await serve(
      (req, res) => res.end(String((req.socket as TLSSocket).servername)),
      true,
    );
    const http = client({ ca: TEST_CERT });
    const response = await http.request({
      url: `https://127.0.0.1:${server.port}/`,
      maxBytes: 100,
      hostHeader: "127.0.0.1",
    });
    assert.equal((await readAll(response.body)).toString(), "false");
  });
});
