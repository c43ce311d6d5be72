/**
 * `mxcd serve`: loads (or, on first run, creates) the config, starts the
 * server, and shuts it down gracefully on SIGTERM/SIGINT.
 */
import { existsSync, writeFileSync } from "node:fs";
import { createApp } from "../app.js";
import { loadConfigFile } from "../config/load-config.js";
import { sampleConfig } from "../config/sample-config.js";
import { createLogDestination } from "../logging/log-destination.js";
import { createLogger } from "../logging/logger.js";
import { loadUrlPreviews } from "../previews/load-url-previews.js";
import {
  holdYoungGenerationDuringStartup,
  releaseOnFirstRequest,
} from "./startup-young-generation.js";

export async function serveCommand(
  configPath: string,
  releaseYoungGeneration: () => void = holdYoungGenerationDuringStartup(),
): Promise<void> {
  if (!existsSync(configPath)) {
    writeFileSync(configPath, sampleConfig(), { flag: "wx", mode: 0o600 });
    console.error(`mxcd: no config at ${configPath}; wrote a default one (embedded: ./data).`);
  }
  const config = loadConfigFile(configPath);
  const logger = createLogger(config.log_level, createLogDestination());
  // The URL-preview modules load only when previews are on (memory at rest).
  const app = createApp(config, logger, { urlPreviews: await loadUrlPreviews(config) });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: draining in-flight requests");
    app.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "error during shutdown");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));

  let address: string;
  try {
    address = await app.start();
  } catch (error) {
    releaseYoungGeneration();
    throw error;
  }
  releaseOnFirstRequest(app.http.server, releaseYoungGeneration);
  if (!(await app.accounts.hasAdmin())) {
    console.error(
      `mxcd: listening on ${address}. No admin account yet; create one with:\n` +
        `  npx mxcd register-user --config ${configPath} --admin --user admin`,
    );
  }
}
