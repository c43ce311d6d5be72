/**
 * `npm run bench:hot`: the hot-path figures of issue 15, each a ratio to its
 * reference measured in the same run, with the config mxcd ships (only
 * ports, paths and the server name changed; `log_level: info`, not the
 * `warn` of the other benches).
 *
 * Every figure runs `MXCD_BENCH_ROUNDS` (3) rounds; each round runs every
 * figure once (so a figure and the limit beside it run minutes apart at
 * most), and in it the mxcd leg and its reference leg run back to back, in
 * an order that alternates from round to round (and from figure to figure),
 * so drift in the machine's load hits both alike. The report gives each round's ratio, their mean and
 * their spread (min–max).
 *
 * Figures: authenticated 4 KiB download vs nginx serving the same file (and
 * the p99 latency of both); beside it, reported and not a target, Node's
 * bare `http` sending that answer (same bytes, same headers) from memory,
 * the floor of any Node server (bench/README.md, "The hot path's last
 * microseconds"), and the limit: Node's bare `http` doing only what any
 * correct answer must (token and row look-ups, metrics, the request line;
 * bench/fast-path-limit.ts, "Fifth session"); a pre-generated 32×32 crop thumbnail vs nginx
 * serving that thumbnail's file; 1 MiB and 64 MiB downloads vs nginx; 1 MiB
 * through nginx in front of mxcd with `media_store.accel_redirect` vs nginx
 * alone ("not available" when this mxcd does not accept that option); a
 * streamed upload vs the slower of `md5sum` and `sha256sum` (it computes both),
 * and vs `sha256sum` alone for continuity (upload-bench.ts); VmRSS of a freshly started
 * embedded default after 2 s idle.
 *
 * The section replaces "## Hot path" in bench/RESULTS.md (MXCD_BENCH_RESULTS),
 * leaving the rest of the file. Nothing here asserts a time.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import {
  type LoadContext,
  measureThroughput,
  type Target,
  type Throughput,
} from "./download-bench.js";
import { limitServerSource } from "./fast-path-limit.js";
import { type Cleanup, describeError } from "./support/cleanup.js";
import { envSeconds } from "./support/env-seconds.js";
import { tempDir, writeRandomFile } from "./support/files.js";
import { isMainModule, runMain } from "./support/main.js";
import { markdownTable, mib } from "./support/markdown.js";
import {
  downloadUrl,
  localContentPath,
  type MxcdServer,
  startMxcd,
  uploadFile,
} from "./support/mxcd-server.js";
import { bodyDigest, freePort, waitForHttp } from "./support/network.js";
import { type NginxServer, startNginx, startNginxAccelProxy } from "./support/nginx-server.js";
import { stopChild } from "./support/processes.js";
import { writeSection } from "./support/results-file.js";
import { readRss } from "./support/rss-sampler.js";
import { findTools, type Tools } from "./support/tools.js";
import { startUploadFloor } from "./support/upload-floor-server.js";
import { writeWrkScript } from "./support/wrk.js";
import { benchUpload } from "./upload-bench.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
/** mxcd's CLI: this checkout's build, or `MXCD_BENCH_CLI` (another build, for an A/B). */
const CLI = process.env.MXCD_BENCH_CLI ?? join(REPO, "dist", "src", "cli", "main.js");
const HEADING = "## Hot path (issue 15): `npm run bench:hot`";
/** mxcd's internal location for `X-Accel-Redirect` (and nginx's `internal` one). */
const ACCEL_LOCATION = "/_mxcd_internal/";
/** How long the resting server idles before its RSS is read. */
const REST_MS = 2_000;

export interface HotSettings {
  readonly rounds: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly nginxWorkers: string;
  /** Size of the upload leg's file; 0 skips that leg. */
  readonly uploadBytes: number;
  /** `MXCD_BENCH_ONLY`: the figures to run (FIGURES' names), or null for all. */
  readonly only: ReadonlySet<Figure> | null;
}

/** The names `MXCD_BENCH_ONLY` takes, one per figure (rows of the summary). */
export const FIGURES = [
  "4kib",
  "floor",
  "limit",
  "thumbnail",
  "thumbnail-limit",
  "1mib",
  "64mib",
  "64mib-limit",
  "accel",
  "accel-limit",
  "upload",
  "rss",
] as const;
export type Figure = (typeof FIGURES)[number];

function onlyFromEnv(value: string | undefined): ReadonlySet<Figure> | null {
  if (value === undefined || value.trim() === "") return null;
  const names = value.split(",").map((name) => name.trim().toLowerCase());
  for (const name of names) {
    if (!(FIGURES as readonly string[]).includes(name)) {
      throw new Error(`MXCD_BENCH_ONLY: unknown figure ${name} (known: ${FIGURES.join(", ")})`);
    }
  }
  return new Set(names as Figure[]);
}

