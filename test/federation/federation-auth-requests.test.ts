import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { MatrixError } from "../../src/domain/matrix-error.js";
import {
  FederationAuth,
  type InboundFederationRequest,
} from "../../src/federation/federation-auth.js";
import { KeyRing, type ServerKeyFetcher } from "../../src/federation/key-ring.js";
import { ServerKeys } from "../../src/federation/server-keys.js";
import { generateSigningKey, type SigningKey } from "../../src/federation/signing-key.js";
import { buildXMatrixHeader, RequestSigner } from "../../src/federation/x-matrix.js";
import { requireFederationOrigin } from "../../src/http/federation-auth-hook.js";
import { createMetricsRegistry } from "../../src/http/http-metrics.js";
import { createHttpServer } from "../../src/http/http-server.js";
import { createLogger } from "../../src/logging/logger.js";

const LOCAL = "local.example";
const REMOTE = "remote.example";
const URI = "/_matrix/federation/v1/media/download/abc?timeout_ms=20000";

/** A world with one remote server whose key document a fake fetcher serves. */
function setup() {
  const clock = { now: Date.now() };
  const remoteKey = generateSigningKey();
  const state = { validityMs: 24 * 3_600_000, calls: 0, key: remoteKey };
  const fetcher: ServerKeyFetcher = {
    async fetchServerKeys(serverName) {
      state.calls++;
      if (serverName !== REMOTE) throw new Error("unreachable");
      const keys = new ServerKeys({
        serverName: REMOTE,
        signingKey: () => state.key,
        oldKeys: {},
        validityMs: state.validityMs,
        now: () => clock.now,
      });
      return keys.document();
    },
    queryNotary: () => Promise.reject(new Error("no notary")),
  };
  const keyRing = new KeyRing({ fetcher, now: () => clock.now, retryIntervalMs: 1_000 });
  const auth = new FederationAuth(LOCAL, keyRing);
  const signer = new RequestSigner(REMOTE, () => state.key);
  return { clock, state, auth, signer, remoteKey };
}

function signed(signer: RequestSigner, method: string, uri: string, body?: unknown) {
  return {
    method,
    uri,
    headers: { authorization: signer.authorizationHeader(method, uri, LOCAL, body) },
    body,
  };
}

async function rejects(auth: FederationAuth, request: InboundFederationRequest, message: RegExp) {
  await assert.rejects(auth.authenticate(request), (error: unknown) => {
    assert.ok(error instanceof MatrixError);
    assert.equal(error.errcode, "M_UNAUTHORIZED");
    assert.equal(error.status, 401);
    assert.match(error.message, message);
    return true;
  });
}

