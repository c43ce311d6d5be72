/**
 * nginx, in two roles:
 *
 * - the reference static file server: it serves the media store's folder as
 *   it is, so `/local_content/ab/cd/rest` is the very file mxcd streams for
 *   media id `abcdrest`;
 * - a reverse proxy in front of one or more mxcd processes (an upstream of
 *   their ports, keep-alive connections to them, no buffering), configured
 *   as docs/deployment.md tells a deployment with several processes to.
 *
 * Everything it writes (pid, error log, temp folders) stays in its own temp
 * folder; it runs in the foreground (`daemon off`) as our child, so stopping
 * it is a signal to one process.
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

/** A running nginx proxy with one listening port per upstream. */
export interface NginxProxy {
  /** `http://127.0.0.1:<port>` of each upstream, in the order given. */
  readonly baseUrls: readonly string[];
  /** The master process; its workers are its children. */
  readonly pid: number;
  stop(): Promise<void>;
}

interface NginxCommon {
  readonly nginx: string;
  /** Folder for the config, pid file, error log and temp folders. */
  readonly dir: string;
  /** `worker_processes`: a number or `auto`. */
  readonly workers: string;
}

export interface NginxOptions extends NginxCommon {
  /** Folder served at `/`. */
  readonly root: string;
  /** Content types by file extension (`{ html: "text/html" }`); default every file is octet-stream. */
  readonly types?: Readonly<Record<string, string>>;
}

export interface NginxProxyOptions extends NginxCommon {
  /** Each upstream's loopback ports; nginx listens on one port per upstream. */
  readonly upstreams: ReadonlyArray<readonly number[]>;
  /**
   * `proxy_buffer_size` (e.g. `64k`; `proxy_buffers 4` and `proxy_busy_buffers_size`
   * of the same size); nginx's defaults (one memory page) when unset.
   */
  readonly bufferSize?: string | undefined;
}

/** Starts nginx as a static file server on a free loopback port; `cleanup` stops it. */
export async function startNginx(options: NginxOptions, cleanup: Cleanup): Promise<NginxServer> {
  const port = await freePort();
  const server = `
  server {
    listen 127.0.0.1:${port};
    root ${options.root};
    location / {${typesDirective(options.types)}}
  }`;
  const baseUrl = `http://127.0.0.1:${port}`;
  const { pid, stop } = await launch(options, [server], `${baseUrl}/`, cleanup);
  return { baseUrl, pid, workers: options.workers, stop };
}

/**
 * Starts nginx as a reverse proxy: for each upstream, a port that passes
 * every request to it (round robin over its ports), with the `location`
 * settings of docs/deployment.md ("nginx in front of three processes"):
 * `proxy_buffering off` and `proxy_request_buffering off` stream bodies
 * through as they come; `keepalive 32` reuses HTTP/1.1 connections to the
 * upstream. `cleanup` stops it.
 */
export async function startNginxProxy(
  options: NginxProxyOptions,
  cleanup: Cleanup,
): Promise<NginxProxy> {
  const ports = await Promise.all(options.upstreams.map(() => freePort()));
  const blocks = options.upstreams.flatMap((upstream, i) => [
    `
  upstream mxcd${i} {
    ${upstream.map((port) => `server 127.0.0.1:${port};`).join("\n    ")}
    keepalive 32;
  }`,
    `
  server {
    listen 127.0.0.1:${ports[i]};
    client_max_body_size 60m;
    location / {
      proxy_pass http://mxcd${i};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_request_buffering off;
      proxy_buffering off;${bufferDirectives(options.bufferSize)}
      proxy_read_timeout 300s;
      proxy_send_timeout 300s;
    }
  }`,
  ]);
  const baseUrls = ports.map((port) => `http://127.0.0.1:${port}`);
  const { pid, stop } = await launch(options, blocks, `${baseUrls[0]}/health`, cleanup);
  return { baseUrls, pid, stop };
}

