/**
 * synadm (Debian's real Synapse admin CLI) for the suites that drive it:
 * whether it is installed, a config file pointing it at a server, and a run
 * that answers its confirmation prompt.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function synadmInstalled(): boolean {
  try {
    execFileSync("synadm", ["-h"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Writes a synadm config (JSON output) in a fresh temporary folder; returns its path. */
export function writeSynadmConfig(options: {
  readonly user: string;
  readonly token: string;
  readonly baseUrl: string;
  readonly serverName: string;
}): string {
  const config = join(mkdtempSync(join(tmpdir(), "synadm-")), "synadm.yaml");
  writeFileSync(
    config,
    [
      `user: "${options.user}"`,
      `token: "${options.token}"`,
      `base_url: "${options.baseUrl}"`,
      'admin_path: "/_synapse/admin"',
      'matrix_path: "/_matrix"',
      "ssl_verify: true",
      "timeout: 10",
      "format: json",
      `homeserver: "${options.serverName}"`,
      "",
    ].join("\n"),
  );
  return config;
}

/** Runs synadm with `args` against `config`; resolves with its exit code and output. */
export function runSynadm(
  config: string,
  args: readonly string[],
  input = "y\n",
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("synadm", ["-c", config, ...args], {
      env: { ...process.env, HOME: tmpdir() },
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d;
    });
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, out }));
    child.stdin.end(input);
  });
}