export function hotSettingsFromEnv(env: NodeJS.ProcessEnv): HotSettings {
  const rounds = Number(env.MXCD_BENCH_ROUNDS ?? 3);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error("MXCD_BENCH_ROUNDS must be >= 1");
  const uploadMib = Number(env.MXCD_BENCH_UPLOAD_MIB ?? 1024);
  if (!Number.isFinite(uploadMib) || uploadMib < 0) {
    throw new Error("MXCD_BENCH_UPLOAD_MIB must be a number >= 0");
  }
  return {
    rounds,
    seconds: Math.max(
      1,
      Math.round(envSeconds("MXCD_BENCH_DURATION", env.MXCD_BENCH_DURATION, 10)),
    ),
    warmupSeconds: Math.round(envSeconds("MXCD_BENCH_WARMUP", env.MXCD_BENCH_WARMUP, 2)),
    nginxWorkers: env.MXCD_BENCH_NGINX_WORKERS ?? "1",
    uploadBytes: Math.round(uploadMib * 1024 ** 2),
    only: onlyFromEnv(env.MXCD_BENCH_ONLY),
  };
}

/** One figure: mxcd (or mxcd behind nginx) against its reference, round by round. */
interface Pair {
  /** Its name in MXCD_BENCH_ONLY. */
  readonly name: Figure;
  readonly figure: string;
  /** A limit shown for comparison, not a target (the Node `http` floor). */
  readonly reportedOnly?: boolean;
  /** Size of the file served, for CPU per file (a 64 MiB run may complete no request). */
  readonly bytes: number;
  readonly reference: string;
  readonly target: number;
  readonly mxcd: Target;
  readonly ref: Target;
}

export interface PairResult {
  readonly figure: string;
  readonly reportedOnly?: boolean;
  readonly bytes: number;
  readonly reference: string;
  readonly target: number;
  readonly mxcd: readonly Throughput[];
  readonly ref: readonly Throughput[];
}

export interface HotResult {
  readonly settings: HotSettings;
  readonly loadStart: number;
  readonly loadEnd: number;
  readonly pairs: readonly PairResult[];
  /** Why the accel_redirect figure could not be measured, when it could not. */
  readonly accelUnavailable: string | undefined;
  /** VmRSS at rest of each round's fresh embedded default, bytes. */
  readonly rss: readonly number[];
  /**
   * Per round (empty when skipped): `ratio` = the slower of md5sum and
   * sha256sum ÷ upload seconds (the floor: mxcd computes both, on two
   * threads); `sha256Ratio` = sha256sum ÷ upload seconds, as before issue 16.
   */
  readonly upload: readonly {
    ratio: number;
    sha256Ratio: number;
    uploadSeconds: number;
    md5Seconds: number;
    sha256Seconds: number;
    bytes: number;
    cpuSeconds: number;
    /** The measured limit's leg (support/upload-floor-server.ts), same file, same round. */
    floorSeconds: number | undefined;
    floorCpuSeconds: number | undefined;
    /** Copying the file into memory the VM had taken back, before the round's legs (upload-bench.ts). */
    coldWriteSeconds: number;
  }[];
}

