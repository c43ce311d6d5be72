/**
 * A throwaway nginx (the real binary) serving one `server` block, every path
 * inside a fresh temporary folder, on a free loopback port. Suites that use
 * it skip loudly without nginx, fail under CI=true, and record a run marker
 * (`markSuiteRan("nginx")`) once it answers.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "./mxcd-processes.js";
import { freePort } from "./postgres-cluster.js";

/** The nginx binary (it lives in /usr/sbin, not on every PATH), if installed. */
export function findNginx(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin"];
  return dirs.map((dir) => join(dir, "nginx")).find((path) => existsSync(path));
}

export interface RunningNginx {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** nginx's error log so far (for assertion messages). */
  errors(): string;
  stop(): Promise<void>;
}

/**
 * Starts `binary` with `serverBody` (the inside of a `server` block, without
 * `listen`) and resolves once it accepts connections.
 */
export async function startNginx(binary: string, serverBody: string): Promise<RunningNginx> {
  return startNginxHttp(binary, (port, dir) => {
    writeFileSync(join(dir, "site.conf"), serverBody);
    return `server {\n  listen 127.0.0.1:${port};\n  include ${dir}/site.conf;\n}`;
  });
}

/**
 * Starts `binary` with `httpBody(port, dir)` as the inside of its `http`
 * block (upstreams and servers; `port` is a free loopback port for it to
 * listen on, `dir` its temporary folder) and resolves once `ready(url)` is
 * true (by default: once it accepts connections).
 */
export async function startNginxHttp(
  binary: string,
  httpBody: (port: number, dir: string) => string,
  ready: (url: string) => Promise<boolean> = (url) =>
    fetch(url).then(
      () => true,
      () => false,
    ),
): Promise<RunningNginx> {
  const dir = mkdtempSync(join(tmpdir(), "mxcd-nginx-"));
  chmodSync(dir, 0o755); // nginx workers may run as another user
  mkdirSync(join(dir, "client_body"));
  const port = await freePort();
  writeFileSync(join(dir, "nginx.conf"), mainConfig(binary, dir, httpBody(port, dir)));
  const nginx: ChildProcess = spawn(
    binary,
    ["-p", dir, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")],
    { stdio: "ignore" },
  );
  const errors = () => readSafe(join(dir, "error.log"));
  const url = `http://127.0.0.1:${port}`;
  await until(async () => {
    assert.equal(nginx.exitCode, null, `nginx exited: ${errors()}`);
    return ready(url);
  });
  return {
    url,
    errors,
    async stop() {
      if (nginx.exitCode !== null) return;
      nginx.kill("SIGTERM");
      await once(nginx, "exit");
    },
  };
}

/** A main nginx.conf with every path inside `dir` around the given `http` block content. */
function mainConfig(binary: string, dir: string, httpBody: string): string {
  // `nginx -V` prints its build options on standard error.
  const build = spawnSync(binary, ["-V"], { encoding: "utf8" }).stderr;
  const modules = ["fastcgi", "uwsgi", "scgi"].filter(
    (m) => !build.includes(`--without-http_${m}_module`),
  );
  return `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  ${modules.map((m) => `${m}_temp_path ${dir}/${m};`).join("\n  ")}
  ${httpBody}
}
`;
}

function readSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}
