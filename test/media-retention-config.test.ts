/**
 * `media_retention` in the config (docs/configuration.md): Synapse's names,
 * durations with a unit, every rule off by default, and a bad value stops
 * start-up with an error naming the dotted key.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, parseConfigText } from "../src/config/load-config.js";
import { retentionSettingsOf } from "../src/jobs/create-media-retention.js";
import { retentionEnabled } from "../src/jobs/media-retention-job.js";

function problemsOf(text: string): readonly string[] {
  try {
    parseConfigText(text);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("the config was accepted");
}

const base = 'server_name: "a.org"\n';

describe("media_retention config", () => {
  it("is off by default: no rule, no job", () => {
    const settings = retentionSettingsOf(parseConfigText(base));
    assert.deepEqual(settings, {
      localMediaLifetime: null,
      remoteMediaLifetime: null,
      localMediaMaxAge: null,
      checkIntervalMs: 3_600_000,
    });
    assert.equal(retentionEnabled(settings), false);
    const nulls = `${base}media_retention: { local_media_lifetime: null, remote_media_lifetime: null }`;
    assert.equal(retentionEnabled(retentionSettingsOf(parseConfigText(nulls))), false);
  });

  it("reads Synapse's durations and local_media_max_age", () => {
    const config = parseConfigText(
      `${base}media_retention:\n  local_media_lifetime: 90d\n  remote_media_lifetime: "14d"\n  local_media_max_age: 1y\n  check_interval: 30s\n`,
    );
    assert.deepEqual(retentionSettingsOf(config), {
      localMediaLifetime: 90 * 86_400_000,
      remoteMediaLifetime: 14 * 86_400_000,
      localMediaMaxAge: 365 * 86_400_000,
      checkIntervalMs: 30_000,
    });
    const onlyMaxAge = parseConfigText(`${base}media_retention: { local_media_max_age: 2w }`);
    assert.equal(retentionEnabled(retentionSettingsOf(onlyMaxAge)), true);
  });

  it("refuses bad values with the dotted key", () => {
    const cases: [string, RegExp][] = [
      ["local_media_lifetime: 30", /^media_retention\.local_media_lifetime: must be a duration/],
      [
        'remote_media_lifetime: "soon"',
        /^media_retention\.remote_media_lifetime: must be a duration/,
      ],
      ["local_media_max_age: 0s", /^media_retention\.local_media_max_age: must be at least 1s/],
      ["check_interval: 2d", /^media_retention\.check_interval: must be between 100ms and 1d/],
      ["media_lifetime: 30d", /^media_retention\.media_lifetime: unknown option/],
    ];
    for (const [option, expected] of cases) {
      const problems = problemsOf(`${base}media_retention: { ${option} }`);
      assert.match(problems[0] ?? "", expected, `${option}: ${problems.join("; ")}`);
    }
  });
});
