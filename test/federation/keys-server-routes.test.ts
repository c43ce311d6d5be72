import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ConfigError, parseConfigText } from "../../src/config/load-config.js";
import {
  ed25519PublicKeyFromBase64,
  verifyJsonSignature,
} from "../../src/federation/json-signing.js";
import { parseXMatrixHeader, requestJson } from "../../src/federation/x-matrix.js";
import { startTestServer, TEST_SERVER_NAME, type TestServer } from "../support/test-server.js";

const OLD_KEY = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";

describe("GET /_matrix/key/v2/server", () => {
  let server: TestServer;
  const keyPath = join(mkdtempSync(join(tmpdir(), "mxcd-keys-")), "keys", "signing.key");

  before(async () => {
    server = await startTestServer("sqlite", {
      signing_key_path: keyPath,
      key_refresh_interval: "2h",
      old_signing_keys: { "ed25519:old": { key: OLD_KEY, expired_ts: 1_600_000_000_000 } },
    });
  });
  after(() => server.stop());

  it("serves a self-signed document valid for key_refresh_interval", async () => {
    const before = Date.now();
    const res = await server.http.get("/_matrix/key/v2/server");
    assert.equal(res.status, 200);
    const doc = res.body;
    assert.equal(doc.server_name, TEST_SERVER_NAME);
    const keyIds = Object.keys(doc.verify_keys);
    assert.equal(keyIds.length, 1);
    const keyId = keyIds[0]!;
    assert.match(keyId, /^ed25519:a_[A-Za-z0-9]{4}$/);
    const publicKey = ed25519PublicKeyFromBase64(doc.verify_keys[keyId].key)!;
    assert.ok(verifyJsonSignature(doc, TEST_SERVER_NAME, keyId, publicKey));
    assert.deepEqual(Object.keys(doc.signatures[TEST_SERVER_NAME]), [keyId]);
    assert.ok(doc.valid_until_ts >= before + 2 * 3_600_000);
    assert.ok(doc.valid_until_ts <= Date.now() + 2 * 3_600_000);
    assert.deepEqual(doc.old_verify_keys, {
      "ed25519:old": { key: OLD_KEY, expired_ts: 1_600_000_000_000 },
    });
    assert.ok(existsSync(keyPath), "the key file was created at start");
  });

  it("answers the same key at /server/ and /server/{keyId}", async () => {
    const base = (await server.http.get("/_matrix/key/v2/server")).body;
    for (const path of ["/_matrix/key/v2/server/", "/_matrix/key/v2/server/ed25519:other"]) {
      const res = await server.http.get(path);
      assert.equal(res.status, 200, path);
      assert.deepEqual(res.body.verify_keys, base.verify_keys, path);
    }
  });

  it("answers unknown key paths and methods with M_UNRECOGNIZED", async () => {
    const unknown = await server.http.get("/_matrix/key/v2/unknown");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.errcode, "M_UNRECOGNIZED");
    const wrongMethod = await server.http.put("/_matrix/key/v2/server", {});
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.body.errcode, "M_UNRECOGNIZED");
  });

  it("signs outbound requests with the published key", async () => {
    const doc = (await server.http.get("/_matrix/key/v2/server")).body;
    const uri = "/_matrix/federation/v1/media/download/abc?timeout_ms=20000";
    const header = server.app.signer.authorizationHeader("get", uri, "remote.example");
    const credentials = parseXMatrixHeader(header)!;
    assert.equal(credentials.origin, TEST_SERVER_NAME);
    assert.equal(credentials.destination, "remote.example");
    assert.ok(doc.verify_keys[credentials.key]);
    const json = requestJson({
      method: "GET",
      uri,
      origin: TEST_SERVER_NAME,
      destination: "remote.example",
    });
    const signed = {
      ...json,
      signatures: { [TEST_SERVER_NAME]: { [credentials.key]: credentials.sig } },
    };
    const publicKey = ed25519PublicKeyFromBase64(doc.verify_keys[credentials.key].key)!;
    assert.ok(verifyJsonSignature(signed, TEST_SERVER_NAME, credentials.key, publicKey));
  });
});

describe("federation key config", () => {
  it("has Synapse's defaults, except no notary", () => {
    const config = parseConfigText('server_name: "example.org"');
    assert.equal(config.signing_key_path, "./data/signing.key");
    assert.deepEqual(config.old_signing_keys, {});
    assert.equal(config.key_refresh_interval, 86_400_000);
    assert.deepEqual(config.trusted_key_servers, []);
  });

  it("reads Synapse's shapes of old_signing_keys and trusted_key_servers", () => {
    const config = parseConfigText(
      [
        'server_name: "example.org"',
        "old_signing_keys:",
        `  "ed25519:auto": { key: "${OLD_KEY}", expired_ts: 123456789123 }`,
        "trusted_key_servers:",
        '  - server_name: "matrix.org"',
        `    verify_keys: { "ed25519:auto": "${OLD_KEY}" }`,
        '  - server_name: "notary.example"',
        "    accept_keys_insecurely: true",
      ].join("\n"),
    );
    assert.equal(config.old_signing_keys["ed25519:auto"]!.expired_ts, 123456789123);
    const first = config.trusted_key_servers[0]!;
    assert.equal(first.verify_keys!["ed25519:auto"], OLD_KEY);
    assert.equal(config.trusted_key_servers[1]!.server_name, "notary.example");
  });

  it("refuses malformed key ids, keys and server names", () => {
    const bad = [
      `old_signing_keys: { "rsa:1": { key: "${OLD_KEY}", expired_ts: 1 } }`,
      'old_signing_keys: { "ed25519:1": { key: "short", expired_ts: 1 } }',
      `old_signing_keys: { "ed25519:1": { key: "${OLD_KEY}" } }`,
      'trusted_key_servers: [{ server_name: "bad/name" }]',
      'trusted_key_servers: [{ server_name: "a.org", verify_keys: { "ed25519:1": "x" } }]',
      'key_refresh_interval: "soon"',
    ];
    for (const line of bad) {
      assert.throws(
        () => parseConfigText(`server_name: "example.org"\n${line}`),
        ConfigError,
        line,
      );
    }
  });
});
