/**
 * A second real `mxcd serve` process on a test server's database and media
 * store (its own directory and port), for tests that need two processes
 * writing at once.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Config } from "../../src/config/config-schema.js";
import { spawnCli, stopCli, waitForHttp } from "./cli.js";
import { freePort } from "./postgres-cluster.js";
import type { TestServer } from "./test-server.js";

export type SecondProcess = ReturnType<typeof spawnCli> & { readonly base: string };

/** Starts it with `server`'s server name, database and store, plus `extra` config; resolves once it answers. */
export async function startSecondProcess(
  server: TestServer,
  extra: Record<string, unknown> = {},
): Promise<SecondProcess> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-second-"));
  const port = await freePort();
  const config = server.app.config;
  writeFileSync(
    join(dir, "mxcd.yaml"),
    JSON.stringify({
      server_name: config.server_name,
      listen: { host: "127.0.0.1", port },
      database: config.database,
      media_store: asConfigText(config.media_store),
      log_level: "warn",
      ...extra,
    }),
  );
  const child = spawnCli(["serve", "--config", "mxcd.yaml"], dir);
  const second = Object.assign(child, { base: `http://127.0.0.1:${port}` });
  await waitForHttp(`${second.base}/health`, child);
  return second;
}

/** Stops it (SIGTERM) unless it has already exited. */
export async function stopSecondProcess(second: SecondProcess | undefined): Promise<void> {
  if (second) await stopCli(second);
}

/** A parsed media_store as config text again: its duration back to a string with a unit. */
export function asConfigText(store: Config["media_store"]) {
  return store.engine === "s3"
    ? { ...store, presigned_url_ttl: `${store.presigned_url_ttl}ms` }
    : store;
}
