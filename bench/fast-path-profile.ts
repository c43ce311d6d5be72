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
 * Run: `npm run build && npx tsx bench/fast-path-profile.ts`. Nothing here
 * asserts a time.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { Cleanup } from "./support/cleanup.js";
import { cpuSeconds } from "./support/cpu-time.js";
import { tempDir } from "./support/files.js";
import { startMxcd } from "./support/mxcd-server.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(REPO, "dist", "src", "cli", "main.js");
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
  execFileSync("wrk", ["-t2", "-c32", "-d2s", "-H", header, url]);
  const before = cpuSeconds(mxcd.pid);
  const out = execFileSync("wrk", ["-t2", "-c32", `-d${duration}`, "-H", header, url]).toString();
  const spent = cpuSeconds(mxcd.pid) - before;
  const requests = Number(/(\d+) requests in/.exec(out)![1]);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out)![1];
  const metrics = await (await fetch(`${mxcd.baseUrl}/metrics`)).text();
  const fast = metrics
    .split("\n")
    .filter((line) => line.startsWith("mxcd_fast_path_requests_total{"));
  await mxcd.stop();
  console.log(`${leg}: ${rate} req/s, ${((spent * 1e6) / requests).toFixed(1)} µs CPU per request`);
  console.log(fast.join("\n"));
  const file =
    top === 0 ? undefined : readdirSync(profDir).find((name) => name.endsWith(".cpuprofile"));
  if (file) summarise(JSON.parse(readFileSync(join(profDir, file), "utf8")) as Profile);
} finally {
  await cleanup.run();
}

function summarise(profile: Profile): void {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  for (const id of profile.samples) {
    const frame = byId.get(id)!.callFrame;
    const where = frame.url.replace(/^.*node_modules\//, "").replace(/^.*\/dist\//, "dist/");
    const key = `${frame.functionName || "(anonymous)"} ${where}:${frame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + 1);
  }
  const total = profile.samples.length;
  const heaviest = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [key, count] of heaviest)
    console.log(`${((100 * count) / total).toFixed(1).padStart(5)} %  ${key}`);
}
