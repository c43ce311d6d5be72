/**
 * A real mxcd listening on a free loopback port, on a fresh database of the
 * chosen engine, with helpers to make users and call the API over HTTP.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type App, createApp } from "../../src/app.js";
import type { ConfigInput } from "../../src/config/config-schema.js";
import { validateConfig } from "../../src/config/load-config.js";
import type { Engine } from "../../src/db/database.js";
import { createLogger } from "../../src/logging/logger.js";
import { freshDatabaseConfig } from "./databases.js";
import { HttpClient } from "./http-client.js";

export const TEST_SERVER_NAME = "test.local";
export const TEST_SHARED_SECRET = "test-shared-secret";

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

export async function startTestServer(
  engine: Engine,
  overrides: Partial<ConfigInput> = {},
  hooks: { beforeStart?: (app: App) => void } = {},
): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-server-"));
  const config = validateConfig({
    server_name: TEST_SERVER_NAME,
    listen: { host: "127.0.0.1", port: 0 },
    database: await freshDatabaseConfig(engine),
    media_store: { engine: "filesystem", path: join(dir, "media") },
    signing_key_path: join(dir, "signing.key"),
    registration_shared_secret: TEST_SHARED_SECRET,
    log_level: process.env.MXCD_TEST_LOG_LEVEL ?? "silent",
    shutdown_grace_period: 2,
    ...overrides,
  });
  const app = createApp(config, createLogger(config.log_level));
  hooks.beforeStart?.(app);
  const baseUrl = await app.start();
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
    stop: () => app.stop(),
  };
}
