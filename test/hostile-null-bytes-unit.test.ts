/** The NUL rules of src/http/null-bytes.ts as pure functions, with hostile inputs. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isNullByteStorageError, jsonHasNullByte, urlHasNullByte } from "../src/http/null-bytes.js";

describe("null-byte rules", () => {
  it("finds a percent-encoded NUL anywhere in a URL, and only that", () => {
    for (const url of ["/a%00", "/x?q=%00", "/%00/b", "/x?a=1&b=c%00d"])
      assert.ok(urlHasNullByte(url), url);
    for (const url of ["/a%2500", "/x?q=%0", "/x?q=%01", "/x?q=00", "/"])
      assert.ok(!urlHasNullByte(url), url);
  });

  it("leaves a NUL in an access_token value to authentication (401), and only there", () => {
    for (const url of ["/x?access_token=ab%00", "/x?a=1&access_token=%00%00&b=2"])
      assert.ok(!urlHasNullByte(url), url);
    for (const url of [
      "/x%00?access_token=ab",
      "/x?access_token=ab&q=%00",
      "/x?my_access_token=%00",
      "/x?access_token%00=ab",
    ])
      assert.ok(urlHasNullByte(url), url);
  });

  it("finds NUL in any JSON string or key, at any depth, and only NUL", () => {
    const has = (value: unknown) => jsonHasNullByte(JSON.stringify(value), value);
    for (const value of [
      "\u0000",
      { a: "x\u0000" },
      { "k\u0000": 1 },
      [1, [2, { b: ["\u0000"] }]],
      { a: { b: { "\u0000": null } } },
    ])
      assert.ok(has(value), JSON.stringify(value));
    for (const value of ["a\\u0000b", { "\\u0000": "\u0001" }, [null, 0, true, "x"], {}, ""])
      assert.ok(!has(value), JSON.stringify(value));
    // A body with half a million values is walked without overflowing the stack.
    assert.ok(has([...Array.from({ length: 500_000 }, () => 0), "\u0000"]));
  });

  it("recognises PostgreSQL's NUL refusals and nothing else", () => {
    const pg = (code: string, message: string) => Object.assign(new Error(message), { code });
    assert.ok(
      isNullByteStorageError(pg("22021", 'invalid byte sequence for encoding "UTF8": 0x00')),
    );
    assert.ok(
      isNullByteStorageError(
        pg("22P05", "unsupported Unicode escape sequence: \\u0000 cannot be converted to text."),
      ),
    );
    assert.ok(
      !isNullByteStorageError(pg("22021", 'invalid byte sequence for encoding "UTF8": 0xff')),
    );
    assert.ok(!isNullByteStorageError(pg("23505", "duplicate key value 0x00")));
    assert.ok(!isNullByteStorageError(pg("SQLITE_ERROR", "0x00")));
    for (const other of [
      undefined,
      null,
      "0x00",
      22021,
      { code: "22021" },
      { code: "22021", message: 5 },
    ])
      assert.ok(!isNullByteStorageError(other), String(other));
  });
});