export async function benchHotPath(settings: HotSettings, cleanup: Cleanup): Promise<HotResult> {
  const wanted = (name: Figure) => settings.only === null || settings.only.has(name);
  const tools = findTools();
  const loadStart = loadavg()[0]!;
  const dir = tempDir(cleanup, "mxcd-bench-hot-");
  const load: LoadContext = {
    tools,
    wrkScript: writeWrkScript(dir),
    load: { threads: 2, connections: 32, seconds: settings.seconds },
    warmupSeconds: settings.warmupSeconds,
  };

  const rss: number[] = [];
  for (let round = 0; round < settings.rounds && wanted("rss"); round++) {
    console.error(`hot: RSS at rest, round ${round + 1}`);
    rss.push(await restingRss(join(dir, `rest-${round}`), cleanup));
  }

  const mxcdDir = join(dir, "mxcd");
  mkdirSync(mxcdDir);
  // max_upload_size: the shipped 50M would refuse the 64 MiB file; downloads never read it.
  const mxcd = await startMxcd(
    { cli: CLI, dir: mxcdDir, shippedDefaults: true, maxUploadSize: "100M" },
    cleanup,
  );
  const nginxDir = join(dir, "nginx");
  mkdirSync(nginxDir);
  const nginx = await startNginx(
    { nginx: tools.nginx, dir: nginxDir, workers: settings.nginxWorkers, root: mxcd.mediaStore },
    cleanup,
  );
  const pairs: Pair[] = [];
  // The 4 KiB pair is set up whenever a figure builds on it (floor, limit).
  const small = wanted("4kib") || wanted("floor") || wanted("limit");
  for (const [name, label, bytes] of [
    ["4kib", "4 KiB", 4 * 1024],
    ["1mib", "1 MiB", 1024 ** 2],
    ["64mib", "64 MiB", 64 * 1024 ** 2],
  ] as const) {
    if (name === "4kib" ? !small : !wanted(name) && !(name === "64mib" && wanted("64mib-limit"))) {
      continue;
    }
    const file = join(dir, `download-${bytes}.bin`);
    await writeRandomFile(tools, file, bytes);
    const mediaId = (await uploadFile(mxcd, tools.curl, file, `${file}.response`)).mediaId;
    pairs.push({
      name,
      figure: `authenticated ${label} download`,
      bytes,
      reference: "nginx, same file",
      target: label === "4 KiB" ? 0.5 : 0.8,
      mxcd: { url: downloadUrl(mxcd, mediaId), headers: mxcd.authHeaders, pids: [mxcd.pid] },
      ref: { url: `${nginx.baseUrl}/${localContentPath(mediaId)}`, headers: {}, pids: [nginx.pid] },
    });
  }
  const smallPair = pairs.find((pair) => pair.name === "4kib");
  if (wanted("thumbnail") || wanted("thumbnail-limit")) {
    const thumbnail = await thumbnailPair(tools, dir, mxcd, nginx);
    pairs.splice(1, 0, thumbnail);
    if (wanted("thumbnail-limit"))
      pairs.splice(2, 0, await thumbnailLimitPair(dir, thumbnail, cleanup));
  }
  if (smallPair && wanted("floor"))
    pairs.splice(1, 0, await nodeFloorPair(dir, smallPair, cleanup));
  if (smallPair && wanted("limit")) pairs.splice(2, 0, await limitPair(dir, smallPair, cleanup));
  const large = pairs.find((pair) => pair.name === "64mib");
  if (large && wanted("64mib-limit")) pairs.push(await largeLimitPair(dir, large, cleanup));
  for (const pair of pairs) await checkSameBytes(pair);

  const accel =
    wanted("accel") || wanted("accel-limit")
      ? await accelPair(tools, dir, settings, mxcd, nginx, cleanup).catch((error: unknown) =>
          describeError(error).replace(/\s+/g, " ").slice(0, 300),
        )
      : undefined;
  if (accel !== undefined && typeof accel !== "string") {
    await checkSameBytes(accel.pair);
    pairs.push(accel.pair);
    if (wanted("accel-limit")) {
      const limit = await accelLimitPair(tools, dir, settings, accel, mxcd.mediaStore, cleanup);
      await checkSameBytes(limit);
      pairs.push(limit);
    }
  }

  // Round by round over every figure (not every round of one figure, then
  // the next): a figure and the limit it is compared with (the thumbnail and
  // its limit, the 4 KiB download and its) run minutes apart at most, so the
  // machine's drift cannot put them on different footings.
  const measured = pairs.filter((each) => wanted(each.name));
  const runs = measured.map(() => ({ mxcd: [] as Throughput[], ref: [] as Throughput[] }));
  for (let round = 0; round < settings.rounds; round++) {
    for (const [index, pair] of measured.entries()) {
      console.error(`hot: ${pair.figure}, round ${round + 1}`);
      const mxcdFirst = (round + index) % 2 === 0;
      for (const leg of mxcdFirst ? ["mxcd", "ref"] : ["ref", "mxcd"]) {
        if (leg === "mxcd") runs[index]!.mxcd.push(await measureThroughput(load, pair.mxcd));
        else runs[index]!.ref.push(await measureThroughput(load, pair.ref));
      }
    }
  }
  const results: PairResult[] = measured.map((pair, index) => ({ ...pair, ...runs[index]! }));

  const upload: HotResult["upload"][number][] = [];
  if (settings.uploadBytes > 0 && wanted("upload")) {
    const uploadDir = join(dir, "upload");
    mkdirSync(uploadDir);
    const server = await startMxcd(
      { cli: CLI, dir: uploadDir, shippedDefaults: true, maxUploadSize: "2G" },
      cleanup,
    );
    const floor = await startUploadFloor(uploadDir, cleanup);
    const file = join(uploadDir, "upload.bin");
    for (let round = 0; round < settings.rounds; round++) {
      console.error(`hot: upload, round ${round + 1}`);
      const result = await benchUpload({
        tools,
        mxcd: server,
        dir: uploadDir,
        bytes: settings.uploadBytes,
        ...(round > 0 && { existingFile: file }),
        floor,
        floorFirst: round % 2 === 1,
      });
      upload.push({
        ratio: Math.max(result.md5Seconds, result.sha256Seconds) / result.uploadSeconds,
        sha256Ratio: result.sha256Seconds / result.uploadSeconds,
        uploadSeconds: result.uploadSeconds,
        md5Seconds: result.md5Seconds,
        sha256Seconds: result.sha256Seconds,
        bytes: result.bytes,
        cpuSeconds: result.uploadCpuSeconds,
        floorSeconds: result.floor?.seconds,
        floorCpuSeconds: result.floor?.cpuSeconds,
        coldWriteSeconds: result.coldWriteSeconds,
      });
    }
  }
  return {
    settings,
    loadStart,
    loadEnd: loadavg()[0]!,
    pairs: results,
    accelUnavailable: typeof accel === "string" ? accel : undefined,
    rss,
    upload,
  };
}

