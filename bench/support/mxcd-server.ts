/**
 * mxcd as a separate process, started exactly as an admin would start it
 * (`node dist/src/cli/main.js serve --config FILE`) on a throwaway SQLite
 * database (or a given PostgreSQL one) and filesystem media store, with one
 * registered, logged-in user. Several processes can share one database and
 * media store: the first registers the user, every one logs in.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { sampleConfig } from "../../src/config/sample-config.js";
import type { Cleanup } from "./cleanup.js";
import { freePort, waitForHttp } from "./network.js";
import { OutputTail, runChecked, runCommand, stopChild } from "./processes.js";

const SERVER_NAME = "bench.local";
const USER = "bench";
const PASSWORD = "bench-password";

/** The bench user's name and password (e.g. for a login form). */
export { PASSWORD as BENCH_PASSWORD, USER as BENCH_USER };

/** A running mxcd with a logged-in user. */
export interface MxcdServer {
  readonly baseUrl: string;
  /** The loopback port of `baseUrl`. */
  readonly port: number;
  readonly serverName: string;
  /** The server process (node itself, not a shell), for RSS sampling. */
  readonly pid: number;
  /** Root of the filesystem media store. */
  readonly mediaStore: string;
  /** Header carrying the user's access token. */
  readonly authHeaders: Record<string, string>;
  /**
   * Stops the server with SIGTERM (SIGKILL if it does not exit). Rejects,
   * quoting `lastOutput()`, when the server had already exited on its own
   * (a crash while the bench ran), once: a later call (the cleanup's)
   * resolves. A shutdown that ended non-zero is reported on stderr.
   */
  stop(): Promise<void>;
  /** The server's last lines on stdout (its log) and stderr, to say why something failed. */
  lastOutput(): string;
}

export interface MxcdOptions {
  /** `dist/src/cli/main.js`. */
  readonly cli: string;
  /** Folder for the config, and the database, media store and signing key unless given. */
  readonly dir: string;
  /** `max_upload_size`; mxcd's default when unset. */
  readonly maxUploadSize?: string;
  /** Extra node flags for the server process (e.g. `--cpu-prof`). */
  readonly nodeFlags?: readonly string[];
  /** `database` config; a SQLite file in `dir` when unset. */
  readonly database?: Record<string, unknown>;
  /** Root of the filesystem media store; `dir/media` when unset. */
  readonly mediaStore?: string;
  /** `signing_key_path`; `dir/signing.key` when unset. */
  readonly signingKeyPath?: string;
  /** More config keys (e.g. `dynamic_thumbnails`). */
  readonly extraConfig?: Record<string, unknown>;
  /** Register the bench user first (default); false when another process already did. */
  readonly registerUser?: boolean;
  /** Register the bench user as a server admin (`register-user -a`). */
  readonly admin?: boolean;
  /**
   * Start from the config `mxcd generate-config` ships (log_level info and
   * every other default), changing only the port, paths and server name;
   * otherwise the bench config (`log_level: warn`, 5 s grace period).
   */
  readonly shippedDefaults?: boolean;
  /**
   * A token to use instead of logging in (attached mode: the homeserver issued
   * it, and mxcd serves no login; pass `registerUser: false` too).
   */
  readonly accessToken?: string;
}

/** Writes a config, registers a user, starts the server and logs in. */
export async function startMxcd(options: MxcdOptions, cleanup: Cleanup): Promise<MxcdServer> {
  const port = await freePort();
  const mediaStore = options.mediaStore ?? join(options.dir, "media");
  const configPath = join(options.dir, "mxcd.yaml");
  writeFileSync(configPath, stringify(benchConfig(options, port, mediaStore)));
  if (options.registerUser !== false) {
    const register = ["register-user", "-c", configPath, "-u", USER, "-p", PASSWORD];
    if (options.admin) register.push("-a");
    await runChecked(process.execPath, [options.cli, ...register]);
  }

  const serve = [...(options.nodeFlags ?? []), options.cli, "serve", "-c", configPath];
  const child = spawn(process.execPath, serve, { stdio: ["ignore", "pipe", "pipe"] });
  const stdout = new OutputTail(child.stdout);
  const stderr = new OutputTail(child.stderr);
  const lastOutput = () => describeOutput(stdout, stderr);
  const stop = stopper(child, lastOutput);
  cleanup.add("stop mxcd", stop);

  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${baseUrl}/health`, 30_000, () => child.exitCode === null);
  } catch (error) {
    throw new Error(`mxcd did not start: ${(error as Error).message}\n${lastOutput()}`);
  }
  const token = options.accessToken ?? (await login(baseUrl));
  return {
    baseUrl,
    port,
    serverName: SERVER_NAME,
    pid: pidOf(child),
    mediaStore,
    authHeaders: { Authorization: `Bearer ${token}` },
    stop,
    lastOutput,
  };
}

/** Lines of each stream quoted in an error. */
const QUOTED_LINES = 40;

/** The last lines of the server's stdout and stderr, labelled, for an error message. */
function describeOutput(stdout: OutputTail, stderr: OutputTail): string {
  const quote = (name: string, tail: OutputTail) => {
    const lines = tail.lines(QUOTED_LINES);
    return `--- mxcd ${name}, last ${lines.length} lines ---\n${lines.join("\n")}`;
  };
  return `${quote("stdout (its log)", stdout)}\n${quote("stderr", stderr)}`;
}

/**
 * `stop` of a server: SIGTERM (the server drains for up to
 * shutdown_grace_period, 5 s), SIGKILL after 15 s. The first call rejects
 * when the server had exited before it (a crash), and reports on stderr a
 * shutdown that ended non-zero or needed SIGKILL.
 */
function stopper(child: ChildProcess, lastOutput: () => string): () => Promise<void> {
  let stopped = false;
  return async () => {
    if (stopped) return stopChild(child, "SIGTERM", 15_000);
    stopped = true;
    const early = child.exitCode !== null || child.signalCode !== null;
    await stopChild(child, "SIGTERM", 15_000);
    const how =
      child.signalCode !== null ? `on ${child.signalCode}` : `with code ${child.exitCode}`;
    if (early) throw new Error(`mxcd exited ${how} before it was stopped\n${lastOutput()}`);
    // Reported, not thrown: the bench's figures are in by now.
    if (child.exitCode !== 0) console.error(`mxcd's shutdown ended ${how}\n${lastOutput()}`);
  };
}

