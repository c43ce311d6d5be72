/**
 * `mxcd proxy-config nginx` and the one route table behind it: the config
 * it prints, the table in docs/attached.md and mxcd's route gate are the same
 * rows, and the page shows exactly what the command prints. (The config is
 * run for real, in front of mxcd, by test/attached-e2e.test.ts.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parseConfigText } from "../src/config/load-config.js";
import { ATTACHED_ROUTE_TABLE, isAttachedRoute } from "../src/http/attached-routes.js";
import {
  HOMESERVER_LOCATION,
  nginxRegex,
  nginxSize,
  upstreamOrigin,
} from "../src/http/nginx-proxy-config.js";
import { runCli } from "./support/cli.js";
import { REPO_URL } from "./support/repo-url.js";

const page = readFileSync(new URL("docs/attached.md", REPO_URL), "utf8");
const EXAMPLE = ["--mxcd", "http://127.0.0.1:8009", "--homeserver", "http://127.0.0.1:8008"];

/** The section of the page under `heading`, up to the next heading of its level. */
function section(heading: string): string {
  const start = page.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `docs/attached.md has "${heading}"`);
  const level = heading.split(" ")[0]!;
  const end = page.indexOf(`\n${level} `, start + heading.length + 2);
  return page.slice(start, end < 0 ? undefined : end);
}

describe("mxcd proxy-config nginx", () => {
  // One run for the checks of the example output (each CLI start loads mxcd).
  let example: Promise<Awaited<ReturnType<typeof runCli>>> | undefined;
  const printExample = () => {
    example ??= runCli(["proxy-config", "nginx", ...EXAMPLE]);
    return example;
  };

  it("prints exactly the nginx block that docs/attached.md shows for its example", async () => {
    const printed = await printExample();
    assert.equal(printed.code, 0, printed.stderr);
    const setup = section("## Set-up with Synapse");
    assert.ok(setup.includes(`mxcd proxy-config nginx ${EXAMPLE.join(" ")}`), "the command");
    const blocks = [...setup.matchAll(/```nginx\n([\s\S]*?)```/g)].map((m) => m[1]);
    const generated = blocks.filter((block) => block?.startsWith("# mxcd in front of"));
    assert.equal(generated.length, 1, "one generated block");
    assert.equal(generated[0], printed.stdout);
  });

  it("sends each public row of the route table to mxcd and everything else to the homeserver", async () => {
    const { stdout } = await printExample();
    const locations = [...stdout.matchAll(/^location (.*) \{ proxy_pass (\S+); \}$/gm)].map((m) => [
      m[1],
      m[2],
    ]);
    const expected = ATTACHED_ROUTE_TABLE.filter((route) => route.via === "proxy").map((route) => [
      `~ ${nginxRegex(route.pattern)}`,
      "http://127.0.0.1:8009",
    ]);
    assert.deepEqual(locations, [...expected, [HOMESERVER_LOCATION, "http://127.0.0.1:8008"]]);
    assert.match(stdout, /^client_max_body_size 50m;$/m, "mxcd's default max_upload_size");
    assert.match(stdout, /^proxy_request_buffering off;$/m);
    assert.match(stdout, /^proxy_set_header X-Forwarded-For \$remote_addr;$/m);
    assert.doesNotMatch(stdout, /proxy_pass \S+\/;/, "no URI part in proxy_pass");
  });

  it("takes the addresses and max_upload_size from mxcd's config (-c), options first", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mxcd-proxy-"));
    const config = join(dir, "mxcd.yaml");
    writeFileSync(
      config,
      [
        "mode: attached",
        "server_name: example.org",
        "listen: { host: 10.0.0.5, port: 8123 }",
        'homeserver: { base_url: "http://10.0.0.6:8008", admin_api: synapse }',
        "max_upload_size: 100M",
        "",
      ].join("\n"),
    );
    const fromConfig = await runCli(["proxy-config", "nginx", "-c", config]);
    assert.equal(fromConfig.code, 0, fromConfig.stderr);
    assert.match(fromConfig.stdout, /^client_max_body_size 100m;$/m);
    assert.match(
      fromConfig.stdout,
      /^location ~ \^\/_matrix\/media\/ \{ proxy_pass http:\/\/10\.0\.0\.5:8123; \}$/m,
    );
    assert.ok(
      fromConfig.stdout.includes(
        `location ${HOMESERVER_LOCATION} { proxy_pass http://10.0.0.6:8008; }`,
      ),
    );
    const overridden = await runCli([
      "proxy-config",
      "nginx",
      "-c",
      config,
      "--mxcd",
      "http://127.0.0.1:9000",
      "--max-upload-size",
      "1536K",
    ]);
    assert.equal(overridden.code, 0, overridden.stderr);
    assert.match(overridden.stdout, /^client_max_body_size 1536k;$/m);
    assert.match(overridden.stdout, /proxy_pass http:\/\/127\.0\.0\.1:9000;/);
  });

  it("refuses an upstream with a path, and a missing address, printing nothing", async () => {
    for (const [args, message] of [
      [["--mxcd", "http://127.0.0.1:8009/", "--homeserver", "http://h:8008/media"], /no path/],
      [["--mxcd", "http://127.0.0.1:8009"], /--homeserver/],
    ] as const) {
      const result = await runCli(["proxy-config", "nginx", ...args]);
      assert.equal(result.code, 1, args.join(" "));
      assert.match(result.stderr, message, args.join(" "));
      assert.equal(result.stdout, "", "nothing printed");
    }
  });
});

