import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import {
  CanonicalJsonError,
  canonicalJson,
  compareCodePoints,
} from "../../src/federation/canonical-json.js";
import {
  decodeBase64,
  ed25519PrivateKeyFromSeed,
  ed25519PublicKeyFromBase64,
  ed25519PublicKeyToBase64,
  encodeUnpaddedBase64,
  signJson,
  verifyJsonSignature,
} from "../../src/federation/json-signing.js";

// Matrix spec, appendices "Signing JSON" test vectors (reference §4.3).
const SPEC_SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
const SPEC_PUBLIC_KEY = "XGX0JRS2Af3be3knz2fBiRbApjm2Dh61gXDJA8kcJNI";
const specKey = () => ed25519PrivateKeyFromSeed(decodeBase64(SPEC_SEED)!);

describe("canonical JSON", () => {
  it("gives the spec's examples", () => {
    const examples: [string, string][] = [
      ["{}", "{}"],
      ['{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'],
      ['{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'],
      [
        '{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {"display_name": "John Doe", "three_pids": [{"medium": "email", "address": "john.doe@example.org"}, {"medium": "msisdn", "address": "123456789"}]}}}',
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
      ],
      ['{"a": "日本語"}', '{"a":"日本語"}'],
      ['{"本": 2, "日": 1}', '{"日":1,"本":2}'],
      ['{"a": "\\u65E5"}', '{"a":"日"}'],
      ['{"a": null}', '{"a":null}'],
      ['{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'],
    ];
    for (const [input, expected] of examples) {
      assert.equal(canonicalJson(JSON.parse(input)), expected, input);
    }
  });

  it("sorts keys by code point, not by UTF-16 unit, at every depth", () => {
    // U+FB01 is a smaller code point than U+1F600, but its UTF-16 unit is larger.
    const astral = "\u{1F600}";
    const bmpHigh = "\uFB01";
    assert.deepEqual([astral, bmpHigh].sort(), [astral, bmpHigh], "default sort is UTF-16");
    const value = { [astral]: 1, [bmpHigh]: 2, z: { [astral]: [], [bmpHigh]: {}, a: 0 } };
    assert.equal(
      canonicalJson(value),
      `{"z":{"a":0,"${bmpHigh}":{},"${astral}":[]},"${bmpHigh}":2,"${astral}":1}`,
    );
    assert.ok(compareCodePoints("\uFFFF", astral) < 0);
    assert.ok(compareCodePoints("\u{10000}", "\u{10001}") < 0);
    assert.ok(compareCodePoints("a", "ab") < 0);
    assert.equal(compareCodePoints(astral, astral), 0);
  });

  it("escapes only what the grammar escapes, and writes the rest raw", () => {
    const text = '\u0001\b\t\n\f\r"\\/\u007f\u2028é';
    assert.equal(canonicalJson(text), '"\\u0001\\b\\t\\n\\f\\r\\"\\\\/\u007f\u2028é"');
    assert.equal(canonicalJson([true, false, null, "\u001f"]), '[true,false,null,"\\u001f"]');
  });

  it("accepts the integer range edges and leaves out undefined members", () => {
    const max = 2 ** 53 - 1;
    assert.equal(canonicalJson([max, -max]), `[${max},${-max}]`);
    assert.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
  });

  it("refuses what has no canonical form", () => {
    const bad: unknown[] = [
      1.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      2 ** 53,
      -(2 ** 53),
      { a: 0.1 },
      [undefined],
      10n,
      new Date(0),
      new Map(),
      () => 1,
      Symbol("s"),
      undefined,
      "\uD800",
      { "\uDC00": 1 },
    ];
    for (const value of bad) {
      assert.throws(() => canonicalJson(value), CanonicalJsonError, String(value));
    }
    // A well-formed surrogate pair is fine.
    assert.equal(canonicalJson("\uD83D\uDE00"), '"\u{1F600}"');
  });

  it("accepts objects without a prototype", () => {
    const object = Object.create(null) as Record<string, unknown>;
    object.b = 1;
    object.a = 2;
    assert.equal(canonicalJson(object), '{"a":2,"b":1}');
  });
});

