/**
 * The composition root: builds every part of mxcd from the config, wires
 * them together and returns `{ start, stop }`. Nothing else constructs
 * backends or services; there are no module-level singletons.
 */
import type { FastifyInstance } from "fastify";
import { AccountService } from "./accounts/account-service.js";
import { SharedSecretRegistration } from "./accounts/shared-secret-registration.js";
import type { Config } from "./config/config-schema.js";
import { createDatabase, type Database } from "./db/database.js";
import { runMigrations } from "./db/migrate.js";
import { Auth } from "./http/auth.js";
import { createMetricsRegistry } from "./http/http-metrics.js";
import { createHttpServer } from "./http/http-server.js";
import { registerClientVersionsRoutes } from "./http/routes/client-versions-routes.js";
import { registerHealthRoutes } from "./http/routes/health-routes.js";
import { registerLoginRoutes } from "./http/routes/login-routes.js";
import { registerRegistrationAdminRoutes } from "./http/routes/registration-admin-routes.js";
import { registerUserAdminRoutes } from "./http/routes/user-admin-routes.js";
import type { Logger } from "./logging/logger.js";
import { AccessTokenRepository } from "./repositories/access-token-repository.js";
import { RegistrationNonceRepository } from "./repositories/registration-nonce-repository.js";
import { UserRepository } from "./repositories/user-repository.js";

export interface App {
  readonly config: Config;
  readonly database: Database;
  readonly http: FastifyInstance;
  readonly accounts: AccountService;
  /** Migrates the database and starts listening; resolves to the base URL. Idempotent. */
  start(): Promise<string>;
  /** Stops accepting requests, drains in-flight ones (up to the grace period), closes the database. Idempotent. */
  stop(): Promise<void>;
}

/** The services behind the HTTP layer; also used directly by the CLI. */
export interface Services {
  readonly database: Database;
  readonly users: UserRepository;
  readonly accounts: AccountService;
  readonly registration: SharedSecretRegistration;
}

/** Builds the services over a database (no HTTP). */
export function createServices(config: Config, database: Database): Services {
  const users = new UserRepository(database);
  const tokens = new AccessTokenRepository(database);
  const accounts = new AccountService(config.server_name, users, tokens);
  const registration = new SharedSecretRegistration(
    config.registration_shared_secret,
    new RegistrationNonceRepository(database),
    accounts,
  );
  return { database, users, accounts, registration };
}

export function createApp(config: Config, logger: Logger): App {
  const database = createDatabase(config.database);
  const services = createServices(config, database);
  const metrics = createMetricsRegistry();
  const http = createHttpServer({ logger, metrics });
  const auth = new Auth(services.accounts);
  const serverName = config.server_name;

  registerHealthRoutes(http, metrics);
  registerClientVersionsRoutes(http);
  registerLoginRoutes(http, { serverName, accounts: services.accounts, auth });
  registerRegistrationAdminRoutes(http, { serverName, registration: services.registration });
  registerUserAdminRoutes(http, {
    serverName,
    auth,
    accounts: services.accounts,
    users: services.users,
  });

  let started: Promise<string> | undefined;
  let stopped: Promise<void> | undefined;

  return {
    config,
    database,
    http,
    accounts: services.accounts,
    start() {
      started ??= (async () => {
        const { applied } = await runMigrations(database);
        if (applied.length > 0) logger.info({ applied }, "applied schema migrations");
        const address = await http.listen({ host: config.listen.host, port: config.listen.port });
        logger.info({ address, server_name: serverName }, "mxcd is listening");
        return address;
      })();
      return started;
    },
    stop() {
      stopped ??= (async () => {
        await closeWithGrace(http, config.shutdown_grace_period * 1000, logger);
        await database.close();
      })();
      return stopped;
    },
  };
}

/** Closes the HTTP server, letting in-flight requests finish for up to `graceMs`. */
async function closeWithGrace(http: FastifyInstance, graceMs: number, logger: Logger) {
  const timer = setTimeout(() => {
    logger.warn({ grace_ms: graceMs }, "grace period over: closing remaining connections");
    http.server.closeAllConnections();
  }, graceMs);
  // A keep-alive connection whose last request finishes during the drain
  // becomes idle and would hold close() open until the grace period ends.
  const sweeper = setInterval(() => http.server.closeIdleConnections(), 50);
  try {
    await http.close();
  } finally {
    clearTimeout(timer);
    clearInterval(sweeper);
  }
}
