/** Runs the compiled `mxcd` CLI (built by `npm test` before the tests run). */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { REPO_URL } from "./repo-url.js";

export const CLI = fileURLToPath(new URL("dist/src/cli/main.js", REPO_URL));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
}

/** Runs `mxcd ...args` to completion. */
export function runCli(
  args: string[],
  options: { cwd?: string; input?: string } = {},
): Promise<CliResult> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd, env: process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? "");
  });
}

/** Starts `mxcd ...args` in the background, collecting its output. */
export function spawnCli(args: string[], cwd: string): ChildProcess & { output: () => string } {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: process.env });
  let output = "";
  child.stdout.on("data", (d: Buffer) => {
    output += d;
  });
  child.stderr.on("data", (d: Buffer) => {
    output += d;
  });
  return Object.assign(child, { output: () => output });
}

/**
 * Stops a spawned process with SIGTERM unless it has already exited, and
 * returns its exit code (null when a signal ended it). Never waits for an
 * `exit` that already happened, so a server that died early fails its test
 * with the real error instead of an unresolved promise.
 */
export async function stopCli(child: ChildProcess): Promise<number | null> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill("SIGTERM");
    await once(child, "exit");
  }
  return child.exitCode;
}

/** Resolves when `predicate(output)` holds, or rejects after `ms`. */
export async function waitForOutput(
  child: { output: () => string; exitCode: number | null },
  predicate: (output: string) => boolean,
  ms = 15_000,
): Promise<string> {
  const deadline = Date.now() + ms;
  while (!predicate(child.output())) {
    if (child.exitCode !== null) throw new Error(`process exited early:\n${child.output()}`);
    if (Date.now() > deadline)
      throw new Error(`timed out waiting; output so far:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child.output();
}

/** Resolves once `url` answers at all, or rejects after `ms`. */
export async function waitForHttp(
  url: string,
  child: { exitCode: number | null; output: () => string },
  ms = 60_000, // a bound for a loaded machine (2 cores, many runs), not a timing
) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      await fetch(url);
      return;
    } catch {
      if (child.exitCode !== null) throw new Error(`process exited early:\n${child.output()}`);
      if (Date.now() > deadline) throw new Error(`no answer from ${url}:\n${child.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
