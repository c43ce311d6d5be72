import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  addressPolicy,
  isAllowedAddress,
  parseCidr,
  parseIp,
  parseIpRanges,
  rangeContains,
  SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST,
} from "../../src/net/ip-ranges.js";

const defaults = addressPolicy(SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST, []);

describe("parseIp", () => {
  it("parses strict dotted-decimal IPv4", () => {
    assert.deepEqual(parseIp("127.0.0.1"), { family: 4, value: 0x7f000001n });
    assert.deepEqual(parseIp("0.0.0.0"), { family: 4, value: 0n });
    assert.deepEqual(parseIp("255.255.255.255"), { family: 4, value: 0xffffffffn });
  });

  it("does not read octal, hex, short or integer forms as IPv4", () => {
    for (const text of [
      "0177.0.0.1",
      "0x7f.0.0.1",
      "0x7f000001",
      "127.1",
      "2130706433",
      "127.0.0.01",
      "256.0.0.1",
      "1.2.3.4.",
      " 1.2.3.4",
      "1.2.3.-4",
      "",
    ]) {
      assert.equal(parseIp(text), undefined, text);
    }
  });

  it("parses IPv6 in full and compressed forms", () => {
    const loopback = { family: 6, value: 1n };
    assert.deepEqual(parseIp("::1"), loopback);
    assert.deepEqual(parseIp("0:0:0:0:0:0:0:1"), loopback);
    assert.deepEqual(parseIp("0000:0000:0000::0001"), loopback);
    assert.deepEqual(parseIp("::"), { family: 6, value: 0n });
    assert.deepEqual(parseIp("FE80::1%eth0"), { family: 6, value: (0xfe80n << 112n) | 1n });
    assert.equal(parseIp("2001:db8::")?.value, 0x2001_0db8n << 96n);
  });

  it("refuses malformed IPv6", () => {
    for (const text of [
      "1::2::3",
      ":1::",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "12345::",
      "::g",
      "[::1]",
      "%eth0",
      "1:2:3:4:5:6:7::8:9",
    ]) {
      assert.equal(parseIp(text), undefined, text);
    }
  });

  it("reads IPv4-mapped IPv6 as IPv4, in every spelling", () => {
    const v4 = { family: 4, value: 0x7f000001n };
    assert.deepEqual(parseIp("::ffff:127.0.0.1"), v4);
    assert.deepEqual(parseIp("::ffff:7f00:1"), v4);
    assert.deepEqual(parseIp("0:0:0:0:0:FFFF:7F00:0001"), v4);
  });
});

describe("parseCidr", () => {
  it("parses ranges, bare addresses and host bits", () => {
    assert.deepEqual(parseCidr("10.0.0.0/8"), { family: 4, network: 0x0a000000n, prefix: 8 });
    assert.deepEqual(parseCidr("10.1.2.3/8"), { family: 4, network: 0x0a000000n, prefix: 8 });
    assert.deepEqual(parseCidr("192.168.1.1"), { family: 4, network: 0xc0a80101n, prefix: 32 });
    assert.deepEqual(parseCidr("fe80::/10"), { family: 6, network: 0xfe80n << 112n, prefix: 10 });
    assert.deepEqual(parseCidr("::/0"), { family: 6, network: 0n, prefix: 0 });
  });

  it("reads a range inside ::ffff:0:0/96 as an IPv4 range", () => {
    assert.deepEqual(parseCidr("::ffff:127.0.0.0/104"), {
      family: 4,
      network: 0x7f000000n,
      prefix: 8,
    });
  });

  it("refuses bad prefixes and garbage", () => {
    for (const text of [
      "10.0.0.0/33",
      "::/129",
      "10.0.0.0/",
      "10.0.0.0/-1",
      "10.0.0.0/8/8",
      "fe80::1%eth0/64",
      "localhost",
      "10.0.0.0/ 8",
    ]) {
      assert.equal(parseCidr(text), undefined, text);
    }
    assert.throws(() => parseIpRanges(["10.0.0.0/8", "nope"]), /nope/);
  });

  it("matches by prefix and family", () => {
    const range = parseCidr("172.16.0.0/12")!;
    assert.ok(rangeContains(range, parseIp("172.31.255.255")!));
    assert.ok(!rangeContains(range, parseIp("172.32.0.0")!));
    assert.ok(
      !rangeContains(parseCidr("::/0")!, parseIp("1.2.3.4")!),
      "IPv6 ranges never hold IPv4",
    );
  });
});

describe("isAllowedAddress", () => {
  it("keeps Synapse's default blacklist", () => {
    assert.equal(SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST.length, 19);
    assert.ok(SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST.includes("100.64.0.0/10"));
    assert.ok(SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST.includes("fec0::/10"));
  });

  it("refuses private, loopback, link-local and special addresses by default", () => {
    for (const ip of [
      "127.0.0.1",
      "127.255.255.254",
      "10.20.30.40",
      "172.16.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "192.0.0.8",
      "198.18.0.1",
      "203.0.113.9",
      "224.0.0.251",
      "::1",
      "fe80::1",
      "fe80::1%eth0",
      "fd00::1",
      "fc00::",
      "2001:db8::1",
      "ff02::1",
      "fec0::1",
    ]) {
      assert.equal(isAllowedAddress(ip, defaults), false, ip);
    }
  });

  it("refuses IPv4-mapped forms of blocked IPv4 addresses", () => {
    for (const ip of [
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "::ffff:10.0.0.1",
      "::ffff:169.254.169.254",
      "0:0:0:0:0:ffff:c0a8:0101",
    ]) {
      assert.equal(isAllowedAddress(ip, defaults), false, ip);
    }
  });

  it("always refuses the unspecified addresses, even whitelisted", () => {
    const open = addressPolicy([], ["0.0.0.0/0", "::/0"]);
    for (const ip of ["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0"]) {
      assert.equal(isAllowedAddress(ip, defaults), false, ip);
      assert.equal(isAllowedAddress(ip, open), false, ip);
    }
  });

  it("refuses anything that is not an IP address (fail closed)", () => {
    for (const ip of ["localhost", "0177.0.0.1", "2130706433", "0x7f000001", "[::1]", ""]) {
      assert.equal(isAllowedAddress(ip, addressPolicy([], [])), false, ip);
    }
  });

  it("allows public addresses", () => {
    for (const ip of [
      "1.1.1.1",
      "8.8.8.8",
      "172.32.0.1",
      "2606:4700:4700::1111",
      "::ffff:1.1.1.1",
    ]) {
      assert.equal(isAllowedAddress(ip, defaults), true, ip);
    }
  });

  it("lets the whitelist win over the blacklist", () => {
    const policy = addressPolicy(SYNAPSE_DEFAULT_IP_RANGE_BLACKLIST, ["127.0.0.0/8", "10.1.2.3"]);
    assert.equal(isAllowedAddress("127.0.0.1", policy), true);
    assert.equal(isAllowedAddress("::ffff:127.0.0.1", policy), true);
    assert.equal(isAllowedAddress("10.1.2.3", policy), true);
    assert.equal(isAllowedAddress("10.1.2.4", policy), false);
    assert.equal(
      isAllowedAddress("::1", policy),
      false,
      "an IPv4 whitelist does not open IPv6 loopback",
    );
  });
});