function benchConfig(options: MxcdOptions, port: number, mediaStore: string) {
  if (options.shippedDefaults) {
    const shipped = parse(sampleConfig({ serverName: SERVER_NAME, port })) as object;
    return {
      ...shipped,
      database: options.database ?? { engine: "sqlite", path: join(options.dir, "mxcd.sqlite") },
      media_store: { engine: "filesystem", path: mediaStore },
      signing_key_path: options.signingKeyPath ?? join(options.dir, "signing.key"),
      ...(options.maxUploadSize ? { max_upload_size: options.maxUploadSize } : {}),
      ...options.extraConfig,
    };
  }
  return {
    server_name: SERVER_NAME,
    listen: { host: "127.0.0.1", port },
    database: options.database ?? { engine: "sqlite", path: join(options.dir, "mxcd.sqlite") },
    media_store: { engine: "filesystem", path: mediaStore },
    // Not the default ./data/signing.key, which is relative to the working directory.
    signing_key_path: options.signingKeyPath ?? join(options.dir, "signing.key"),
    ...(options.maxUploadSize ? { max_upload_size: options.maxUploadSize } : {}),
    log_level: "warn",
    shutdown_grace_period: "5s",
    ...options.extraConfig,
  };
}

async function login(baseUrl: string): Promise<string> {
  const response = await fetch(`${baseUrl}/_matrix/client/v3/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ type: "m.login.password", user: USER, password: PASSWORD }),
  });
  const body = (await response.json()) as { access_token?: string };
  if (!response.ok || !body.access_token) {
    throw new Error(`login failed (${response.status}): ${JSON.stringify(body)}`);
  }
  return body.access_token;
}

function pidOf(child: ChildProcess): number {
  if (child.pid === undefined) throw new Error("mxcd has no pid");
  return child.pid;
}

/** What an upload returned and how long it took. */
export interface UploadOutcome {
  readonly mediaId: string;
  /** Wall-clock seconds of the whole `curl` run (connect, stream, response). */
  readonly seconds: number;
}

/**
 * Uploads a file with `curl -T` (which streams it from disk with a
 * Content-Length; `--data-binary @file` would read it all into memory first).
 */
export async function uploadFile(
  server: MxcdServer,
  curl: string,
  path: string,
  responsePath: string,
  contentType = "application/octet-stream",
): Promise<UploadOutcome> {
  const url = `${server.baseUrl}/_matrix/media/v3/upload?filename=bench.bin`;
  const headers = {
    ...server.authHeaders,
    "Content-Type": contentType,
    // No "Expect: 100-continue" round trip before the body.
    Expect: "",
  };
  const args = ["-sS", "-X", "POST", "-T", path, "-o", responsePath, "-w", "%{http_code}"];
  for (const [name, value] of Object.entries(headers)) {
    // `Name:` with nothing after it makes curl drop the header.
    args.push("-H", value ? `${name}: ${value}` : `${name}:`);
  }
  const result = await runCommand(curl, [...args, url]);
  const body = existsSync(responsePath) ? readFileSync(responsePath, "utf8") : "";
  if (result.code !== 0 || result.stdout !== "200") {
    throw new Error(
      `upload failed (curl ${result.code}, HTTP ${result.stdout}): ${result.stderr}${body}`,
    );
  }
  const uri = (JSON.parse(body) as { content_uri?: string }).content_uri ?? "";
  const prefix = `mxc://${server.serverName}/`;
  if (!uri.startsWith(prefix)) throw new Error(`unexpected upload response: ${body}`);
  return { mediaId: uri.slice(prefix.length), seconds: result.seconds };
}

/** Path of a local media file in the store (Synapse's `local_content/ab/cd/rest` layout). */
export function storedPath(server: MxcdServer, mediaId: string): string {
  return join(server.mediaStore, localContentPath(mediaId));
}

/** `local_content/ab/cd/rest` for media id `abcdrest`, relative to the store root. */
export function localContentPath(mediaId: string): string {
  return `local_content/${mediaId.slice(0, 2)}/${mediaId.slice(2, 4)}/${mediaId.slice(4)}`;
}

/** The authenticated (client v1) download URL of local media. */
export function downloadUrl(server: MxcdServer, mediaId: string): string {
  return `${server.baseUrl}/_matrix/client/v1/media/download/${server.serverName}/${mediaId}`;
}
