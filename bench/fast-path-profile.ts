/**
 * Where a cached small download's CPU goes (issue 15, the serving fast path):
 * starts mxcd from `dist/` with the shipped config and `--cpu-prof`, uploads
 * a 4 KiB file and a PNG, loads the 4 KiB download (or, with
 * `MXCD_PROFILE_LEG=thumbnail`, the 32×32 crop thumbnail) with the
 * downloads' wrk load, and prints the server CPU per request, the fast
 * path's counters, and the profile's self time by function (top 25).
 * `MXCD_PROFILE_CONFIG` (JSON) adds config keys, e.g.
 * `{"media_cache":{"fast_path":false}}` or `{"log_level":"warn"}`; with
 * `MXCD_PROFILE_TOP=0` no profile is taken.
 * The shares are of the samples taken during the measured run only.
 * Run: `npm run build && npx tsx bench/fast-path-profile.ts`. Nothing here
 * asserts a time.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import sharp from "sharp";
import { Cleanup } from "./support/cleanup.js";
import { cpuSeconds } from "./support/cpu-time.js";
import { tempDir } from "./support/files.js";
import { startMxcd } from "./support/mxcd-server.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
/** `MXCD_PROFILE_ROOT`: another build's root (a copy of `dist/` inside the repository), for an A/B. */
const CLI = join(process.env.MXCD_PROFILE_ROOT ?? REPO, "dist", "src", "cli", "main.js");
const duration = process.env.MXCD_BENCH_DURATION ?? "5s";
const leg = process.env.MXCD_PROFILE_LEG ?? "download";
const extraConfig = JSON.parse(process.env.MXCD_PROFILE_CONFIG ?? "{}") as Record<string, unknown>;
const top = Number(process.env.MXCD_PROFILE_TOP ?? 25);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  endTime: number;
}

const cleanup = new Cleanup();
try {
  const dir = tempDir(cleanup, "mxcd-fast-path-profile-");
  const profDir = join(dir, "prof");
  const mxcd = await startMxcd(
    {
      cli: CLI,
      dir,
      shippedDefaults: true,
      extraConfig,
      nodeFlags: top > 0 ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [],
    },
    cleanup,
  );
  const upload = async (body: Buffer, type: string) => {
    const res = await fetch(`${mxcd.baseUrl}/_matrix/media/v3/upload`, {
      method: "POST",
      headers: { ...mxcd.authHeaders, "content-type": type },
      body,
    });
    return String(((await res.json()) as { content_uri: string }).content_uri)
      .split("/")
      .pop()!;
  };
  const fileId = await upload(Buffer.alloc(4096, 7), "application/octet-stream");
  const png = await sharp({
    create: { width: 640, height: 480, channels: 3, background: { r: 9, g: 99, b: 199 } },
  })
    .png()
    .toBuffer();
  const imageId = await upload(png, "image/png");
  const path =
    leg === "thumbnail"
      ? `/_matrix/client/v1/media/thumbnail/${mxcd.serverName}/${imageId}?width=32&height=32&method=crop`
      : `/_matrix/client/v1/media/download/${mxcd.serverName}/${fileId}`;
  const header = `Authorization: ${mxcd.authHeaders.Authorization}`;
  const url = mxcd.baseUrl + path;
  // Pre-generation of the thumbnail runs after the upload: wait until it is served.
  for (
    let i = 0;
    i < 200 && (await fetch(url, { headers: mxcd.authHeaders })).status !== 200;
    i++
  ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // wrk runs asynchronously so that this process keeps draining mxcd's stdout: a
  // blocked parent fills the pipe, and mxcd's log lines then pile up in memory.
  const wrk = async (seconds: string) =>
    (await promisify(execFile)("wrk", ["-t2", "-c32", `-d${seconds}`, "-H", header, url])).stdout;
  await wrk("2s");
  const before = cpuSeconds(mxcd.pid);
  const loadStart = performance.now();
  const out = await wrk(duration);
  const loadEnd = performance.now();
  const spent = cpuSeconds(mxcd.pid) - before;
  const requests = Number(/(\d+) requests in/.exec(out)![1]);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out)![1];
  const metrics = await (await fetch(`${mxcd.baseUrl}/metrics`)).text();
  const fast = metrics
    .split("\n")
    .filter((line) => line.startsWith("mxcd_fast_path_requests_total{"));
  await mxcd.stop();
  const stopped = performance.now();
  // The measured run's window on the profile's clock (µs before its end):
  // start-up, uploads and shutdown are left out of the shares.
  const window = { from: (stopped - loadStart) * 1000, to: (stopped - loadEnd) * 1000 };
  console.log(`${leg}: ${rate} req/s, ${((spent * 1e6) / requests).toFixed(1)} µs CPU per request`);
  console.log(fast.join("\n"));
  const file =
    top === 0 ? undefined : readdirSync(profDir).find((name) => name.endsWith(".cpuprofile"));
  if (file) summarise(JSON.parse(readFileSync(join(profDir, file), "utf8")) as Profile, window);
} finally {
  await cleanup.run();
}

/** Where a sample's self time belongs, by its function's file. */
function categoryOf(frame: ProfileNode["callFrame"]): string {
  const { url, functionName } = frame;
  if (url === "") {
    if (
      functionName === "writev" ||
      functionName === "writeBuffer" ||
      functionName === "writeString"
    )
      return "socket and pipe writes (system calls)";
    return functionName.startsWith("(") ? functionName : "other native code";
  }
  if (url.includes("/dist/src/logging/")) return "mxcd: log line";
  if (url.includes("/dist/src/")) return "mxcd: fast path and caches (JavaScript)";
  if (url.includes("prom-client")) return "prom-client";
  if (url.includes("pino") || url.includes("sonic-boom")) return "pino / sonic-boom";
  if (/node:_http|node:_http_common|node:internal\/http/.test(url) || url === "node:_http_server")
    return "Node http (parser, headers, response)";
  if (url.includes("node:internal/crypto")) return "SHA-256 of the token";
  if (url.startsWith("node:")) return "other Node internals (streams, events, timers)";
  return "other";
}

function summarise(profile: Profile, window: { from: number; to: number }): void {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  // Sample times, counted back from the profile's end.
  const times: number[] = [];
  let at = profile.endTime;
  for (let i = profile.samples.length - 1; i >= 0; i--) {
    times[i] = profile.endTime - at;
    at -= profile.timeDeltas[i] ?? 0;
  }
  const self = new Map<string, number>();
  const categories = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const before = times[i]!;
    if (before > window.from || before < window.to) return;
    total += 1;
    const frame = byId.get(id)!.callFrame;
    const where = frame.url.replace(/^.*node_modules\//, "").replace(/^.*\/dist\//, "dist/");
    const key = `${frame.functionName || "(anonymous)"} ${where}:${frame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + 1);
    const category = categoryOf(frame);
    categories.set(category, (categories.get(category) ?? 0) + 1);
  });
  console.log(`\n${total} samples in the measured run; by kind:`);
  for (const [name, count] of [...categories.entries()].sort((a, b) => b[1] - a[1]))
    console.log(`${((100 * count) / total).toFixed(1).padStart(5)} %  ${name}`);
  console.log("\nby function (self time):");
  const heaviest = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [key, count] of heaviest)
    console.log(`${((100 * count) / total).toFixed(1).padStart(5)} %  ${key}`);
}
