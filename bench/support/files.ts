/** Test files: temporary folders, random content, and hashing with sha256sum and md5sum. */

import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Cleanup } from "./cleanup.js";
import { runChecked } from "./processes.js";
import type { Tools } from "./tools.js";

/** A fresh folder under the system temp dir, removed (with its contents) by `cleanup`. */
export function tempDir(cleanup: Cleanup, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanup.add(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `bytes` bytes from /dev/urandom to `path` with `head -c`, as a user would. */
export async function writeRandomFile(tools: Tools, path: string, bytes: number): Promise<void> {
  const fd = openSync(path, "w");
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(tools.head, ["-c", String(bytes), "/dev/urandom"], {
        stdio: ["ignore", fd, "inherit"],
      });
      child.once("error", reject);
      child.once("exit", (code) =>
        code === 0 ? resolve() : reject(new Error(`head exited with ${code}`)),
      );
    });
  } finally {
    closeSync(fd);
  }
  const written = statSync(path).size;
  if (written !== bytes) throw new Error(`${path}: wrote ${written} bytes, wanted ${bytes}`);
}

/**
 * Flushes dirty pages to disk (`sync`), so writing back a freshly generated
 * file does not compete with what is timed next.
 */
export async function syncDisks(tools: Tools): Promise<void> {
  await runChecked(tools.sync, []);
}

/** Runs `sha256sum path`; returns the digest and the wall-clock seconds it took. */
export async function sha256sum(
  tools: Tools,
  path: string,
): Promise<{ sha256: string; seconds: number }> {
  const result = await runChecked(tools.sha256sum, [path]);
  const sha256 = result.stdout.split(/\s/, 1)[0] ?? "";
  if (!/^[0-9a-f]{64}$/.test(sha256))
    throw new Error(`unexpected sha256sum output: ${result.stdout}`);
  return { sha256, seconds: result.seconds };
}

/** Runs `md5sum path`; returns the digest and the wall-clock seconds it took. */
export async function md5sum(
  tools: Tools,
  path: string,
): Promise<{ md5: string; seconds: number }> {
  const result = await runChecked(tools.md5sum, [path]);
  const md5 = result.stdout.split(/\s/, 1)[0] ?? "";
  if (!/^[0-9a-f]{32}$/.test(md5)) throw new Error(`unexpected md5sum output: ${result.stdout}`);
  return { md5, seconds: result.seconds };
}
