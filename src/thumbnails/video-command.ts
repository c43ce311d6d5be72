/**
 * Runs the configured frame command (`video_thumbnails.command`) as an argv,
 * never through a shell, and makes sure nothing it started outlives it.
 *
 * Design notes:
 * - The command is spawned `detached`, so it leads a new process group; on
 *   the deadline the whole group gets SIGKILL (`kill(-pid)`), which also
 *   reaches the children ffmpeg (or a wrapper script) started. The group is
 *   killed again once the leader exits, so a child left running by a
 *   command that exited on its own does not linger either.
 * - Its environment is PATH alone: secrets in mxcd's environment (database
 *   URLs, S3 keys) never reach it. stdin and stdout are closed; stderr is
 *   kept up to STDERR_LIMIT bytes for the log and for telling a frame over
 *   the pixel limit from other failures.
 */
import { spawn } from "node:child_process";
import { VideoThumbnailError } from "./video-thumbnail-error.js";

/** Bytes of the command's stderr kept; the rest is read and dropped. */
const STDERR_LIMIT = 8192;

/** How the command ended (it ended by itself: a timeout throws instead). */
export interface CommandResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The first STDERR_LIMIT bytes of its stderr. */
  readonly stderr: string;
}

/**
 * Runs `argv` (no shell) and resolves when it and its stdio are done.
 * @throws VideoThumbnailError `timeout` after `timeoutMs`, once the process
 *   group was killed and the command has exited; `failed` when it could not
 *   be started (no such program); the reason of `stopping` when it aborts
 *   (shutdown), again once the group was killed.
 */
export function runVideoCommand(
  argv: readonly string[],
  timeoutMs: number,
  stopping: AbortSignal,
): Promise<CommandResult> {
  const [program, ...args] = argv;
  if (!program) throw new VideoThumbnailError("failed", "the video thumbnail command is empty");
  if (stopping.aborted) return Promise.reject(stopping.reason);
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      detached: true,
      stdio: ["ignore", "ignore", "pipe"],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    const chunks: Buffer[] = [];
    let kept = 0;
    let timedOut = false;
    let failedToStart: Error | undefined;
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    stopping.addEventListener("abort", killGroup, { once: true });
    child.stderr.on("data", (chunk: Buffer) => {
      if (kept >= STDERR_LIMIT) return;
      const part = chunk.subarray(0, STDERR_LIMIT - kept);
      chunks.push(part);
      kept += part.length;
    });
    child.on("error", (error) => {
      failedToStart = error;
    });
    // The leader exited: its children go too (they may hold stderr open).
    child.on("exit", killGroup);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      stopping.removeEventListener("abort", killGroup);
      if (stopping.aborted) {
        reject(stopping.reason);
      } else if (timedOut) {
        reject(new VideoThumbnailError("timeout", `the command ran longer than ${timeoutMs} ms`));
      } else if (failedToStart) {
        const message = `the video thumbnail command could not be started: ${failedToStart.message}`;
        reject(new VideoThumbnailError("failed", message, { cause: failedToStart }));
      } else {
        resolve({ code, signal, stderr: Buffer.concat(chunks).toString("utf8") });
      }
    });
  });
}