describe("JSON signing", () => {
  it("gives the spec's signatures for its test vectors", () => {
    const empty = signJson({}, "domain", "ed25519:1", specKey());
    assert.deepEqual(empty.signatures, {
      domain: {
        "ed25519:1":
          "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ",
      },
    });
    const two = signJson({ one: 1, two: "Two" }, "domain", "ed25519:1", specKey());
    assert.equal(
      two.signatures.domain!["ed25519:1"],
      "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw",
    );
    assert.equal(ed25519PublicKeyToBase64(specKey()), SPEC_PUBLIC_KEY);
  });

  it("keeps unsigned and other signatures, and does not change its input", () => {
    const input = {
      one: 1,
      unsigned: { age_ts: 5 },
      signatures: { other: { "ed25519:x": "sig" }, domain: { "ed25519:0": "old" } },
    };
    const copy = structuredClone(input);
    const signed = signJson(input, "domain", "ed25519:1", specKey());
    assert.deepEqual(input, copy);
    assert.deepEqual(signed.unsigned, { age_ts: 5 });
    assert.equal(signed.signatures.other!["ed25519:x"], "sig");
    assert.equal(signed.signatures.domain!["ed25519:0"], "old");
    // unsigned and signatures are not covered: same signature as {"one":1}.
    const plain = signJson({ one: 1 }, "domain", "ed25519:1", specKey());
    assert.equal(signed.signatures.domain!["ed25519:1"], plain.signatures.domain!["ed25519:1"]);
  });

  it("verifies good signatures, padded or not, and nothing else", () => {
    const publicKey = ed25519PublicKeyFromBase64(SPEC_PUBLIC_KEY)!;
    const signed = signJson({ one: 1, two: "Two" }, "domain", "ed25519:1", specKey());
    assert.ok(verifyJsonSignature(signed, "domain", "ed25519:1", publicKey));
    const withUnsigned = { ...signed, unsigned: { anything: 1.5 } };
    assert.ok(verifyJsonSignature(withUnsigned, "domain", "ed25519:1", publicKey));
    const padded = structuredClone(signed);
    padded.signatures.domain!["ed25519:1"] += "==";
    assert.ok(verifyJsonSignature(padded, "domain", "ed25519:1", publicKey));

    const other = generateKeyPairSync("ed25519").publicKey;
    assert.equal(verifyJsonSignature(signed, "domain", "ed25519:1", other), false);
    assert.equal(
      verifyJsonSignature({ ...signed, two: "2" }, "domain", "ed25519:1", publicKey),
      false,
    );
    assert.equal(verifyJsonSignature(signed, "domain", "ed25519:2", publicKey), false);
    assert.equal(verifyJsonSignature(signed, "elsewhere", "ed25519:1", publicKey), false);
    assert.equal(
      verifyJsonSignature({ ...signed, f: 0.5 }, "domain", "ed25519:1", publicKey),
      false,
    );
    assert.equal(verifyJsonSignature([signed], "domain", "ed25519:1", publicKey), false);
    assert.equal(verifyJsonSignature(null, "domain", "ed25519:1", publicKey), false);
    const garbled = structuredClone(signed);
    garbled.signatures.domain!["ed25519:1"] = "not base64!";
    assert.equal(verifyJsonSignature(garbled, "domain", "ed25519:1", publicKey), false);
    const inherited = { one: 1, signatures: Object.create({ domain: signed.signatures.domain }) };
    assert.equal(verifyJsonSignature(inherited, "domain", "ed25519:1", publicKey), false);
  });
});

describe("base64 helpers", () => {
  it("encodes unpadded and decodes padded, unpadded and URL-safe text", () => {
    assert.equal(encodeUnpaddedBase64(Buffer.from("a")), "YQ");
    assert.equal(encodeUnpaddedBase64(Buffer.from("abc")), "YWJj");
    assert.deepEqual(decodeBase64("YQ"), Buffer.from("a"));
    assert.deepEqual(decodeBase64("YQ=="), Buffer.from("a"));
    assert.deepEqual(decodeBase64("-_8"), Buffer.from([0xfb, 0xff]));
    assert.deepEqual(decodeBase64(""), Buffer.alloc(0));
  });

  it("refuses text that is not base64", () => {
    for (const text of ["Y", "YQ=", "Y===", "a b", "ab+_", "YQ==YQ", "é"]) {
      assert.equal(decodeBase64(text), undefined, text);
    }
  });

  it("reads public keys of 32 bytes only", () => {
    assert.ok(ed25519PublicKeyFromBase64(SPEC_PUBLIC_KEY));
    assert.equal(ed25519PublicKeyFromBase64("YWJj"), undefined);
    assert.equal(ed25519PublicKeyFromBase64("%%%"), undefined);
  });
});