/** A `types { … }` block for a location, or nothing. */
export interface NginxAccelProxyOptions extends NginxCommon {
  /** mxcd's port. */
  readonly upstream: number;
  /** mxcd's `media_store.accel_redirect.location`, e.g. `/_mxcd_internal/`. */
  readonly location: string;
  /** The media store folder that location serves. */
  readonly storeRoot: string;
}

/**
 * nginx in front of one mxcd with `media_store.accel_redirect`: mxcd checks
 * each download and answers with `X-Accel-Redirect: <location><key>`, and
 * nginx sends the file from an `internal` location (sendfile).
 */
export async function startNginxAccelProxy(
  options: NginxAccelProxyOptions,
  cleanup: Cleanup,
): Promise<NginxServer> {
  const port = await freePort();
  const blocks = [
    `
  upstream mxcd {
    server 127.0.0.1:${options.upstream};
    keepalive 32;
  }`,
    `
  server {
    listen 127.0.0.1:${port};
    location ${options.location} {
      internal;
      alias ${options.storeRoot.replace(/\/+$/, "")}/;
    }
    location / {
      proxy_pass http://mxcd;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }`,
  ];
  const baseUrl = `http://127.0.0.1:${port}`;
  const { pid, stop } = await launch(options, blocks, `${baseUrl}/health`, cleanup);
  return { baseUrl, pid, workers: options.workers, stop };
}

function typesDirective(types: Readonly<Record<string, string>> | undefined): string {
  if (!types) return "";
  const entries = Object.entries(types).map(([ext, type]) => `${type} ${ext};`);
  return ` types { ${entries.join(" ")} } `;
}

/** `proxy_buffer_size` and the two settings nginx requires to be at least as large. */
function bufferDirectives(size: string | undefined): string {
  if (!size) return "";
  return [
    `proxy_buffer_size ${size};`,
    `proxy_buffers 4 ${size};`,
    `proxy_busy_buffers_size ${size};`,
  ]
    .map((line) => `\n      ${line}`)
    .join("");
}

/** Writes the config, starts nginx in the foreground and waits until `probeUrl` answers. */
async function launch(
  options: NginxCommon,
  blocks: readonly string[],
  probeUrl: string,
  cleanup: Cleanup,
): Promise<{ pid: number; stop: () => Promise<void> }> {
  const configPath = join(options.dir, "nginx.conf");
  writeFileSync(configPath, nginxConfig(options, blocks, await tempPathDirectives(options)));
  const errorLog = join(options.dir, "error.log");
  const child = spawn(options.nginx, ["-p", options.dir, "-c", configPath, "-e", errorLog], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const stderr = new OutputTail(child.stderr);
  const stop = () => stopChild(child, "SIGTERM", 10_000);
  cleanup.add("stop nginx", stop);
  try {
    await waitForHttp(probeUrl, 10_000, () => child.exitCode === null);
  } catch (error) {
    throw new Error(`nginx did not start: ${(error as Error).message}\n${stderr.text()}`);
  }
  if (child.pid === undefined) throw new Error("nginx has no pid");
  return { pid: child.pid, stop };
}

function nginxConfig(options: NginxCommon, blocks: readonly string[], tempPaths: string[]): string {
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
${blocks.join("\n")}
}
`;
}

/**
 * `*_temp_path` directives pointing into our folder, one for each module the
 * binary has: a directive for a module built out (nginx-light has no uwsgi
 * or scgi) is a config error, and the compiled-in defaults are not writable
 * by every user.
 */
async function tempPathDirectives(options: NginxCommon): Promise<string[]> {
  const build = await runCommand(options.nginx, ["-V"]);
  const configure = `${build.stdout}${build.stderr}`;
  return ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .filter(
      (name) => name === "client_body" || !configure.includes(`--without-http_${name}_module`),
    )
    .map((name) => `${name}_temp_path ${join(options.dir, `${name}_temp`)};`);
}