/** VmRSS of a fresh embedded default (first start: migrations too) after REST_MS of idling. */
async function restingRss(dir: string, cleanup: Cleanup): Promise<number> {
  mkdirSync(dir);
  const server = await startMxcd(
    { cli: CLI, dir, shippedDefaults: true, registerUser: false, accessToken: "unused" },
    cleanup,
  );
  await sleep(REST_MS);
  const rss = readRss(server.pid);
  await server.stop();
  return rss;
}

/** A photo-like JPEG's 32×32 crop, made once through mxcd, then served by both. */
async function thumbnailPair(tools: Tools, dir: string, mxcd: MxcdServer, nginx: NginxServer) {
  const width = 640;
  const height = 480;
  const noise = Buffer.alloc(width * height * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919 + (i >> 5) * 104_729) % 251;
  const jpeg = await sharp(noise, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 85 })
    .toBuffer();
  const file = join(dir, "avatar.jpg");
  writeFileSync(file, jpeg);
  const { mediaId } = await uploadFile(mxcd, tools.curl, file, `${file}.response`, "image/jpeg");
  const url =
    `${mxcd.baseUrl}/_matrix/client/v1/media/thumbnail/${mxcd.serverName}/${mediaId}` +
    "?width=32&height=32&method=crop";
  const served = await bodyDigest(url, mxcd.authHeaders);
  // The store's file with the same bytes is the pre-generated thumbnail mxcd just served.
  const folder = join(
    mxcd.mediaStore,
    "local_thumbnails",
    mediaId.slice(0, 2),
    mediaId.slice(2, 4),
    mediaId.slice(4),
  );
  const name = readdirSync(folder).find(
    (entry) =>
      entry.startsWith("32-32-") &&
      entry.endsWith("-crop") &&
      fileSha256(join(folder, entry)) === served.sha256,
  );
  if (!name) throw new Error(`no file in ${folder} holds the 32×32 crop mxcd served`);
  const key = `local_thumbnails/${mediaId.slice(0, 2)}/${mediaId.slice(2, 4)}/${mediaId.slice(4)}/${name}`;
  return {
    name: "thumbnail",
    figure: "pre-generated 32×32 crop thumbnail",
    bytes: served.bytes,
    reference: "nginx, same thumbnail file",
    target: 0.5,
    mxcd: { url, headers: mxcd.authHeaders, pids: [mxcd.pid] },
    ref: { url: `${nginx.baseUrl}/${key}`, headers: {}, pids: [nginx.pid] },
  } satisfies Pair;
}

/**
 * The floor under the 4 KiB figure: Node's bare `http` module sending the
 * same 4 KiB from memory with the download's own header set (read from
 * mxcd's answer), against the same nginx file, in the same rounds. Shown
 * beside mxcd's row, not a target: "mxcd's fast path = X, Node's http = Y,
 * nginx = Z" (bench/README.md, "The hot path's last microseconds").
 */
async function nodeFloorPair(dir: string, small: Pair, cleanup: Cleanup): Promise<Pair> {
  const answer = await fetch(small.mxcd.url, { headers: small.mxcd.headers });
  const body = Buffer.from(await answer.arrayBuffer());
  const head: string[] = [];
  for (const [name, value] of answer.headers) {
    if (!["date", "connection", "keep-alive"].includes(name)) head.push(name, value);
  }
  const port = await freePort();
  const bodyFile = join(dir, "node-floor.bin");
  writeFileSync(bodyFile, body);
  const source = `const body = require("node:fs").readFileSync(${JSON.stringify(bodyFile)});
const head = ${JSON.stringify(head)};
require("node:http").createServer((req, res) => { res.writeHead(200, head); res.end(body); }).listen(${port}, "127.0.0.1");`;
  const child = spawn(process.execPath, ["-e", source], { stdio: "ignore" });
  cleanup.add("stop the Node http floor", () => stopChild(child, "SIGTERM", 5_000));
  const url = `http://127.0.0.1:${port}/x`;
  await waitForHttp(url, 10_000, () => child.exitCode === null);
  return {
    name: "floor",
    figure: "Node `http` floor: the 4 KiB answer from memory",
    reportedOnly: true,
    bytes: small.bytes,
    reference: small.reference,
    target: 0,
    mxcd: { url, headers: {}, pids: [child.pid!] },
    ref: small.ref,
  };
}

/**
 * The measured limit of the 4 KiB figure (bench/README.md, "Fifth session";
 * bench/fast-path-limit.ts): Node's bare `http` doing what any correct
 * answer must — the token's SHA-256 looked up in a Map, the media id in a
 * second, the same head and bytes from memory, this build's HTTP metrics and
 * its request line through its log destination — against the same nginx
 * file, in the same rounds. Reported beside mxcd's row, not a target.
 */
