/**
 * A real mxcd listening on a free loopback port, on a fresh database of the
 * chosen engine, with helpers to make users and call the API over HTTP.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type App, type AppOptions, createApp } from "../../src/app.js";
import type { ConfigInput } from "../../src/config/config-schema.js";
import { validateConfig } from "../../src/config/load-config.js";
import type { Engine } from "../../src/db/database.js";
import { formatSigningKeyFile, generateSigningKey } from "../../src/federation/signing-key.js";
import { createLogger } from "../../src/logging/logger.js";
import { createUrlPreviews } from "../../src/previews/create-url-previews.js";
import { migratedDatabaseConfig } from "./databases.js";
import { HttpClient } from "./http-client.js";
import { watchStoreConfig, watchStoreUse } from "./run-markers.js";
import { startS3rver } from "./s3rver.js";

export const TEST_SERVER_NAME = "test.local";
export const TEST_SHARED_SECRET = "test-shared-secret";

/** Login rate limits loose enough for suites that log in many times. */
const GENEROUS_LIMIT = { per_second: 1000, burst_count: 1000 };
export const TEST_RC_LOGIN = {
  address: GENEROUS_LIMIT,
  account: GENEROUS_LIMIT,
  failed_attempts: GENEROUS_LIMIT,
};

export interface TestServer {
  readonly app: App;
  readonly baseUrl: string;
  /** An HTTP client without a token. */
  readonly http: HttpClient;
  /** Creates a user directly and returns a client logged in as them. */
  user(localpart: string, options?: { admin?: boolean; password?: string }): Promise<TestUser>;
  stop(): Promise<void>;
}

export interface TestUser {
  readonly userId: string;
  readonly token: string;
  readonly http: HttpClient;
}

/** What a test may add to a server's start. */
export interface TestServerHooks {
  /** Runs after the app is built, before it starts (extra jobs, say). */
  readonly beforeStart?: (app: App) => void;
  readonly appOptions?: AppOptions;
  /**
   * Where the server's log goes, one JSON line per element, at the config's
   * `log_level` (pass one, e.g. `trace`: the test default is silent);
   * unset: nowhere but the test runner's stdout.
   */
  readonly logLines?: string[];
}

export async function startTestServer(
  engine: Engine,
  overrides: Partial<ConfigInput> = {},
  hooks: TestServerHooks = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-server-"));
  // MXCD_TEST_MEDIA_STORE=s3 runs every test server on its own s3rver
  // instead of a media folder (npm test runs the suite both ways; the S3
  // pass only the files whose servers used the store, see watchStoreUse).
  const storeUnderTest = overrides.media_store === undefined;
  const s3 =
    process.env.MXCD_TEST_MEDIA_STORE === "s3" && storeUnderTest ? await startS3rver() : undefined;
  // A key file made beforehand, as an admin would (attached mode refuses to
  // create one: the homeserver must publish it).
  writeFileSync(join(dir, "signing.key"), formatSigningKeyFile([generateSigningKey()]), {
    mode: 0o600,
  });
  const config = validateConfig({
    server_name: TEST_SERVER_NAME,
    listen: { host: "127.0.0.1", port: 0 },
    // A test's own `database` wins; otherwise a copy of the migrated template.
    database: overrides.database ?? (await migratedDatabaseConfig(engine)),
    media_store: s3 ? s3.storeConfig() : { engine: "filesystem", path: join(dir, "media") },
    signing_key_path: join(dir, "signing.key"),
    registration_shared_secret: TEST_SHARED_SECRET,
    rc_login: TEST_RC_LOGIN,
    log_level: process.env.MXCD_TEST_LOG_LEVEL ?? "silent",
    shutdown_grace_period: "2s",
    ...overrides,
  });
  // The server loads the preview stack only when on (loadUrlPreviews); tests always pass it.
  const watchedConfig = storeUnderTest ? watchStoreConfig(config) : undefined;
  const logLines = hooks.logLines;
  const logger = logLines
    ? createLogger(config.log_level, { write: (line: string) => void logLines.push(line) })
    : createLogger(config.log_level);
  const app = createApp(watchedConfig?.config ?? config, logger, {
    urlPreviews: createUrlPreviews,
    ...(storeUnderTest ? { wrapStore: watchStoreUse } : {}),
    ...hooks.appOptions,
  });
  // The app has read its store config; a test that reads it uses the store.
  watchedConfig?.arm();
  hooks.beforeStart?.(app);
  let baseUrl: string;
  try {
    baseUrl = await app.start();
  } catch (error) {
    // A server that fails to start must not keep the test process alive.
    await app.stop().catch(() => {});
    await s3?.stop();
    throw error;
  }
  const http = new HttpClient(baseUrl);
  return {
    app,
    baseUrl,
    http,
    async user(localpart, options = {}) {
      const userId = await app.accounts.register({
        localpart,
        password: options.password ?? "password",
        admin: options.admin ?? false,
      });
      const session = await app.accounts.issueToken(userId, "TESTDEVICE");
      return { userId, token: session.accessToken, http: http.withToken(session.accessToken) };
    },
    async stop() {
      await app.stop();
      await s3?.stop();
    },
  };
}
