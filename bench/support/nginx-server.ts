/**
 * nginx as the reference static file server: it serves the media store's
 * folder as it is, so `/local_content/ab/cd/rest` is the very file mxcd
 * streams for media id `abcdrest`. Everything it writes (pid, error log,
 * temp folders) stays in its own temp folder; it runs in the foreground
 * (`daemon off`) as our child, so stopping it is a signal to one process.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Cleanup } from "./cleanup.js";
import { freePort, waitForHttp } from "./network.js";
import { OutputTail, runCommand, stopChild } from "./processes.js";

/** A running nginx. */
export interface NginxServer {
  /** `http://127.0.0.1:<port>`; paths below it are paths below the served root. */
  readonly baseUrl: string;
  /** The master process; its workers are its children. */
  readonly pid: number;
  /** The `worker_processes` value it runs with. */
  readonly workers: string;
  stop(): Promise<void>;
}

export interface NginxOptions {
  readonly nginx: string;
  /** Folder for the config, pid file, error log and temp folders. */
  readonly dir: string;
  /** Folder served at `/`. */
  readonly root: string;
  /** `worker_processes`: a number or `auto`. */
  readonly workers: string;
}

/** Starts nginx on a free loopback port; `cleanup` stops it if the caller does not. */
export async function startNginx(options: NginxOptions, cleanup: Cleanup): Promise<NginxServer> {
  const port = await freePort();
  const configPath = join(options.dir, "nginx.conf");
  writeFileSync(configPath, nginxConfig(options, port, await tempPathDirectives(options)));
  const errorLog = join(options.dir, "error.log");
  const child = spawn(options.nginx, ["-p", options.dir, "-c", configPath, "-e", errorLog], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const stderr = new OutputTail(child.stderr);
  const stop = () => stopChild(child, "SIGTERM", 10_000);
  cleanup.add("stop nginx", stop);
  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${baseUrl}/`, 10_000, () => child.exitCode === null);
  } catch (error) {
    throw new Error(`nginx did not start: ${(error as Error).message}\n${stderr.text()}`);
  }
  if (child.pid === undefined) throw new Error("nginx has no pid");
  return { baseUrl, pid: child.pid, workers: options.workers, stop };
}

function nginxConfig(options: NginxOptions, port: number, tempPaths: string[]): string {
  // As root the workers would switch to `nobody`, who cannot read a 0700 temp folder.
  const user = process.getuid?.() === 0 ? "user root;" : "";
  return `
daemon off;
${user}
worker_processes ${options.workers};
pid ${join(options.dir, "nginx.pid")};
error_log ${join(options.dir, "error.log")} warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  # wrk keeps its connections open for the whole run; nginx's default closes them every 1,000 requests.
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  default_type application/octet-stream;
  types {}
  ${tempPaths.join("\n  ")}
  server {
    listen 127.0.0.1:${port};
    root ${options.root};
    location / {}
  }
}
`;
}

/**
 * `*_temp_path` directives pointing into our folder, one for each module the
 * binary has: a directive for a module built out (nginx-light has no uwsgi
 * or scgi) is a config error, and the compiled-in defaults are not writable
 * by every user.
 */
async function tempPathDirectives(options: NginxOptions): Promise<string[]> {
  const build = await runCommand(options.nginx, ["-V"]);
  const configure = `${build.stdout}${build.stderr}`;
  return ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .filter(
      (name) => name === "client_body" || !configure.includes(`--without-http_${name}_module`),
    )
    .map((name) => `${name}_temp_path ${join(options.dir, `${name}_temp`)};`);
}
