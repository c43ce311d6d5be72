/**
 * The upload's measured limit on this machine: a minimal Node HTTP server
 * that does the least any upload path in Node must do with a body — read it
 * from the socket, SHA-256 and MD5 it, write it to a temp file with the
 * store's 1 MiB write buffer, rename it — and nothing else (no auth, no
 * database, no framework). Run beside mxcd on the same file with the same
 * curl, its wall time is what mxcd could reach at best with the client on
 * the same cores, so `mxcd ÷ floor` says how much of the gap is mxcd's.
 *
 * Both hashes run on the main thread: with curl and the kernel's loopback
 * copies sharing two cores, a second thread has no idle core to run on (see
 * bench/README.md "Fifth session: the upload").
 *
 * The program is inline (`node -e`), so it runs the same whatever the bench
 * is started with, and it answers the digests so the bench can check them.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import type { Cleanup } from "./cleanup.js";
import { freePort, waitForHttp } from "./network.js";
import { OutputTail, runCommand, stopChild } from "./processes.js";

const SOURCE = `
const http = require("node:http");
const { createHash, randomBytes } = require("node:crypto");
const { createWriteStream, renameSync, rmSync } = require("node:fs");
const { join } = require("node:path");
const [port, dir] = process.argv.slice(1);
http.createServer((req, res) => {
  if (req.method === "GET") return res.end("ok");
  const temp = join(dir, "." + randomBytes(8).toString("hex") + ".tmp");
  const out = createWriteStream(temp, { flags: "wx", highWaterMark: 1024 * 1024 });
  const sha = createHash("sha256");
  const md5 = createHash("md5");
  let bytes = 0;
  req.on("data", (chunk) => {
    bytes += chunk.length;
    sha.update(chunk);
    md5.update(chunk);
    if (!out.write(chunk)) {
      req.pause();
      out.once("drain", () => req.resume());
    }
  });
  req.on("end", () => {
    out.end(() => {
      renameSync(temp, join(dir, "upload.stored"));
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ bytes, sha256: sha.digest("hex"), md5: md5.digest("hex") }));
    });
  });
  req.on("error", () => { out.destroy(); rmSync(temp, { force: true }); });
}).listen(Number(port), "127.0.0.1");
`;

/** A running floor server. */
export interface UploadFloorServer {
  readonly url: string;
  readonly pid: number;
  /** Where the last upload was stored. */
  readonly storedPath: string;
  stop(): Promise<void>;
}

/** Starts the floor server, writing into `dir`. */
export async function startUploadFloor(dir: string, cleanup: Cleanup): Promise<UploadFloorServer> {
  const port = await freePort();
  const child = spawn(process.execPath, ["-e", SOURCE, String(port), dir], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const output = new OutputTail(child.stderr);
  const stop = () => stopChild(child, "SIGTERM", 5_000);
  cleanup.add("stop the upload floor server", stop);
  const url = `http://127.0.0.1:${port}/`;
  try {
    await waitForHttp(url, 10_000, () => child.exitCode === null);
  } catch (error) {
    throw new Error(
      `upload floor server did not start: ${(error as Error).message}\n${output.text()}`,
    );
  }
  if (child.pid === undefined) throw new Error("upload floor server has no pid");
  return { url, pid: child.pid, storedPath: join(dir, "upload.stored"), stop };
}

/** Uploads `file` to the floor server with curl as mxcd's upload is sent; returns the answer and wall time. */
export async function uploadToFloor(
  floor: UploadFloorServer,
  curl: string,
  file: string,
): Promise<{ seconds: number; sha256: string; md5: string }> {
  const args = ["-sS", "-X", "POST", "-T", file, "-H", "Expect:", floor.url];
  const result = await runCommand(curl, args);
  if (result.code !== 0)
    throw new Error(`floor upload failed (curl ${result.code}): ${result.stderr}`);
  const answer = JSON.parse(result.stdout) as { sha256: string; md5: string };
  return { seconds: result.seconds, sha256: answer.sha256, md5: answer.md5 };
}
