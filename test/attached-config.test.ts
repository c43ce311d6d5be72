/**
 * The attached-mode config keys: required with `mode: attached`, refused in
 * standalone (where they would do nothing), each problem naming its dotted key.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseConfigText } from "../src/config/load-config.js";

function problemsOf(text: string): readonly string[] {
  try {
    parseConfigText(text);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("config was accepted");
}

const ATTACHED = 'server_name: "a.org"\nmode: attached\n';

describe("attached-mode config", () => {
  it("defaults to standalone, with no attached keys", () => {
    const config = parseConfigText('server_name: "a.org"');
    assert.equal(config.mode, "standalone");
    assert.equal(config.homeserver, undefined);
  });

  it("fills the homeserver defaults and reads durations with units", () => {
    const config = parseConfigText(
      `${ATTACHED}homeserver: { base_url: "http://synapse:8008", request_timeout: "5s" }\naccess_token_cache: { ttl: "2m" }`,
    );
    assert.deepEqual(config.homeserver, {
      base_url: "http://synapse:8008",
      admin_api: "synapse",
      admin_access_token: null,
      request_timeout: 5_000,
      failure_threshold: 10,
    });
    assert.deepEqual(config.access_token_cache, {
      ttl: 120_000,
      negative_ttl: 5_000,
      admin_ttl: 60_000,
      max_entries: 100_000,
    });
  });

  it("requires homeserver in attached mode", () => {
    assert.deepEqual(problemsOf(ATTACHED), [
      "homeserver: is required with mode: attached (homeserver.base_url at least)",
    ]);
    assert.deepEqual(problemsOf(`${ATTACHED}homeserver: { admin_api: none }`), [
      "homeserver.base_url: is required",
    ]);
  });

  it("requires a non-empty admins list when admin_api is none", () => {
    const none = `${ATTACHED}homeserver: { base_url: "http://hs:8008", admin_api: none }\n`;
    assert.deepEqual(problemsOf(none), [
      "admins: must list at least one admin when homeserver.admin_api is none",
    ]);
    assert.deepEqual(problemsOf(`${none}admins: []`), [
      "admins: must list at least one admin when homeserver.admin_api is none",
    ]);
    assert.equal(parseConfigText(`${none}admins: ["@root:a.org"]`).admins?.[0], "@root:a.org");
  });

  it("refuses admins of another server and malformed user ids, by index", () => {
    const hs = `${ATTACHED}homeserver: { base_url: "http://hs:8008" }\n`;
    assert.deepEqual(problemsOf(`${hs}admins: ["@x:b.org"]`), [
      "admins.0: must be a user of server_name (a.org)",
    ]);
    assert.match(problemsOf(`${hs}admins: ["root"]`)[0]!, /^admins\.0: must be a Matrix user id/);
  });

  it("refuses the attached keys in standalone mode, naming each", () => {
    const problems = problemsOf(
      'server_name: "a.org"\nhomeserver: { base_url: "http://hs:8008" }\naccess_token_cache: {}\nadmins: []',
    );
    assert.deepEqual(problems, [
      "homeserver: only allowed with mode: attached",
      "access_token_cache: only allowed with mode: attached",
      "admins: only allowed with mode: attached",
    ]);
  });

  it("checks the homeserver values by dotted key", () => {
    const problems = problemsOf(
      `${ATTACHED}homeserver: { base_url: "ftp://hs", admin_api: dendrite, request_timeout: 30, failure_threshold: 0 }`,
    );
    const keys = problems.map((p) => p.split(":")[0]).sort();
    assert.deepEqual(keys, [
      "homeserver.admin_api",
      "homeserver.base_url",
      "homeserver.failure_threshold",
      "homeserver.request_timeout",
    ]);
    assert.deepEqual(problemsOf(`${ATTACHED}homeserver: { base_url: "http://u:p@hs:8008" }`), [
      'homeserver.base_url: must be a URL such as "http://synapse:8008" (no query or credentials)',
    ]);
    assert.match(problemsOf('server_name: "a.org"\nmode: island')[0]!, /^mode: /);
  });
});
