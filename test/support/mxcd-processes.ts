/**
 * Several real `mxcd serve` processes (the built CLI) on ONE PostgreSQL
 * database and ONE filesystem media store, the scaled-out shape of
 * docs/deployment.md, started together (so they also race to migrate and to
 * create the shared signing key). The test process opens the same database
 * to make users and to inspect rows, and the same store to inspect keys.
 */
import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServices, type Services } from "../../src/app.js";
import { validateConfig } from "../../src/config/load-config.js";
import { createDatabase } from "../../src/db/database.js";
import { FilesystemBlobStore } from "../../src/storage/filesystem/filesystem-blob-store.js";
import { spawnCli, waitForHttp } from "./cli.js";
import { freshDatabaseConfig } from "./databases.js";
import { HttpClient } from "./http-client.js";
import { freePort } from "./postgres-cluster.js";
import { TEST_SERVER_NAME } from "./test-server.js";

export interface MxcdProcess {
  readonly base: string;
  readonly child: ChildProcess & { output: () => string };
  /** A client of this process, with `token` when given. */
  http(token?: string): HttpClient;
  /** Current value of `mxcd_waiting_requests{kind}` on this process. */
  waiting(kind: "async_upload" | "feed" | "remote_fetch" | "thumbnail"): Promise<number>;
}

export interface ProcessGroup {
  readonly processes: readonly MxcdProcess[];
  /** The shared media store root. */
  readonly mediaPath: string;
  readonly store: FilesystemBlobStore;
  readonly services: Services;
  /** Registers a user and returns an access token for it. */
  token(localpart: string, options?: { admin?: boolean }): Promise<string>;
  stop(): Promise<void>;
}

/** Starts `count` processes sharing a fresh database and media store; `extra` is added to each config. */
export async function startProcessGroup(
  count: number,
  extra: Record<string, unknown> = {},
): Promise<ProcessGroup> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-group-"));
  const mediaPath = join(dir, "media");
  const database = await freshDatabaseConfig("postgres");
  const common = {
    server_name: TEST_SERVER_NAME,
    database,
    media_store: { engine: "filesystem", path: mediaPath },
    signing_key_path: join(dir, "signing.key"),
    log_level: "warn",
    shutdown_grace_period: "2s",
    max_pending_media_uploads: 1000,
    ...extra,
  };
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
  let stopping = false;
  const processes = await Promise.all(
    ports.map(async (port, i) => {
      const file = `mxcd-${i + 1}.yaml`;
      const config = { ...common, listen: { host: "127.0.0.1", port } };
      writeFileSync(join(dir, file), JSON.stringify(config));
      const child = spawnCli(["serve", "--config", file], dir);
      reportUnexpectedExit(child, file, () => stopping);
      const base = `http://127.0.0.1:${port}`;
      await waitForHttp(`${base}/health`, child);
      return mxcdProcess(base, child);
    }),
  );
  const services = createServices(validateConfig(common), createDatabase(database));
  return {
    processes,
    mediaPath,
    store: new FilesystemBlobStore(mediaPath),
    services,
    async token(localpart, options = {}) {
      const userId = await services.accounts.register({
        localpart,
        password: "password",
        admin: options.admin ?? false,
      });
      return (await services.accounts.issueToken(userId, "TESTDEVICE")).accessToken;
    },
    async stop() {
      stopping = true;
      await Promise.all(
        processes.map(async ({ child }) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill("SIGTERM");
          await once(child, "exit");
        }),
      );
      await services.database.close();
    },
  };
}

/**
 * A process that dies while its test still runs (unless the test killed it)
 * is a failure the test only sees as refused connections; print how it ended
 * and the tail of its output so the test log says why.
 */
function reportUnexpectedExit(
  child: MxcdProcess["child"],
  file: string,
  stopping: () => boolean,
): void {
  child.once("exit", (code, signal) => {
    if (stopping()) return;
    const tail = child.output().slice(-8_000);
    console.error(
      `mxcd (${file}) exited before its group was stopped: code ${code}, signal ${signal}\n${tail}`,
    );
  });
}

function mxcdProcess(base: string, child: MxcdProcess["child"]): MxcdProcess {
  return {
    base,
    child,
    http: (token) => new HttpClient(base, token),
    async waiting(kind) {
      const text = await (await fetch(`${base}/metrics`)).text();
      const match = new RegExp(`^mxcd_waiting_requests\\{kind="${kind}"\\} (\\d+)$`, "m").exec(
        text,
      );
      return Number(match?.[1] ?? 0);
    },
  };
}

/** Resolves once `condition()` holds, checking every 20 ms (the test's time limit bounds it). */
export async function until(condition: () => Promise<boolean> | boolean): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 20));
}
