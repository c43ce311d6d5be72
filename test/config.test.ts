import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { configSchema } from "../src/config/config-schema.js";
import { ConfigError, parseConfigText } from "../src/config/load-config.js";
import { sampleConfig } from "../src/config/sample-config.js";
import { REPO_URL } from "./support/repo-url.js";

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
  it("fills the embedded defaults", () => {
    const config = parseConfigText('server_name: "example.org"');
    assert.deepEqual(config.database, { engine: "sqlite", path: "./data/mxcd.sqlite" });
    assert.deepEqual(config.media_store, { engine: "filesystem", path: "./data/media" });
    assert.deepEqual(config.listen, { host: "127.0.0.1", port: 8008, x_forwarded: false });
    assert.equal(config.registration_shared_secret, null);
    assert.equal(config.shutdown_grace_period, 10_000);
    assert.equal(config.notification_poll_interval, 500);
  });

  it("refuses the removed public_baseurl with a reason, naming the key", () => {
    const problems = problemsOf('server_name: "a.org"\npublic_baseurl: "https://a.org/"');
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^public_baseurl: removed: /);
  });

  it("reads every duration option with one syntax, in milliseconds", () => {
    const units: [string, number][] = [
      ["500ms", 500],
      ["30s", 30_000],
      ["5m", 300_000],
      ["1h", 3_600_000],
      ["2d", 172_800_000],
    ];
    for (const key of durationKeys()) {
      for (const [text, ms] of units) {
        const yaml = withOption(key, `"${text}"`);
        const problems = problemsOfSafe(yaml);
        if (problems.length > 0) {
          // Outside this option's own range: refused by key, for its range.
          assert.equal(problems.length, 1);
          assert.ok(problems[0]!.startsWith(`${key}: must be `), problems[0]);
          assert.ok(!problems[0]!.includes("with a unit"), problems[0]);
          continue;
        }
        const config = parseConfigText(yaml) as any;
        const value = key.split(".").reduce((object, part) => object[part], config);
        assert.equal(value, ms, `${key}: "${text}"`);
      }
    }
  });

  it("refuses a bare number or a unit-less string for every duration option, naming the key", () => {
    for (const key of durationKeys()) {
      for (const bad of ["10", '"10"', '"ten seconds"', '"5 minutes"', '"-1s"', '"1.5s"']) {
        const problems = problemsOf(withOption(key, bad));
        assert.equal(problems.length, 1, `${key}: ${bad}: ${problems.join()}`);
        assert.ok(problems[0]!.startsWith(`${key}: must be a duration with a unit`), problems[0]);
      }
      assert.match(problemsOf(withOption(key, "10"))[0]!, /a bare number is refused/);
    }
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
    const docs = readFileSync(new URL("docs/configuration.md", REPO_URL), "utf8");
    const missing = optionKeys()
      .filter((key) => !key.includes("[]"))
      .filter((key) => !docs.includes(`\`${key}\``));
    assert.deepEqual(missing, []);
  });

  it("documents no option that the schema does not have", () => {
    const docs = readFileSync(new URL("docs/configuration.md", REPO_URL), "utf8");
    // The first cell of every option table row: | `dotted.key` | default | meaning |
    const documented = [...docs.matchAll(/^\| `([a-z_][a-z0-9_.[\]]*)` +\|/gm)].map((m) => m[1]!);
    assert.ok(documented.length > 30, "the option tables were found");
    const known = new Set(optionKeys());
    assert.deepEqual(
      documented.filter((key) => !known.has(key)),
      [],
    );
  });
});

/** The YAML of a minimal valid config with `key` (dotted) set to `value`. */
function withOption(key: string, value: string): string {
  if (key.startsWith("media_store.")) {
    const name = key.slice("media_store.".length);
    return `server_name: "a.org"\nmedia_store: { engine: s3, bucket: b12, ${name}: ${value} }`;
  }
  assert.ok(!key.includes("."), `add a case for ${key}`);
  return `server_name: "a.org"\n${key}: ${value}`;
}

/** Every option parsed by the duration type (found by what it refuses). */
function durationKeys(): string[] {
  const keys = optionKeys().filter((key) => {
    if (key.includes("[]")) return false;
    const problems = problemsOfSafe(withOptionSafe(key, '"not-a-duration-x"'));
    return problems.some((p) => p.startsWith(`${key}: must be a duration`));
  });
  assert.ok(keys.includes("shutdown_grace_period") && keys.includes("notification_poll_interval"));
  return keys;
}

function withOptionSafe(key: string, value: string): string {
  const parts = key.split(".");
  if (parts.length === 1) return `server_name: "a.org"\n${key}: ${value}`;
  if (parts[0] === "media_store") return withOption(key, value);
  return 'server_name: "a.org"';
}

function problemsOfSafe(text: string): readonly string[] {
  try {
    parseConfigText(text);
    return [];
  } catch (error) {
    return error instanceof ConfigError ? error.problems : [];
  }
}

/** Every dotted option key of the schema (nested objects and union members included). */
function optionKeys(): string[] {
  const keys = new Set<string>();
  const walk = (schema: any, prefix: string) => {
    const def = schema?._zod?.def;
    if (!def) return;
    if (["default", "optional", "nullable", "prefault"].includes(def.type)) {
      return walk(def.innerType, prefix);
    }
    if (def.type === "pipe") return walk(def.in, prefix);
    if (def.type === "array") return walk(def.element, `${prefix}[]`);
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