async function limitPair(dir: string, small: Pair, cleanup: Cleanup): Promise<Pair> {
  return {
    ...(await limitServer(dir, "limit", small, cleanup)),
    name: "limit",
    figure: "Limit: the least a correct cached 4 KiB answer needs in Node `http`",
  };
}

/**
 * The same limit for the thumbnail figure: the limit server answering the
 * thumbnail's URL (its query included in the one look-up) with the
 * thumbnail's head and bytes and its route's metrics label, against the same
 * nginx thumbnail file, in the same rounds.
 */
async function thumbnailLimitPair(dir: string, thumbnail: Pair, cleanup: Cleanup): Promise<Pair> {
  return {
    ...(await limitServer(dir, "thumbnail-limit", thumbnail, cleanup)),
    name: "thumbnail-limit",
    figure: "Limit: the least a correct cached 32×32 thumbnail answer needs in Node `http`",
  };
}

/**
 * A limit server (bench/fast-path-limit.ts) answering `pair`'s mxcd URL as
 * mxcd does: with the head and bytes of mxcd's answer to `copied` (default:
 * that URL itself).
 */
async function limitServer(
  dir: string,
  leg: string,
  pair: Pair,
  cleanup: Cleanup,
  copied: Target = pair.mxcd,
): Promise<Omit<Pair, "name" | "figure">> {
  const answer = await fetch(copied.url, { headers: copied.headers });
  const body = Buffer.from(await answer.arrayBuffer());
  const head: string[] = [];
  for (const [name, value] of answer.headers) {
    if (!["date", "connection", "keep-alive"].includes(name)) head.push(name, value);
  }
  const bodyFile = join(dir, `${leg}.bin`);
  writeFileSync(bodyFile, body);
  const url = new URL(pair.mxcd.url);
  const path = url.pathname + url.search;
  const token = /^Bearer (.+)$/.exec(pair.mxcd.headers.Authorization ?? "")?.[1] ?? "";
  const mediaId = path.slice(path.lastIndexOf("/") + 1);
  const route = url.pathname.includes("/thumbnail/")
    ? "/_matrix/client/v1/media/thumbnail/:serverName/:mediaId"
    : undefined;
  const port = await freePort();
  const file = join(dir, `${leg}-server.mjs`);
  writeFileSync(
    file,
    limitServerSource(REPO, port, head, { token, mediaId, bodyFile, ...(route && { route }) }),
  );
  // Its request lines go to a pipe this process drains, as mxcd's do.
  const child = spawn(process.execPath, [file], { stdio: ["ignore", "pipe", "inherit"] });
  child.stdout!.resume();
  cleanup.add(`stop the ${leg} server`, () => stopChild(child, "SIGTERM", 5_000));
  await waitForHttp(`http://127.0.0.1:${port}/x`, 10_000, () => child.exitCode === null);
  return {
    reportedOnly: true,
    bytes: pair.bytes,
    reference: pair.reference,
    target: 0,
    mxcd: {
      url: `http://127.0.0.1:${port}${path}`,
      headers: pair.mxcd.headers,
      pids: [child.pid!],
    },
    ref: pair.ref,
  };
}

/**
 * The measured limit of the 64 MiB figure: Node's bare `http` sending the
 * same file the best way Node can without sendfile — the technique of the
 * filesystem store's `sendTo` (open, fstat, two 1 MiB buffers, each refilled
 * once its write's callback ran, kept for the next answer), with the head of mxcd's answer and
 * no checks, no metrics, no log — against the same nginx file in the same
 * rounds. Reported beside mxcd's row, not a target: when mxcd's row costs
 * what this one costs, the gap to nginx is Node's (no sendfile), not mxcd's.
 */
