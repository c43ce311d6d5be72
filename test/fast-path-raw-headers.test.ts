/**
 * The serving fast path reads the request's headers from Node's raw list
 * (`authorizationOf`, fast-path.ts) instead of `req.headers`, and reuses the
 * answer it worked out for a cached row or thumbnail list. Both must leave
 * the answers exactly as they were: a header the fast path leaves to the
 * routes is recognised in any letter case, a request it cannot read the way
 * Node would (two Authorization headers) goes to the routes, and every
 * thumbnail size gets its own answer, not a remembered one.
 *
 * Which path answered is observable: `mxcd_fast_path_requests_total
 * {route,result}` counts `answered` and `passed`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import type { OutgoingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { hashAccessToken } from "../src/accounts/access-token.js";
import { type App, createApp } from "../src/app.js";
import { validateConfig } from "../src/config/load-config.js";
import { formatSigningKeyFile, generateSigningKey } from "../src/federation/signing-key.js";
import { authorizationOf } from "../src/http/fast-path.js";
import { createLogger } from "../src/logging/logger.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";
import { HttpClient } from "./support/http-client.js";
import { uploadBytes } from "./support/media.js";
import { rawGet } from "./support/raw-get.js";
import { waitFor } from "./support/wait-for.js";

const V1 = "/_matrix/client/v1/media";

async function answered(baseUrl: string, route: string): Promise<number> {
  const text = await (await fetch(new URL("/metrics", baseUrl))).text();
  const line = text
    .split("\n")
    .find((l) => l.startsWith(`mxcd_fast_path_requests_total{route="${route}",result="answered"}`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("authorizationOf (the fast path's reading of rawHeaders)", () => {
  it("finds Authorization in any case, and refuses what the routes must answer", () => {
    assert.equal(authorizationOf(["Host", "x", "AUTHORIZATION", "Bearer t"]), "Bearer t");
    assert.equal(authorizationOf(["host", "x"]), undefined);
    assert.equal(authorizationOf(["Content-Length", "0", "authorization", "a"]), "a");
    for (const refused of [
      ["Range", "bytes=0-1"],
      ["RANGE", "bytes=0-1"],
      ["If-None-Match", "x"],
      ["IF-NONE-MATCH", "x"],
      ["content-length", "5"],
      ["Transfer-Encoding", "chunked"],
      ["Authorization", "Bearer a", "authorization", "Bearer b"],
    ]) {
      assert.equal(authorizationOf(refused), null, refused.join(": "));
    }
  });
});

describe("hashAccessToken (one-shot SHA-256)", () => {
  it("is the hex SHA-256 of the token's UTF-8 bytes, as stored hashes were made", () => {
    for (const token of ["mxcd_abc", "syt_dG9rZW4_x", "ünïcødé-token", ""]) {
      assert.equal(hashAccessToken(token), createHash("sha256").update(token).digest("hex"));
    }
  });
});

forEachEngine("serving fast path, headers and prepared answers", (engine) => {
  let fast: App;
  let routes: App;
  let fastUrl: string;
  let routesUrl: string;
  let alice: string;
  let fileId: string;
  let imageId: string;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), "mxcd-fast-path-raw-"));
    writeFileSync(join(dir, "signing.key"), formatSigningKeyFile([generateSigningKey()]));
    const base = {
      server_name: "test.local",
      listen: { host: "127.0.0.1", port: 0 },
      database: await freshDatabaseConfig(engine),
      media_store: { engine: "filesystem", path: join(dir, "media") },
      signing_key_path: join(dir, "signing.key"),
      shutdown_grace_period: "2s",
      log_level: "silent",
    } as const;
    fast = createApp(validateConfig(base), createLogger("silent"));
    routes = createApp(
      validateConfig({
        ...base,
        media_cache: { fast_path: false, metadata_max_entries: 0, token_max_entries: 0 },
      }),
      createLogger("silent"),
    );
    fastUrl = await fast.start();
    routesUrl = await routes.start();
    const userId = await fast.accounts.register({
      localpart: "alice",
      password: "pw",
      admin: false,
    });
    alice = (await fast.accounts.issueToken(userId, "DEV")).accessToken;
    const http = new HttpClient(fastUrl, alice);
    fileId = await uploadBytes(http, Buffer.from("0123456789abcdef"), {
      contentType: "text/plain",
      filename: "digits.txt",
    });
    const png = await sharp({
      create: { width: 640, height: 480, channels: 3, background: { r: 9, g: 99, b: 199 } },
    })
      .png()
      .toBuffer();
    imageId = await uploadBytes(http, png, { contentType: "image/png" });
  });
  after(async () => {
    await fast.stop();
    await routes.stop();
  });

  /** GETs until the fast path answers (the caches fill on the routes' first answers). */
  const untilFast = (path: string, route: string) =>
    waitFor(async () => {
      const before = await answered(fastUrl, route);
      assert.equal((await rawGet(fastUrl, path, { Authorization: `Bearer ${alice}` })).status, 200);
      return (await answered(fastUrl, route)) === before + 1;
    }, "the fast path answers");

  it("leaves Range and If-None-Match in any letter case to the routes", async () => {
    const path = `${V1}/download/test.local/${fileId}`;
    await untilFast(path, "download");
    const before = await answered(fastUrl, "download");
    for (const extra of [
      { RANGE: "bytes=2-5" },
      { "If-None-Match": '"1"' },
      { "IF-NONE-MATCH": "1" },
    ] as OutgoingHttpHeaders[]) {
      const headers = { AUTHORIZATION: `Bearer ${alice}`, ...extra };
      const answer = await rawGet(fastUrl, path, headers);
      assert.ok([206, 304].includes(answer.status), `${JSON.stringify(extra)}: ${answer.status}`);
      assert.deepEqual(answer, await rawGet(routesUrl, path, headers));
    }
    assert.equal(await answered(fastUrl, "download"), before);
    // An Authorization header in capitals is still the fast path's.
    const caps = await rawGet(fastUrl, path, { AUTHORIZATION: `Bearer ${alice}` });
    assert.equal(await answered(fastUrl, "download"), before + 1);
    assert.deepEqual(caps, await rawGet(routesUrl, path, { authorization: `Bearer ${alice}` }));
  });

  it("leaves two Authorization headers to the routes", async () => {
    const path = `${V1}/download/test.local/${fileId}`;
    await untilFast(path, "download");
    const before = await answered(fastUrl, "download");
    const headers = { Authorization: [`Bearer ${alice}`, "Bearer nonsense"] };
    const answer = await rawGet(fastUrl, path, headers);
    assert.equal(await answered(fastUrl, "download"), before);
    assert.deepEqual(answer, await rawGet(routesUrl, path, headers));
  });

  it("answers each thumbnail size with its own stored thumbnail, as the routes do", async () => {
    const sizes = [
      "width=32&height=32&method=crop",
      "width=96&height=96&method=crop",
      "width=320&height=240&method=scale",
      // No stored 50×50: the routes' choice among the stored ones.
      "width=50&height=50&method=crop",
      "width=32&height=32&method=crop",
    ];
    for (const query of sizes) {
      const path = `${V1}/thumbnail/test.local/${imageId}?${query}`;
      await untilFast(path, "thumbnail");
      const before = await answered(fastUrl, "thumbnail");
      const answer = await rawGet(fastUrl, path, { Authorization: `Bearer ${alice}` });
      assert.equal(await answered(fastUrl, "thumbnail"), before + 1, query);
      assert.deepEqual(answer, await rawGet(routesUrl, path, { Authorization: `Bearer ${alice}` }));
    }
  });
});
