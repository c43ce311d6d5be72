import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ed25519PublicKeyFromBase64,
  verifyJsonSignature,
} from "../../src/federation/json-signing.js";
import { generateSigningKey } from "../../src/federation/signing-key.js";
import {
  buildXMatrixHeader,
  parseXMatrixHeader,
  RequestSigner,
  requestJson,
  XMatrixHeaderError,
} from "../../src/federation/x-matrix.js";

const expected = { origin: "a.example", destination: "b.example", key: "ed25519:k1", sig: "c2ln" };

describe("parseXMatrixHeader", () => {
  it("reads the spec's form and the variants the spec allows", () => {
    const headers = [
      'X-Matrix origin="a.example",destination="b.example",key="ed25519:k1",sig="c2ln"',
      // gomatrixserverlib's order (Complement).
      'X-Matrix origin="a.example",key="ed25519:k1",sig="c2ln",destination="b.example"',
      // Unquoted values, colons included.
      "X-Matrix origin=a.example,destination=b.example,key=ed25519:k1,sig=c2ln",
      // Several spaces after the scheme; spaces and tabs around commas and "=".
      'X-Matrix    origin="a.example" ,\tdestination="b.example"\t, key = "ed25519:k1" ,sig="c2ln"  ',
      // Case-insensitive names and scheme; unknown parameters ignored.
      'x-matrix Origin="a.example",DESTINATION="b.example",Key="ed25519:k1",SIG="c2ln",extra=1',
      // Empty list elements (RFC 9110 §5.6.1).
      'X-Matrix ,origin="a.example",,destination="b.example", ,key="ed25519:k1",sig="c2ln",',
      // Backslash escapes in quoted values.
      'X-Matrix origin="a\\.example",destination="b.example",key="ed25519:k1",sig="c2\\ln"',
    ];
    for (const header of headers) assert.deepEqual(parseXMatrixHeader(header), expected, header);
  });

  it("keeps colons, padding and escaped quotes in values", () => {
    const parsed = parseXMatrixHeader(
      'X-Matrix origin=hs.example.com:8448,key=ed25519:a_B1,sig=YWJj==,destination="q\\"x\\\\y"',
    );
    assert.deepEqual(parsed, {
      origin: "hs.example.com:8448",
      destination: 'q"x\\y',
      key: "ed25519:a_B1",
      sig: "YWJj==",
    });
  });

  it("leaves destination out when the sender did (before spec v1.3)", () => {
    const parsed = parseXMatrixHeader('X-Matrix origin="a.example",key="ed25519:k1",sig="c2ln"');
    assert.deepEqual(parsed, { origin: "a.example", key: "ed25519:k1", sig: "c2ln" });
    assert.equal("destination" in parsed!, false);
  });

  it("reads an unquoted IPv6 literal origin", () => {
    const parsed = parseXMatrixHeader("X-Matrix origin=[::1]:8448,key=ed25519:k,sig=c2ln");
    assert.equal(parsed?.origin, "[::1]:8448");
  });

  it("is undefined for other schemes", () => {
    for (const header of [
      "Bearer abc",
      "X-Matrixorigin=a",
      "",
      "Basic X-Matrix",
      "X-Matrix2 a=b",
    ]) {
      assert.equal(parseXMatrixHeader(header), undefined, header);
    }
  });

  it("reports a missing origin, key or sig as missing", () => {
    for (const header of [
      "X-Matrix",
      "X-Matrix ",
      'X-Matrix origin="a.example",key="ed25519:k1"',
      'X-Matrix origin="a.example",sig="c2ln"',
      'X-Matrix key="ed25519:k1",sig="c2ln"',
      'X-Matrix origin="a.example",key="ed25519:k1",sig=""',
    ]) {
      assert.throws(
        () => parseXMatrixHeader(header),
        (e: unknown) => e instanceof XMatrixHeaderError && e.reason === "missing",
        header,
      );
    }
  });

  it("reports malformed headers as malformed", () => {
    for (const header of [
      'X-Matrix origin="a.example',
      "X-Matrix origin",
      "X-Matrix =a",
      "X-Matrix origin=",
      "X-Matrix origin=a b,key=k,sig=s",
      'X-Matrix origin="a"x,key=k,sig=s',
      "X-Matrix origin=a;key=k;sig=s",
      "X-Matrix origin=a,origin=b,key=k,sig=s",
      "X-Matrix origin=a,ORIGIN=a,key=k,sig=s",
      "X-Matrix origin=a,key=k,sig=s,{}=1",
      'X-Matrix origin="a\\"',
    ]) {
      assert.throws(
        () => parseXMatrixHeader(header),
        (e: unknown) => e instanceof XMatrixHeaderError && e.reason === "malformed",
        header,
      );
    }
  });
});

