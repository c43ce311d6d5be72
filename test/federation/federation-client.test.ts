/**
 * FederationClient end to end against loopback servers: discovery, Host,
 * SNI, the X-Matrix header from an injected signer, and the address policy.
 */
import assert from "node:assert/strict";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import type { TLSSocket } from "node:tls";
import {
  FederationClient,
  type FederationRequestSigner,
} from "../../src/federation/federation-client.js";
import { ServerResolver, type WellKnownFetcher } from "../../src/federation/server-resolver.js";
import { addressPolicy, SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST } from "../../src/net/ip-ranges.js";
import { readAll } from "../../src/net/json-response.js";
import { ForbiddenAddressError, HttpStatusError } from "../../src/net/outbound-errors.js";
import { OutboundHttp } from "../../src/net/outbound-http.js";
import { TEST_CERT, TEST_KEY } from "../net/tls-fixture.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const servers: Server[] = [];
const clients: OutboundHttp[] = [];
after(() => {
  for (const client of clients) client.close();
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

/** A loopback server that records what it received and answers with `handler`. */
async function serve(handler: Handler, tls = false) {
  const seen: IncomingMessage[] = [];
  const server: Server = tls
    ? createHttpsServer({ key: TEST_KEY, cert: TEST_CERT })
    : createHttpServer();
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    seen.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return { seen, port: (server.address() as AddressInfo).port };
}

/** A signer that records its calls and returns a recognisable header. */
function recordingSigner() {
  const calls: unknown[][] = [];
  const signer: FederationRequestSigner = {
    authorizationHeader(...args: [string, string, string, unknown?]) {
      calls.push(args);
      return `X-Matrix origin="us.test",destination="${args[2]}",key="ed25519:1",sig="${args[1]}"`;
    },
  };
  return { signer, calls };
}

const noWellKnown: WellKnownFetcher = {
  fetch: async () => ({ server: undefined, cacheMs: undefined }),
};

function federationClient(options: {
  customResolvers?: Record<string, string>;
  whitelist?: string[];
  signer: FederationRequestSigner;
}) {
  const outbound = new OutboundHttp({
    policy: addressPolicy(SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST, options.whitelist ?? ["127.0.0.0/8"]),
    defaultTimeoutMs: 5_000,
    ca: TEST_CERT,
    dns: { lookup: async () => [{ address: "127.0.0.1", family: 4 }] },
  });
  clients.push(outbound);
  const resolver = new ServerResolver({
    dns: { resolveSrv: async () => [] },
    wellKnown: noWellKnown,
    customResolvers: options.customResolvers,
  });
  return new FederationClient({
    resolver,
    http: outbound,
    signer: options.signer,
    timeoutMs: 5_000,
  });
}

const PATH = "/_matrix/federation/v1/media/download/abc%2Fdef?timeout_ms=20000&x=%E2%9C%93";

describe("FederationClient", () => {
  it("reaches a custom-resolved loopback server with Host and a signature over the exact target", async () => {
    const server = await serve((_req, res) => res.end("bytes"));
    const { signer, calls } = recordingSigner();
    const client = federationClient({
      signer,
      customResolvers: { "remote.test": `http://127.0.0.1:${server.port}` },
    });
    const response = await client.get("remote.test", PATH, { maxBytes: 100 });
    assert.equal(response.status, 200);
    assert.equal((await readAll(response.body)).toString(), "bytes");
    const req = server.seen[0]!;
    assert.equal(req.method, "GET");
    assert.equal(req.url, PATH);
    assert.equal(req.headers.host, `127.0.0.1:${server.port}`);
    assert.deepEqual(calls, [["GET", PATH, "remote.test"]]);
    assert.equal(req.headers.authorization, signer.authorizationHeader("GET", PATH, "remote.test"));
  });

  it("uses discovery's Host header and TLS name (spec §4.5 step 2)", async () => {
    const server = await serve(
      (req, res) => res.end(String((req.socket as TLSSocket).servername)),
      true,
    );
    const { signer } = recordingSigner();
    const client = federationClient({ signer });
    const destination = `remote.test:${server.port}`;
    const response = await client.get(destination, "/_matrix/federation/v1/version", {
      maxBytes: 100,
    });
    assert.equal((await readAll(response.body)).toString(), "remote.test", "SNI");
    assert.equal(server.seen[0]!.headers.host, destination);
    assert.match(String(server.seen[0]!.headers.authorization), /^X-Matrix /);
  });

  it("sends no Authorization header when signed is false", async () => {
    const server = await serve((_req, res) => res.end("{}"));
    const { signer, calls } = recordingSigner();
    const client = federationClient({
      signer,
      customResolvers: { "remote.test": `http://127.0.0.1:${server.port}` },
    });
    await client.getJson("remote.test", "/_matrix/key/v2/server", { signed: false });
    assert.equal(server.seen[0]!.headers.authorization, undefined);
    assert.deepEqual(calls, []);
  });

  it("getJson parses the answer and types an error answer", async () => {
    const server = await serve((req, res) => {
      if (req.url === "/ok") res.end('{"server":{"name":"x"}}');
      else res.writeHead(404).end('{"errcode":"M_UNRECOGNIZED","error":"no"}');
    });
    const { signer } = recordingSigner();
    const client = federationClient({
      signer,
      customResolvers: { "remote.test": `http://127.0.0.1:${server.port}` },
    });
    assert.deepEqual((await client.getJson("remote.test", "/ok")).json, { server: { name: "x" } });
    const error = await client.getJson("remote.test", "/missing").catch((e) => e);
    assert.ok(error instanceof HttpStatusError);
    assert.equal(error.status, 404);
    assert.equal(error.errcode, "M_UNRECOGNIZED");
  });

  it("refuses malformed request targets before signing", async () => {
    const { signer, calls } = recordingSigner();
    const client = federationClient({
      signer,
      customResolvers: { "remote.test": "http://127.0.0.1:1" },
    });
    for (const path of ["relative", "/a b", "/a#frag", "/a\r\nx: y", "http://x/"]) {
      await assert.rejects(client.get("remote.test", path, { maxBytes: 1 }), TypeError, path);
    }
    assert.deepEqual(calls, []);
  });

  it("applies the address policy to custom-resolved servers too", async () => {
    const server = await serve((_req, res) => res.end());
    const { signer } = recordingSigner();
    const client = federationClient({
      signer,
      whitelist: [],
      customResolvers: { "remote.test": `http://127.0.0.1:${server.port}` },
    });
    await assert.rejects(client.get("remote.test", "/x", { maxBytes: 1 }), ForbiddenAddressError);
    assert.equal(server.seen.length, 0);
  });
});
