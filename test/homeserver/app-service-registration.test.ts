/**
 * `mxcd appservice generate-registration` and reading a registration back:
 * the file Synapse accepts (attached-mode.md §3.2), random distinct tokens,
 * never overwritten, readable only by its owner; hostile registrations are
 * refused with the key named.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import {
  generateRegistration,
  parseRegistration,
  registrationYaml,
} from "../../src/homeserver/app-service-registration.js";
import { runCli } from "../support/cli.js";

describe("application-service registration", () => {
  it("generate-registration writes Synapse's shape once, 0600, with fresh tokens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mxcd-as-"));
    const out = join(dir, "mxcd-registration.yaml");
    const url = "http://mxcd.internal:8008";
    const first = await runCli(["appservice", "generate-registration", "-o", out, "--url", url]);
    assert.equal(first.code, 0, first.stderr);
    const text = readFileSync(out, "utf8");
    const written = parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(written).sort(), [
      "as_token",
      "hs_token",
      "id",
      "namespaces",
      "rate_limited",
      "receive_ephemeral",
      "sender_localpart",
      "url",
    ]);
    assert.equal(written.id, "mxcd");
    assert.equal(written.url, url);
    assert.equal(written.sender_localpart, "_mxcd");
    assert.equal(written.rate_limited, false);
    assert.deepEqual(written.namespaces, {
      users: [],
      aliases: [],
      rooms: [{ regex: "!.*", exclusive: false }],
    });
    assert.match(String(written.as_token), /^[0-9a-f]{64}$/);
    assert.match(String(written.hs_token), /^[0-9a-f]{64}$/);
    assert.notEqual(written.as_token, written.hs_token);
    assert.equal(statSync(out).mode & 0o777, 0o600);
    assert.deepEqual(parseRegistration(text), written);

    const again = await runCli(["appservice", "generate-registration", "-o", out]);
    assert.notEqual(again.code, 0, "an existing registration is never overwritten");
    assert.equal(readFileSync(out, "utf8"), text);
  });

  it("generates different tokens every time", () => {
    const a = generateRegistration({ url: null });
    const b = generateRegistration({ url: null });
    assert.notEqual(a.as_token, b.as_token);
    assert.notEqual(a.hs_token, b.hs_token);
    assert.equal(parseRegistration(registrationYaml(a)).url, null);
  });

  it("refuses registrations Synapse would refuse, or with weak tokens, naming the key", () => {
    const good = generateRegistration({ url: "http://mxcd:8008" });
    const cases: [Record<string, unknown> | string, RegExp][] = [
      ["- a list", /mapping/],
      [{ ...good, id: 7 }, /\bid\b/],
      [{ ...good, hs_token: undefined }, /hs_token/],
      [{ ...good, sender_localpart: "" }, /sender_localpart/],
      [{ ...good, url: 8008 }, /url/],
      [{ ...good, as_token: "short" }, /as_token/],
      [{ ...good, hs_token: good.as_token }, /differ/],
    ];
    const dir = mkdtempSync(join(tmpdir(), "mxcd-as-bad-"));
    for (const [value, message] of cases) {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      writeFileSync(join(dir, "r.yaml"), text);
      assert.throws(() => parseRegistration(readFileSync(join(dir, "r.yaml"), "utf8")), message);
    }
  });
});