describe("the attached route table", () => {
  it("is the table docs/attached.md shows, row for row (the operator's routes aside)", () => {
    const rows = [...section("## Routes mxcd serves").matchAll(/^\| `(\^[^`]*)` \|/gm)].map(
      (m) => m[1],
    );
    const table = ATTACHED_ROUTE_TABLE.filter((route) => route.via !== "operator").map((route) =>
      nginxRegex(route.pattern),
    );
    assert.deepEqual(rows, table);
  });

  it("means the same in nginx as in mxcd's gate", () => {
    const paths = [
      "/_matrix/media/v3/upload",
      "/_matrix/media/r0/download/example.org/abc",
      "/_matrix/client/v1/media/thumbnail/example.org/abc",
      "/_matrix/client/v3/media/config",
      "/_matrix/federation/v1/media/download/abc",
      "/_synapse/admin/v1/purge_media_cache",
      "/_synapse/admin/v1/purge_media_cache/x",
      "/_synapse/admin/v1/room/!r:example.org/media/quarantine",
      "/_synapse/admin/v1/rooms/!r:example.org/media",
      "/_synapse/admin/v1/users/@a:example.org/media",
      "/_synapse/admin/v1/users/@a:example.org/media/x",
      "/_synapse/admin/v1/statistics/users/media",
      "/_matrix/app/v1/transactions/1",
      "/_matrix/key/v2/server",
      "/health",
    ];
    for (const path of paths) {
      const nginx = ATTACHED_ROUTE_TABLE.some((route) =>
        new RegExp(nginxRegex(route.pattern)).test(path),
      );
      assert.equal(nginx, isAttachedRoute(path), path);
    }
  });

  it("refuses to write a pattern nginx could read differently", () => {
    assert.equal(nginxRegex(/^\/_matrix\/media\//), "^/_matrix/media/");
    for (const pattern of [/^\/a b/, /^\/a{1}/, /^\/a;/, /\/a/, /^\/a/i, /^\/(a|b)/]) {
      assert.throws(() => nginxRegex(pattern), /nginx/, String(pattern));
    }
  });

  it("writes sizes in nginx's units and upstreams as origins", () => {
    assert.equal(nginxSize(50 * 1024 * 1024), "50m");
    assert.equal(nginxSize(1536 * 1024), "1536k");
    assert.equal(nginxSize(1000), "1000");
    assert.equal(nginxSize(0), "0");
    assert.equal(upstreamOrigin("x", "https://mxcd.internal:8443"), "https://mxcd.internal:8443");
    assert.equal(upstreamOrigin("x", "http://[::1]:8009/"), "http://[::1]:8009");
    // A URI part would make nginx pass a rewritten (normalised) URI.
    for (const [url, message] of [
      ["http://h:8008/media", /no path/],
      ["http://h:8008?a=b", /no path/],
      ["http://h:8008/#x", /no path/],
      ["unix:/run/mxcd.sock", /http/],
      ["http://u:p@h:8008", /password/],
      ["h:8008", /http/],
      ["not a url", /not a URL/],
    ] as const) {
      assert.throws(() => upstreamOrigin("--mxcd", url), message, url);
    }
  });
});

describe("docs/attached.md, Synapse set-up", () => {
  it("shows an mxcd config that validates", () => {
    const setup = section("## Set-up with Synapse");
    const yaml = /\*\*3\. mxcd's config\*\*[\s\S]*?```yaml\n([\s\S]*?)```/.exec(setup)?.[1];
    assert.ok(yaml, "the config block");
    const config = parseConfigText(yaml);
    assert.equal(config.mode, "attached");
    assert.equal(config.listen.x_forwarded, true);
  });
});
