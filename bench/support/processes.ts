/**
 * Small helpers around child processes: run one to completion, wait for one
 * to exit, stop one politely and then firmly, keep the tail of its output.
 */
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { performance } from "node:perf_hooks";

/** What a finished command printed, its exit code and how long it took. */
export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

/** Runs a command to completion, capturing its output (meant for short outputs). */
export function runCommand(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    const stdout = new OutputTail(child.stdout);
    const stderr = new OutputTail(child.stderr);
    child.once("error", reject);
    child.once("close", (code) =>
      resolve({
        code,
        stdout: stdout.text(),
        stderr: stderr.text(),
        seconds: (performance.now() - started) / 1000,
      }),
    );
  });
}

/** Like runCommand, but rejects (quoting stderr) unless the command exits with 0. */
export async function runChecked(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): Promise<CommandResult> {
  const result = await runCommand(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} exited with ${result.code}: ${result.stderr.trim()}`);
  }
  return result;
}

/** Resolves when the child has exited (at once if it already has); false on time-out. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** Sends `signal`, waits up to `graceMs`, then SIGKILLs; resolves once the child is gone. */
export async function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals,
  graceMs: number,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  if (await waitForExit(child, graceMs)) return;
  child.kill("SIGKILL");
  await waitForExit(child, 5_000);
}

/** Keeps the last `limit` characters a stream produced, for error messages. */
export class OutputTail {
  #text = "";

  constructor(
    stream: NodeJS.ReadableStream | null,
    private readonly limit = 16_384,
  ) {
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      this.#text = (this.#text + chunk).slice(-this.limit);
    });
  }

  /** The output kept so far. */
  text(): string {
    return this.#text;
  }

  /** The last `count` lines kept (a line cut by the character limit left out). */
  lines(count: number): string[] {
    const lines = this.#text.split("\n");
    if (lines.at(-1) === "") lines.pop();
    // The first line is whole only if nothing before it was cut off.
    const whole = this.#text.length < this.limit ? lines : lines.slice(1);
    return whole.slice(-count);
  }
}
