/**
 * One throwaway PostgreSQL cluster for a benchmark run: initdb in a temp
 * folder, a free loopback port, fsync off (the same settings as the tests'
 * clusters, test/support/postgres-cluster.ts). Every step registers its undo
 * with the run's Cleanup as soon as it is taken, and nothing blocks the
 * event loop, so Ctrl-C in the middle of start-up still removes everything.
 * As root, the server runs as the `postgres` system user (PostgreSQL refuses
 * to run as root). Each benchmark gets its own database in the cluster.
 */
import { spawn } from "node:child_process";
import { chownSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { findPostgresBin } from "../../test/support/postgres-cluster.js";
import type { Cleanup } from "./cleanup.js";
import { tempDir } from "./files.js";
import { freePort } from "./network.js";
import { OutputTail, runChecked, stopChild } from "./processes.js";

/** A running cluster. */
export interface BenchPostgres {
  /** URL of the `postgres` maintenance database (superuser `mxcd`, no password). */
  readonly adminUrl: string;
  /** Creates a database `name` and returns its connection URL. */
  createDatabase(name: string): Promise<string>;
}

/** Raised when PostgreSQL's binaries are not installed. */
export class PostgresMissingError extends Error {
  constructor() {
    super(
      "PostgreSQL is not installed (no initdb/postgres on PATH or in /usr/lib/postgresql/*/bin); " +
        "install it with `apt-get install -y postgresql`",
    );
    this.name = "PostgresMissingError";
  }
}

/** Starts a cluster; `cleanup` stops it and removes its folder. */
export async function startBenchPostgres(cleanup: Cleanup): Promise<BenchPostgres> {
  const bin = findPostgresBin();
  if (!bin) throw new PostgresMissingError();
  const dir = tempDir(cleanup, "mxcd-bench-pg-");
  const user = await postgresUser();
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  const initdb = ["-D", data, "-U", "mxcd", "--auth=trust", "--encoding=UTF8", "--locale=C"];
  await runChecked(join(bin, "initdb"), [...initdb, "--no-sync"], { ...user });

  const port = await freePort();
  const settings = [
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=400",
    "shared_buffers=128MB",
  ];
  const server = spawn(
    join(bin, "postgres"),
    ["-D", data, "-p", String(port), "-k", dir, ...settings.flatMap((s) => ["-c", s])],
    { ...user, stdio: ["ignore", "ignore", "pipe"] },
  );
  const log = new OutputTail(server.stderr, 4_000);
  // SIGINT is PostgreSQL's "fast" shutdown; registered after the folder, so it runs first.
  cleanup.add("stop PostgreSQL", () => stopChild(server, "SIGINT", 30_000));
  const adminUrl = `postgres://mxcd@127.0.0.1:${port}/postgres`;
  await waitUntilReady(adminUrl, () => server.exitCode !== null, log);
  return {
    adminUrl,
    async createDatabase(name) {
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        await admin.query(`create database ${name}`);
      } finally {
        await admin.end();
      }
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      return url.toString();
    },
  };
}

/** `postgres`'s uid and gid when we are root, else undefined (run as ourselves). */
async function postgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const id = async (flag: string) => Number((await runChecked("id", [flag, "postgres"])).stdout);
  return { uid: await id("-u"), gid: await id("-g") };
}

async function waitUntilReady(url: string, died: () => boolean, log: OutputTail): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (error) {
      await client.end().catch(() => {});
      if (died() || Date.now() > deadline) {
        throw new Error(`PostgreSQL did not start: ${(error as Error).message}\n${log.text()}`);
      }
      await sleep(100);
    }
  }
}

/** Lazily starts one cluster on first use, shared by every benchmark that asks. */
export class SharedPostgres {
  #started: Promise<BenchPostgres> | undefined;

  constructor(private readonly cleanup: Cleanup) {}

  get(): Promise<BenchPostgres> {
    this.#started ??= startBenchPostgres(this.cleanup);
    return this.#started;
  }
}