async function largeLimitPair(dir: string, large: Pair, cleanup: Cleanup): Promise<Pair> {
  const answer = await fetch(large.mxcd.url, { headers: large.mxcd.headers });
  await answer.arrayBuffer();
  const head: string[] = [];
  for (const [name, value] of answer.headers) {
    if (!["date", "connection", "keep-alive", "content-length"].includes(name)) {
      head.push(name, value);
    }
  }
  const path = join(dir, "download-67108864.bin");
  const port = await freePort();
  const file = join(dir, "large-limit-server.mjs");
  writeFileSync(
    file,
    `import { createServer } from "node:http";
import { open } from "node:fs/promises";
const CHUNK = 1024 * 1024;
const head = ${JSON.stringify(head)};
const spare = [];
createServer(async (req, res) => {
  const handle = await open(${JSON.stringify(path)}, "r");
  try {
    const { size } = await handle.stat();
    res.writeHead(200, [...head, "content-length", String(size)]);
    const buffers = [spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK), spare.pop() ?? Buffer.allocUnsafeSlow(CHUNK)];
    const inFlight = [undefined, undefined];
    let closed = false;
    const waiting = [];
    res.once("close", () => { closed = true; for (const done of waiting.splice(0)) done(); });
    let position = 0;
    for (let turn = 0; position < size && !closed; turn ^= 1) {
      await inFlight[turn];
      const { bytesRead } = await handle.read(buffers[turn], 0, Math.min(CHUNK, size - position), position);
      if (bytesRead === 0) break;
      position += bytesRead;
      inFlight[turn] = new Promise((done) => {
        waiting.push(done);
        res.write(buffers[turn].subarray(0, bytesRead), () => done());
      });
    }
    res.end();
    await Promise.all(inFlight);
    if (position === size && spare.length < 4) spare.push(...buffers);
  } finally {
    await handle.close();
  }
}).listen(${port}, "127.0.0.1");
`,
  );
  const child = spawn(process.execPath, [file], { stdio: "ignore" });
  cleanup.add("stop the 64 MiB limit server", () => stopChild(child, "SIGTERM", 5_000));
  const url = `http://127.0.0.1:${port}/x`;
  await waitForHttp(url, 10_000, () => child.exitCode === null);
  return {
    name: "64mib-limit",
    figure: "Limit: 64 MiB from Node `http`, two reused 1 MiB buffers, no checks",
    reportedOnly: true,
    bytes: large.bytes,
    reference: large.reference,
    target: 0,
    mxcd: { url, headers: {}, pids: [child.pid!] },
    ref: large.ref,
  };
}

function fileSha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Both legs of a pair must serve the same bytes, or a fast error page could count. */
async function checkSameBytes(pair: Pair): Promise<void> {
  const mxcd = await bodyDigest(pair.mxcd.url, pair.mxcd.headers);
  const ref = await bodyDigest(pair.ref.url, pair.ref.headers);
  if (mxcd.sha256 !== ref.sha256 || mxcd.bytes === 0) {
    throw new Error(`${pair.figure}: ${pair.mxcd.url} and ${pair.ref.url} serve different bytes`);
  }
}

/**
 * A second mxcd (shipped defaults, `media_store.accel_redirect`) on the same
 * media store folder, behind nginx with the internal location; the reference
 * is the file nginx serves directly. Throws (reported as "not available")
 * when mxcd refuses the option or does not answer with X-Accel-Redirect.
 */
async function accelPair(
  tools: Tools,
  dir: string,
  settings: HotSettings,
  main: MxcdServer,
  nginx: NginxServer,
  cleanup: Cleanup,
): Promise<AccelSetup> {
  const accelDir = join(dir, "accel");
  mkdirSync(accelDir);
  const mxcd = await startMxcd(
    {
      cli: CLI,
      dir: accelDir,
      shippedDefaults: true,
      mediaStore: main.mediaStore,
      extraConfig: {
        media_store: {
          engine: "filesystem",
          path: main.mediaStore,
          accel_redirect: { location: ACCEL_LOCATION },
        },
      },
    },
    cleanup,
  ).catch((error: unknown) => {
    throw new Error(`mxcd did not start with media_store.accel_redirect: ${describeError(error)}`);
  });
  const file = join(dir, "accel-1m.bin");
  await writeRandomFile(tools, file, 1024 ** 2);
  const { mediaId } = await uploadFile(mxcd, tools.curl, file, `${file}.response`);
  const direct = await fetch(downloadUrl(mxcd, mediaId), { headers: mxcd.authHeaders });
  await direct.arrayBuffer();
  if (!direct.headers.get("x-accel-redirect")) {
    throw new Error("mxcd answered a download without X-Accel-Redirect");
  }
  const proxyDir = join(dir, "accel-nginx");
  mkdirSync(proxyDir);
  const proxy = await startNginxAccelProxy(
    {
      nginx: tools.nginx,
      dir: proxyDir,
      workers: settings.nginxWorkers,
      upstream: mxcd.port,
      location: ACCEL_LOCATION,
      storeRoot: main.mediaStore,
    },
    cleanup,
  );
  const path = `/_matrix/client/v1/media/download/${mxcd.serverName}/${mediaId}`;
  const pair: Pair = {
    name: "accel",
    figure: "1 MiB behind nginx with `accel_redirect`",
    bytes: 1024 ** 2,
    reference: "nginx alone, same file",
    target: 0.9,
    mxcd: {
      url: `${proxy.baseUrl}${path}`,
      headers: mxcd.authHeaders,
      pids: [proxy.pid, mxcd.pid],
    },
    ref: { url: `${nginx.baseUrl}/${localContentPath(mediaId)}`, headers: {}, pids: [nginx.pid] },
  };
  return { pair, direct: { url: downloadUrl(mxcd, mediaId), headers: mxcd.authHeaders, pids: [] } };
}

/** The accel_redirect figure and mxcd's own answer to its download (no nginx in between). */
interface AccelSetup {
  readonly pair: Pair;
  readonly direct: Target;
}