describe("FederationAuth", () => {
  it("accepts a request signed by the origin's current key", async () => {
    const { auth, signer } = setup();
    assert.equal(await auth.authenticate(signed(signer, "GET", URI)), REMOTE);
    const body = { media: ["a"], n: 1 };
    assert.equal(await auth.authenticate(signed(signer, "POST", "/_matrix/x", body)), REMOTE);
  });

  it("accepts a header without destination (senders before v1.3)", async () => {
    const { auth, signer } = setup();
    const header = signed(signer, "GET", URI).headers.authorization.replace(
      `destination="${LOCAL}",`,
      "",
    );
    assert.doesNotMatch(header, /destination/);
    assert.equal(
      await auth.authenticate({ method: "GET", uri: URI, headers: { authorization: header } }),
      REMOTE,
    );
  });

  it("refuses a missing header, another scheme, or a header without sig", async () => {
    const { auth } = setup();
    const missing = /Missing Authorization headers/;
    await rejects(auth, { method: "GET", uri: URI, headers: {} }, missing);
    await rejects(auth, { method: "GET", uri: URI, headers: { authorization: [] } }, missing);
    await rejects(
      auth,
      { method: "GET", uri: URI, headers: { authorization: "Bearer x" } },
      missing,
    );
    const noSig = `X-Matrix origin="${REMOTE}",destination="${LOCAL}",key="ed25519:a"`;
    await rejects(auth, { method: "GET", uri: URI, headers: { authorization: noSig } }, missing);
  });

  it("refuses malformed headers and invalid origins without fetching", async () => {
    const { auth, state } = setup();
    const bad = [
      `X-Matrix origin="${REMOTE}`,
      'X-Matrix origin="evil/../x",key="ed25519:a",sig="c2ln"',
      'X-Matrix origin="",key="ed25519:a",sig="c2ln"',
    ];
    for (const authorization of bad) {
      await rejects(
        auth,
        { method: "GET", uri: URI, headers: { authorization } },
        /Malformed|Missing/,
      );
    }
    assert.equal(state.calls, 0);
  });

  it("refuses a request addressed to another server", async () => {
    const { auth, signer } = setup();
    const uri = URI;
    const authorization = signer.authorizationHeader("GET", uri, "elsewhere.example");
    await rejects(auth, { method: "GET", uri, headers: { authorization } }, /Destination mismatch/);
  });

  it("refuses a tampered method, uri or body", async () => {
    const { auth, signer } = setup();
    const get = signed(signer, "GET", URI);
    const invalid = /Invalid signature/;
    await rejects(auth, { ...get, method: "POST" }, invalid);
    await rejects(auth, { ...get, uri: URI.replace("20000", "20001") }, invalid);
    await rejects(auth, { ...get, uri: `${URI}&x=1` }, invalid);
    await rejects(auth, { ...get, body: { a: 1 } }, invalid);
    const post = signed(signer, "POST", "/_matrix/x", { a: 1 });
    await rejects(auth, { ...post, body: { a: 2 } }, invalid);
    await rejects(auth, { ...post, body: undefined }, invalid);
    await rejects(auth, { ...post, body: { a: 1.5 } }, invalid);
  });

  it("refetches for an unknown key id, then refuses", async () => {
    const { auth, clock, state, signer } = setup();
    await auth.authenticate(signed(signer, "GET", URI));
    assert.equal(state.calls, 1);
    const stranger = generateSigningKey();
    const other = new RequestSigner(REMOTE, () => ({ ...stranger, keyId: "ed25519:unknown" }));
    clock.now += 1_000; // past the key ring's quiet period, so this lookup fetches
    await rejects(auth, signed(other, "GET", URI), /Failed to find key ed25519:unknown/);
    assert.equal(state.calls, 2);
  });

  it("refuses a key whose document has expired", async () => {
    const { auth, state, signer } = setup();
    state.validityMs = -1;
    await rejects(auth, signed(signer, "GET", URI), /Failed to find key/);
  });

  it("refuses a signature by a key the origin does not publish", async () => {
    const { auth, signer, state } = setup();
    await auth.authenticate(signed(signer, "GET", URI));
    const impostor: SigningKey = { ...generateSigningKey(), keyId: state.key.keyId };
    const forger = new RequestSigner(REMOTE, () => impostor);
    await rejects(auth, signed(forger, "GET", URI), /Invalid signature/);
  });

  it("accepts if any of several Authorization headers verifies", async () => {
    const { auth, signer, state } = setup();
    const good = signer.authorizationHeader("GET", URI, LOCAL);
    const bad = buildXMatrixHeader({
      origin: REMOTE,
      destination: LOCAL,
      key: state.key.keyId,
      sig: "c2ln",
    });
    const headers = { authorization: ["Bearer token", bad, good] };
    assert.equal(await auth.authenticate({ method: "GET", uri: URI, headers }), REMOTE);
    await rejects(
      auth,
      { method: "GET", uri: URI, headers: { authorization: [bad, bad] } },
      /Invalid/,
    );
  });
});

describe("requireFederationOrigin over HTTP", () => {
  const world = setup();
  const http = createHttpServer({
    logger: createLogger("silent"),
    metrics: createMetricsRegistry(),
  });
  let port = 0;

  before(async () => {
    for (const method of ["GET", "POST"] as const) {
      http.route({
        method,
        url: "/_matrix/federation/v1/test/:id",
        handler: async (request) => ({
          origin: await requireFederationOrigin(world.auth, request),
        }),
      });
    }
    await http.listen({ host: "127.0.0.1", port: 0 });
    port = (http.server.address() as AddressInfo).port;
  });
  after(() => http.close());

  /** Sends the path byte for byte (fetch would normalise it) with every header given. */
  function send(method: string, path: string, authorization: string[], body?: string) {
    return new Promise<{ status: number; body: any }>((resolve, reject) => {
      const headers: Record<string, string | string[]> = { authorization };
      if (body !== undefined) headers["content-type"] = "application/json";
      const req = httpRequest({ host: "127.0.0.1", port, method, path, headers }, (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => {
          text += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  it("verifies the raw uri as sent, query order and escapes included", async () => {
    const path = "/_matrix/federation/v1/test/a%2Fb?z=1&a=%7E&a=2";
    const header = world.signer.authorizationHeader("GET", path, LOCAL);
    const ok = await send("GET", path, [header]);
    assert.deepEqual(ok, { status: 200, body: { origin: REMOTE } });
    const decoded = world.signer.authorizationHeader("GET", path.replace("%7E", "~"), LOCAL);
    const refused = await send("GET", path, [decoded]);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.errcode, "M_UNAUTHORIZED");
  });

  it("signs the parsed JSON body and reads every Authorization header", async () => {
    const path = "/_matrix/federation/v1/test/x";
    const body = { b: [1, 2], a: "é" };
    const good = world.signer.authorizationHeader("POST", path, LOCAL, body);
    const wrong = world.signer.authorizationHeader("POST", path, LOCAL, { other: true });
    const res = await send("POST", path, [wrong, good], JSON.stringify(body));
    assert.deepEqual(res, { status: 200, body: { origin: REMOTE } });
    const refused = await send("POST", path, [wrong], JSON.stringify(body));
    assert.equal(refused.status, 401);
  });

  it("answers 401 M_UNAUTHORIZED without a header", async () => {
    const res = await send("GET", "/_matrix/federation/v1/test/x", []);
    assert.equal(res.status, 401);
    assert.deepEqual(res.body, {
      errcode: "M_UNAUTHORIZED",
      error: "Missing Authorization headers",
    });
  });
});
