import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatHostPort, parseHostPort } from "../../src/net/host-port.js";

describe("parseHostPort", () => {
  it("splits server names into host, port and kind", () => {
    assert.deepEqual(parseHostPort("example.org"), {
      host: "example.org",
      port: undefined,
      ipFamily: 0,
    });
    assert.deepEqual(parseHostPort("example.org:8448"), {
      host: "example.org",
      port: 8448,
      ipFamily: 0,
    });
    assert.deepEqual(parseHostPort("1.2.3.4:80"), { host: "1.2.3.4", port: 80, ipFamily: 4 });
    assert.deepEqual(parseHostPort("[::1]"), { host: "::1", port: undefined, ipFamily: 6 });
    assert.deepEqual(parseHostPort("[2001:db8::1]:8448"), {
      host: "2001:db8::1",
      port: 8448,
      ipFamily: 6,
    });
  });

  it("refuses bad ports, odd numeric names and malformed literals", () => {
    for (const text of [
      "",
      "example.org:",
      "example.org:0",
      "example.org:65536",
      "example.org:-1",
      "127.1",
      "01.2.3.4",
      "2130706433",
      "[::1",
      "[1.2.3.4]",
      "[::1]x",
      "::1",
      "a:b:c",
      "bad name",
      "a/b",
    ]) {
      assert.equal(parseHostPort(text), undefined, text);
    }
  });

  it("formats hosts back, bracketing IPv6", () => {
    assert.equal(formatHostPort("::1", 8448), "[::1]:8448");
    assert.equal(formatHostPort("example.org", undefined), "example.org");
  });
});