/**
 * The measured limit of the accel_redirect figure: the same nginx set-up
 * (its own nginx, same config, same internal location over the same store)
 * in front of the limit server (bench/fast-path-limit.ts) answering the
 * download with the head of mxcd's direct answer — X-Accel-Redirect, an
 * empty body — after only the checks any correct answer needs, against the
 * same nginx file in the same rounds. Reported beside mxcd's row, not a
 * target: what is left between this row and nginx alone is nginx proxying
 * one request and the second process on the two cores, not mxcd.
 */
async function accelLimitPair(
  tools: Tools,
  dir: string,
  settings: HotSettings,
  accel: AccelSetup,
  storeRoot: string,
  cleanup: Cleanup,
): Promise<Pair> {
  const server = await limitServer(dir, "accel-limit", accel.pair, cleanup, accel.direct);
  const proxyDir = join(dir, "accel-limit-nginx");
  mkdirSync(proxyDir);
  const proxy = await startNginxAccelProxy(
    {
      nginx: tools.nginx,
      dir: proxyDir,
      workers: settings.nginxWorkers,
      upstream: Number(new URL(server.mxcd.url).port),
      location: ACCEL_LOCATION,
      storeRoot,
    },
    cleanup,
  );
  const url = new URL(server.mxcd.url);
  return {
    ...server,
    name: "accel-limit",
    figure: "Limit: nginx in front of Node `http` answering with X-Accel-Redirect, no mxcd",
    mxcd: {
      url: `${proxy.baseUrl}${url.pathname}${url.search}`,
      headers: server.mxcd.headers,
      pids: [proxy.pid, ...server.mxcd.pids],
    },
  };
}

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const spread = (values: readonly number[], format: (n: number) => string) =>
  `${format(Math.min(...values))}–${format(Math.max(...values))}`;
const ratio = (n: number) => `${n.toFixed(2)}×`;
/** Server CPU time per file's worth of payload served. */
const cpuPerFile = (t: Throughput, bytes: number) => {
  const micros = (t.cpuLoad / (t.bytesPerSecond / bytes)) * 1e6;
  return micros >= 10_000 ? `${(micros / 1000).toFixed(1)} ms` : `${micros.toFixed(0)} µs`;
};
const rate = (t: Throughput) => Math.round(t.requestsPerSecond).toLocaleString("en-US");

/**
 * The upload's summary rows — against the slower of md5sum and sha256sum (the
 * floor: mxcd computes both, on two threads) and against sha256sum alone (the
 * reference before issue 16, for continuity) — and one row per round.
 */
function uploadRows(upload: HotResult["upload"], summary: string[][], rounds: string[][]): void {
  const bytes = upload[0]!.bytes;
  const mibPerSecond = (seconds: number) => `${(bytes / 1024 ** 2 / seconds).toFixed(0)} MiB/s`;
  const meanRate = (pick: (u: HotResult["upload"][number]) => number) =>
    mibPerSecond(1 / mean(upload.map((u) => 1 / pick(u))));
  const floor = upload.map((u) => u.ratio);
  const sha256 = upload.map((u) => u.sha256Ratio);
  summary.push([
    `${mib(bytes)} upload`,
    "the slower of `md5sum` and `sha256sum` of the file",
    meanRate((u) => u.uploadSeconds),
    `md5sum ${meanRate((u) => u.md5Seconds)}, sha256sum ${meanRate((u) => u.sha256Seconds)}`,
    `${ratio(mean(floor))} (${spread(floor, ratio)})`,
    "≥ 0.8×",
    mean(floor) >= 0.8 ? "yes" : "**no**",
  ]);
  const byFloor = upload.flatMap((u) => (u.floorSeconds ? [u.floorSeconds / u.uploadSeconds] : []));
  if (byFloor.length > 0) {
    summary.push([
      `${mib(bytes)} upload vs the measured limit`,
      "a minimal Node server reading, hashing (both) and writing the same upload (bench/support/upload-floor-server.ts)",
      meanRate((u) => u.uploadSeconds),
      meanRate((u) => u.floorSeconds ?? Number.NaN),
      `${ratio(mean(byFloor))} (${spread(byFloor, ratio)})`,
      "—",
      "—",
    ]);
  }
  summary.push([
    `${mib(bytes)} upload, for continuity`,
    "`sha256sum` of the file",
    "",
    "",
    `${ratio(mean(sha256))} (${spread(sha256, ratio)})`,
    "—",
    "—",
  ]);
  upload.forEach((u, i) => {
    rounds.push([
      `${mib(bytes)} upload`,
      String(i + 1),
      `${u.uploadSeconds.toFixed(2)} s`,
      `md5sum ${u.md5Seconds.toFixed(2)} s, sha256sum ${u.sha256Seconds.toFixed(2)} s`,
      `${ratio(u.ratio)} (sha256sum ${ratio(u.sha256Ratio)})`,
      `${u.cpuSeconds.toFixed(2)} s per upload`,
      [
        u.floorSeconds && u.floorCpuSeconds
          ? `floor ${u.floorSeconds.toFixed(2)} s, ${u.floorCpuSeconds.toFixed(2)} s CPU`
          : "",
        `the file copied into cold memory ${u.coldWriteSeconds.toFixed(2)} s`,
      ]
        .filter(Boolean)
        .join("; "),
    ]);
  });
}

