/**
 * Media ids, media addresses and server names (matrix-media-spec.md §3), fed
 * hostile input: every rejection must be a 400 M_INVALID_PARAM.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MatrixError } from "../src/domain/matrix-error.js";
import { isValidMediaId, newMediaId, parseMediaAddress } from "../src/identifiers/media-id.js";
import { isValidServerName } from "../src/identifiers/server-name.js";

const HOSTILE_IDS = [
  "",
  ".",
  "..",
  "../../etc/passwd",
  "a/b",
  "%2F",
  "a%2Fb",
  "a\0b",
  "a b",
  "a.b",
  "a:b",
  "ünïcödé",
  "🐔",
  "x".repeat(256),
  "x".repeat(10_000),
  "abc\n",
];

/** Asserts `work` throws 400 M_INVALID_PARAM. */
function assertInvalidParam(work: () => unknown, label: string): void {
  assert.throws(
    work,
    (error: unknown) =>
      error instanceof MatrixError && error.errcode === "M_INVALID_PARAM" && error.status === 400,
    label,
  );
}

describe("isValidMediaId", () => {
  it("accepts 1–255 characters of A-Z a-z 0-9 _ -", () => {
    for (const id of ["a", "delete", "GCmhgzMPRjqgpODLsNQzTuHZ", "0_-", "-", "x".repeat(255)]) {
      assert.ok(isValidMediaId(id), id);
    }
  });

  it("rejects everything else", () => {
    for (const id of HOSTILE_IDS) assert.equal(isValidMediaId(id), false, JSON.stringify(id));
  });
});

describe("newMediaId", () => {
  it("makes 24 ASCII letters, different every time", () => {
    const ids = new Set(Array.from({ length: 200 }, () => newMediaId()));
    assert.equal(ids.size, 200);
    for (const id of ids) {
      assert.match(id, /^[A-Za-z]{24}$/);
      assert.ok(isValidMediaId(id));
    }
  });

  it("uses both cases", () => {
    const letters = Array.from({ length: 50 }, () => newMediaId()).join("");
    assert.match(letters, /[a-z]/);
    assert.match(letters, /[A-Z]/);
  });
});

describe("isValidServerName (spec grammar)", () => {
  it("accepts the spec's examples", () => {
    const valid = [
      "matrix.org",
      "matrix.org:8888",
      "1.2.3.4",
      "1.2.3.4:1234",
      "[1234:5678::abcd]",
      "[1234:5678::abcd]:5678",
      "localhost",
      "test.local:8448",
    ];
    for (const name of valid) assert.ok(isValidServerName(name), name);
  });

  it("accepts what the DNS-name rule allows even when odd (1–255 of A-Za-z0-9-.)", () => {
    // The grammar has no label rules, so `a..b` and a leading `-` are valid.
    for (const name of ["a..b", "-leading", "trailing.", "x".repeat(255)]) {
      assert.ok(isValidServerName(name), name);
    }
  });

  it("rejects malformed names", () => {
    const invalid = [
      "",
      "bad/name",
      "matrix.org:",
      "matrix.org:123456",
      "matrix.org:port",
      "[1234:5678::abcd",
      "[not-hex]",
      "1234:5678::abcd",
      "ünïcödé.org",
      "under_score.org",
      "a b",
      "a\0b",
      "%2F",
      "x".repeat(10_000),
    ];
    for (const name of invalid) assert.equal(isValidServerName(name), false, JSON.stringify(name));
  });
});

describe("parseMediaAddress", () => {
  it("returns the validated pair", () => {
    assert.deepEqual(parseMediaAddress("matrix.org", "GCmhgzMPRjqgpODLsNQzTuHZ"), {
      serverName: "matrix.org",
      mediaId: "GCmhgzMPRjqgpODLsNQzTuHZ",
    });
    assert.deepEqual(parseMediaAddress("[::1]:8448", "delete"), {
      serverName: "[::1]:8448",
      mediaId: "delete",
    });
  });

  it("rejects a malformed server name with 400 M_INVALID_PARAM", () => {
    for (const name of ["", "bad/name", "..", ".", "a\0b", "%2F", "🐔", "x".repeat(10_000)]) {
      assertInvalidParam(() => parseMediaAddress(name, "abcdef"), JSON.stringify(name));
    }
  });

  it("rejects a malformed media id with 400 M_INVALID_PARAM", () => {
    for (const id of HOSTILE_IDS) {
      assertInvalidParam(() => parseMediaAddress("matrix.org", id), JSON.stringify(id));
    }
  });
});