describe("buildXMatrixHeader", () => {
  it("writes the spec's form and round-trips through the parser", () => {
    const header = buildXMatrixHeader(expected);
    assert.equal(
      header,
      'X-Matrix origin="a.example",destination="b.example",key="ed25519:k1",sig="c2ln"',
    );
    assert.deepEqual(parseXMatrixHeader(header), expected);
    const odd = { origin: 'q"x\\y', key: "ed25519:k", sig: "s" };
    assert.deepEqual(parseXMatrixHeader(buildXMatrixHeader(odd)), odd);
  });
});

describe("RequestSigner", () => {
  const key = generateSigningKey();
  const signer = new RequestSigner("origin.example", () => key);
  const publicKey = ed25519PublicKeyFromBase64(key.publicKeyBase64)!;

  /** Rebuilds what the receiver checks and verifies it. */
  function verifies(header: string, method: string, uri: string, content?: unknown): boolean {
    const credentials = parseXMatrixHeader(header)!;
    assert.equal(credentials.origin, "origin.example");
    assert.equal(credentials.key, key.keyId);
    const json = requestJson({
      method,
      uri,
      origin: credentials.origin,
      destination: credentials.destination!,
      content,
    });
    const signed = { ...json, signatures: { "origin.example": { [key.keyId]: credentials.sig } } };
    return verifyJsonSignature(signed, "origin.example", key.keyId, publicKey);
  }

  it("signs method, uri with its query, origin, destination and content", () => {
    const uri = "/_matrix/federation/v1/media/thumbnail/abc?method=scale&width=32&height=32";
    const header = signer.authorizationHeader("get", uri, "dest.example");
    assert.equal(parseXMatrixHeader(header)!.destination, "dest.example");
    assert.ok(verifies(header, "GET", uri));
    assert.equal(verifies(header, "POST", uri), false);
    assert.equal(
      verifies(header, "GET", uri.replace("width=32&height=32", "height=32&width=32")),
      false,
    );
    assert.equal(verifies(header, "GET", uri, { a: 1 }), false);

    const body = { media_ids: ["a", "b"], n: 1 };
    const post = signer.authorizationHeader("POST", "/_matrix/x", "dest.example", body);
    assert.ok(verifies(post, "POST", "/_matrix/x", { n: 1, media_ids: ["a", "b"] }));
    assert.equal(verifies(post, "POST", "/_matrix/x"), false);
  });

  it("treats a null body as no body, as Synapse does", () => {
    const header = signer.authorizationHeader("PUT", "/_matrix/x", "dest.example", null);
    assert.ok(verifies(header, "PUT", "/_matrix/x"));
    assert.deepEqual(
      requestJson({ method: "put", uri: "/u", origin: "o", destination: "d", content: null }),
      { method: "PUT", uri: "/u", origin: "o", destination: "d" },
    );
  });

  it("refuses a uri that is not a path", () => {
    assert.throws(() => signer.authorizationHeader("GET", "https://x/_matrix", "dest.example"));
  });
});