/** The report's section: summary against the targets, then every round. */
export function hotPathSection(result: HotResult, started: Date, totalSeconds: number): string[] {
  const { settings } = result;
  const summary: string[][] = [];
  const rounds: string[][] = [];
  for (const pair of result.pairs) {
    const ratios = pair.mxcd.map((m, i) => m.bytesPerSecond / pair.ref[i]!.bytesPerSecond);
    const met = pair.reportedOnly ? "" : mean(ratios) >= pair.target ? "yes" : "**no**";
    summary.push([
      pair.figure,
      pair.reference,
      `${Math.round(mean(pair.mxcd.map((t) => t.requestsPerSecond))).toLocaleString("en-US")} req/s`,
      `${Math.round(mean(pair.ref.map((t) => t.requestsPerSecond))).toLocaleString("en-US")} req/s`,
      `${ratio(mean(ratios))} (${spread(ratios, ratio)})`,
      pair.reportedOnly ? "reported (a limit)" : `≥ ${pair.target}×`,
      met,
    ]);
    pair.mxcd.forEach((m, i) => {
      const r = pair.ref[i]!;
      rounds.push([
        pair.figure,
        String(i + 1),
        `${rate(m)} req/s, ${mib(m.bytesPerSecond)}/s`,
        `${rate(r)} req/s, ${mib(r.bytesPerSecond)}/s`,
        ratio(ratios[i]!),
        cpuPerFile(m, pair.bytes),
        cpuPerFile(r, pair.bytes),
      ]);
    });
  }
  if (result.accelUnavailable !== undefined) {
    summary.push([
      "1 MiB behind nginx with `accel_redirect`",
      "nginx alone, same file",
      "not available",
      "",
      "",
      "≥ 0.9×",
      `— (${result.accelUnavailable})`,
    ]);
  }
  if (result.upload.length > 0) uploadRows(result.upload, summary, rounds);
  const rssMib = result.rss.map((bytes) => bytes / 1024 ** 2);
  if (rssMib.length > 0)
    summary.push([
      "RSS at rest, embedded default",
      "—",
      `${mean(rssMib).toFixed(1)} MiB (${spread(rssMib, (n) => n.toFixed(1))})`,
      "",
      "",
      "≤ 100 MiB",
      mean(rssMib) <= 100 ? "yes" : "**no**",
    ]);
  const small = result.pairs.find((pair) => pair.figure === "authenticated 4 KiB download");
  if (small) {
    const p99 = (runs: readonly Throughput[]) =>
      `${mean(runs.map((t) => t.p99Ms)).toFixed(2)} ms (${spread(
        runs.map((t) => t.p99Ms),
        (n) => n.toFixed(2),
      )})`;
    summary.push([
      "p99 latency, 4 KiB download, 32 connections",
      "nginx p99",
      p99(small.mxcd),
      p99(small.ref),
      "",
      "reported",
      "",
    ]);
  }
  return [
    `Run on ${started.toISOString()} (${Math.round(totalSeconds)} s): ${settings.rounds} rounds, ` +
      `\`wrk -t 2 -c 32 -d ${settings.seconds}s\` after ${settings.warmupSeconds} s of warm-up per leg, ` +
      `nginx \`worker_processes ${settings.nginxWorkers}\`, mxcd with the shipped default config ` +
      "(`log_level: info`). 1-minute load average at the start " +
      `${result.loadStart.toFixed(2)}, at the end ${result.loadEnd.toFixed(2)}.`,
    "",
    ...markdownTable({
      header: [
        "figure",
        "reference",
        "mxcd (mean)",
        "reference (mean)",
        "ratio: mean (min–max)",
        "target",
        "met",
      ],
      rows: summary,
    }),
    "",
    "Each round (the ratio is payload MiB/s, mxcd ÷ reference; CPU per file is the server's CPU",
    "time during the measured run — nginx's processes, or nginx and mxcd behind it — ÷ files' worth",
    "of payload served):",
    "",
    ...markdownTable({
      header: [
        "figure",
        "round",
        "mxcd",
        "reference",
        "ratio",
        "mxcd CPU/request",
        "reference CPU/request",
      ],
      rows: rounds,
    }),
  ];
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup) => {
    const started = new Date();
    const settings = hotSettingsFromEnv(process.env);
    const result = await benchHotPath(settings, cleanup);
    const lines = hotPathSection(result, started, (Date.now() - started.getTime()) / 1000);
    console.log([HEADING, "", ...lines].join("\n"));
    const file = process.env.MXCD_BENCH_RESULTS ?? join(REPO, "bench", "RESULTS.md");
    writeSection(file, HEADING, lines);
    console.error(`written to ${file}`);
  });
}
