import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { configSchema } from "../src/config/config-schema.js";
import { ConfigError, parseConfigText } from "../src/config/load-config.js";
import { sampleConfig } from "../src/config/sample-config.js";

function problemsOf(text: string): readonly string[] {
  try {
    parseConfigText(text);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("config was accepted");
}

describe("config", () => {
  it("fills the embedded defaults and derives public_baseurl", () => {
    const config = parseConfigText('server_name: "example.org"');
    assert.deepEqual(config.database, { engine: "sqlite", path: "./data/mxcd.sqlite" });
    assert.deepEqual(config.media_store, { engine: "filesystem", path: "./data/media" });
    assert.deepEqual(config.listen, { host: "127.0.0.1", port: 8008, x_forwarded: false });
    assert.equal(config.public_baseurl, "https://example.org/");
    assert.equal(config.registration_shared_secret, null);
  });

  it("is frozen", () => {
    const config = parseConfigText('server_name: "example.org"');
    assert.throws(() => {
      (config.listen as { port: number }).port = 1;
    }, TypeError);
  });

  it("names the dotted key of a wrong value", () => {
    const problems = problemsOf('server_name: "example.org"\nlisten: { port: "eighty" }');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^listen\.port: /);
  });

  it("names a missing required key", () => {
    assert.deepEqual(problemsOf("listen: { port: 80 }"), ["server_name: is required"]);
  });

  it("names unknown options, nested ones included", () => {
    const problems = problemsOf('server_name: "a.org"\nlisten: { prot: 1 }\nmax_uplod_size: 3');
    assert.ok(problems.includes("listen.prot: unknown option"), problems.join());
    assert.ok(problems.includes("max_uplod_size: unknown option"), problems.join());
  });

  it("checks the engine-specific database keys", () => {
    const problems = problemsOf(
      'server_name: "a.org"\ndatabase: { engine: postgres, url: "mysql://x" }',
    );
    assert.match(problems[0]!, /^database\.url: /);
  });

  it("refuses an invalid server_name and invalid YAML", () => {
    assert.match(problemsOf('server_name: "bad/name"')[0]!, /^server_name: /);
    assert.match(problemsOf("server_name: [unclosed")[0]!, /not valid YAML/);
  });

  it("generates a sample config that validates, with a fresh secret each time", () => {
    const a = parseConfigText(sampleConfig({ serverName: "example.org", port: 9000 }));
    const b = parseConfigText(sampleConfig());
    assert.equal(a.server_name, "example.org");
    assert.equal(a.listen.port, 9000);
    assert.ok(a.registration_shared_secret && a.registration_shared_secret.length >= 24);
    assert.notEqual(a.registration_shared_secret, b.registration_shared_secret);
  });

  it("documents every option in docs/configuration.md", () => {
    const docs = readFileSync(new URL("../docs/configuration.md", import.meta.url), "utf8");
    const missing = optionKeys().filter((key) => !docs.includes(`\`${key}\``));
    assert.deepEqual(missing, []);
  });
});

/** Every dotted option key of the schema (nested objects and union members included). */
function optionKeys(): string[] {
  const keys = new Set<string>();
  const walk = (schema: any, prefix: string) => {
    const def = schema?._zod?.def;
    if (!def) return;
    if (["default", "optional", "nullable", "prefault"].includes(def.type)) {
      return walk(def.innerType, prefix);
    }
    if (def.type === "union") {
      for (const option of def.options) walk(option, prefix);
      return;
    }
    if (def.type === "object") {
      for (const [name, child] of Object.entries(def.shape)) {
        const key = prefix ? `${prefix}.${name}` : name;
        keys.add(key);
        walk(child, key);
      }
    }
  };
  walk(configSchema, "");
  return [...keys].sort();
}
