/**
 * Where a cached 4 KiB download's CPU goes (issue 15), measured as A/B legs
 * that take turns in the same minutes: each leg is its own server process,
 * loaded in turn with the downloads' `wrk -t2 -c32` load for
 * `MXCD_BENCH_DURATION` (5 s, after 1 s of warm-up), for `MXCD_AB_ROUNDS`
 * (3) rounds; the order rotates every round. Per leg: server CPU per
 * request (the process's user + system time ÷ requests, the figure a noisy
 * machine disturbs least), median and min–max over the rounds, and req/s.
 *
 * Legs (`MXCD_AB_LEGS`, comma-separated, default all):
 * - `node`: Node's bare `http` sending 4 KiB from memory with 2 headers (the floor);
 * - `node+headers`: the same with the download's real header set (read from
 *   mxcd's answer), passed to `writeHead` as an object;
 * - `node+headers+log`: and one request line per request from the fast
 *   path's writer (dist/src/logging/request-log-line.js) through pino's
 *   default destination on stdout (a pipe this process drains);
 * - `node+headers+log-buffered`: the same through `createLogDestination`
 *   (dist/src/logging/logger.js), when this build has it;
 * - `limit`: the least a correct cached answer needs, in Node's bare `http`
 *   (bench/README.md, "Fifth session"): the Authorization header read from
 *   `rawHeaders`, the token's SHA-256 (`hashAccessToken`) looked up in a Map,
 *   the media id cut from the URL and looked up in a second Map, the answer's
 *   real head (flat list, as the fast path sends it) and 4 KiB from memory,
 *   the HTTP metrics and the fast-path counter through this build's own
 *   recorders (http-metrics.js) and the same request line through this build's
 *   writer and buffered destination; a wrong token or id is a 404;
 * - `mxcd`: this build (`dist/`), shipped config (`log_level: info`);
 * - `mxcd-warn`: this build with `log_level: warn` (no request line);
 * - `mxcd-before`: the build in `MXCD_AB_BEFORE` (a copy of an older `dist/`,
 *   kept inside the repository so its imports resolve), when set;
 * - `nginx`: nginx (`worker_processes 1`) serving the same file.
 *
 * With `MXCD_AB_STRACE=1`, each leg is then loaded once more (`wrk -t1 -c8`,
 * 2 s) under `strace -c -f`, and the system calls per request of each kind
 * are printed: counts, which the machine's load does not change (strace
 * slows the server, so its CPU figures are not used).
 *
 * Run: `npm run build && npx tsx bench/fast-path-ab.ts`. Nothing here asserts a time.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { limitServerSource } from "./fast-path-limit.js";
import { Cleanup } from "./support/cleanup.js";
import { cpuSeconds, threadCpuSeconds } from "./support/cpu-time.js";
import { tempDir } from "./support/files.js";
import { localContentPath, startMxcd } from "./support/mxcd-server.js";
import { freePort, waitForHttp } from "./support/network.js";
import { startNginx } from "./support/nginx-server.js";
import { stopChild } from "./support/processes.js";
import { findTools } from "./support/tools.js";
import { runWrk, writeWrkScript } from "./support/wrk.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const ALL = [
  "node",
  "node+headers",
  "node+headers+log",
  "node+headers+log-buffered",
  "limit",
  "mxcd",
  "mxcd-warn",
  "mxcd-before",
  "nginx",
] as const;
/**
 * `MXCD_AB_VARIANTS` (JSON): more mxcd legs, `{"name": {"root": "<a copy of the
 * repository's root with another dist/>", "config": {...}, "nodeFlags": [...]}}`,
 * each a leg of its own name (a scratch A/B of one change at a time).
 */
interface Variant {
  readonly root?: string;
  readonly config?: Record<string, unknown>;
  readonly nodeFlags?: string[];
  /** Environment variables of the server process. */
  readonly env?: Record<string, string>;
}
const variants = JSON.parse(process.env.MXCD_AB_VARIANTS ?? "{}") as Record<string, Variant>;
type Leg = (typeof ALL)[number] | `variant:${string}` | `limit-${string}`;

const seconds = Number.parseFloat(process.env.MXCD_BENCH_DURATION ?? "5");
const rounds = Number(process.env.MXCD_AB_ROUNDS ?? 3);
const before = process.env.MXCD_AB_BEFORE;
const legs = [
  ...(process.env.MXCD_AB_LEGS?.split(",") ?? ALL).filter(
    (leg): leg is Leg =>
      ((ALL as readonly string[]).includes(leg) || leg.startsWith("limit-")) &&
      (leg !== "mxcd-before" || !!before),
  ),
  ...Object.keys(variants).map((name): Leg => `variant:${name}`),
];
/** `MXCD_AB_THREADS=1`: also each leg's user and system CPU per request by thread name. */
const byThread = process.env.MXCD_AB_THREADS === "1";

interface Target {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly pid: number;
}

const cleanup = new Cleanup();
try {
  const tools = findTools();
  const dir = tempDir(cleanup, "mxcd-fast-path-ab-");
  const script = writeWrkScript(dir);
  const body = Buffer.alloc(4096, 7);
  const targets = new Map<Leg, Target>();

  const mxcdLeg = async (
    name: string,
    cli: string,
    extraConfig: Record<string, unknown>,
    nodeFlags: string[] = [],
  ) => {
    const legDir = join(dir, name.replace(/\W/g, "-"));
    mkdirSync(legDir);
    const mxcd = await startMxcd(
      { cli, dir: legDir, shippedDefaults: true, extraConfig, nodeFlags },
      cleanup,
    );
    const res = await fetch(`${mxcd.baseUrl}/_matrix/media/v3/upload`, {
      method: "POST",
      headers: { ...mxcd.authHeaders, "content-type": "application/octet-stream" },
      body,
    });
    const mediaId = String(((await res.json()) as { content_uri: string }).content_uri)
      .split("/")
      .pop()!;
    const url = `${mxcd.baseUrl}/_matrix/client/v1/media/download/${mxcd.serverName}/${mediaId}`;
    return { mxcd, mediaId, url };
  };
  const cli = (root: string) => join(root, "dist", "src", "cli", "main.js");

  // Always started: the header set of the node legs and nginx's file come from it.
  const main = await mxcdLeg("mxcd", cli(REPO), {});
  targets.set("mxcd", { url: main.url, headers: main.mxcd.authHeaders, pid: main.mxcd.pid });
  const answer = await fetch(main.url, { headers: main.mxcd.authHeaders });
  await answer.arrayBuffer();
  const headerSet: Record<string, string> = {};
  for (const [name, value] of answer.headers) {
    if (!["date", "connection", "keep-alive", "content-length"].includes(name)) {
      headerSet[name] = value;
    }
  }
  if (legs.includes("mxcd-warn")) {
    const warn = await mxcdLeg("mxcd-warn", cli(REPO), { log_level: "warn" });
    targets.set("mxcd-warn", { url: warn.url, headers: warn.mxcd.authHeaders, pid: warn.mxcd.pid });
  }
  if (before && legs.includes("mxcd-before")) {
    const old = await mxcdLeg("mxcd-before", cli(before), {});
    targets.set("mxcd-before", { url: old.url, headers: old.mxcd.authHeaders, pid: old.mxcd.pid });
  }
  for (const [name, variant] of Object.entries(variants)) {
    const leg: Leg = `variant:${name}`;
    const saved = { ...process.env };
    Object.assign(process.env, variant.env ?? {});
    const v = await mxcdLeg(
      leg,
      cli(variant.root ?? REPO),
      variant.config ?? {},
      variant.nodeFlags,
    );
    for (const name of Object.keys(variant.env ?? {})) {
      if (saved[name] === undefined) delete process.env[name];
      else process.env[name] = saved[name];
    }
    targets.set(leg, { url: v.url, headers: v.mxcd.authHeaders, pid: v.mxcd.pid });
  }
  if (legs.includes("nginx")) {
    const nginxDir = join(dir, "nginx");
    mkdirSync(nginxDir);
    const nginx = await startNginx(
      { nginx: tools.nginx, dir: nginxDir, workers: "1", root: main.mxcd.mediaStore },
      cleanup,
    );
    targets.set("nginx", {
      url: `${nginx.baseUrl}/${localContentPath(main.mediaId)}`,
      headers: {},
      pid: nginx.pid,
    });
  }
  for (const leg of legs) {
    if (!leg.startsWith("node") && !leg.startsWith("limit")) continue;
    const port = await freePort();
    const file = join(dir, `${leg.replace(/\W/g, "-")}.mjs`);
    const token = /^Bearer (.+)$/.exec(main.mxcd.authHeaders.Authorization ?? "")?.[1] ?? "";
    writeFileSync(file, nodeServer(leg, port, headerSet, { token, mediaId: main.mediaId }));
    const child: ChildProcess = spawn(process.execPath, [file], {
      stdio: ["ignore", "pipe", "inherit"],
      // `limit-<parts>`: the limit without the parts named (see limitServer).
      env: { ...process.env, MXCD_LIMIT_WITHOUT: leg.startsWith("limit-") ? leg.slice(6) : "" },
    });
    child.stdout!.resume();
    cleanup.add(`stop ${leg}`, () => stopChild(child, "SIGTERM", 5_000));
    const limit = leg.startsWith("limit");
    const url = limit
      ? `http://127.0.0.1:${port}${new URL(main.url).pathname}`
      : `http://127.0.0.1:${port}/x`;
    await waitForHttp(`http://127.0.0.1:${port}/x`, 10_000, () => child.exitCode === null);
    const headers = limit ? main.mxcd.authHeaders : {};
    // The limit must answer what mxcd answers, byte for byte in the body.
    const check = await fetch(url, { headers });
    const got = Buffer.from(await check.arrayBuffer());
    if (check.status !== 200 || !got.equals(body))
      throw new Error(`${leg} answered ${check.status}`);
    targets.set(leg, { url, headers, pid: child.pid! });
  }

  const load = { threads: 2, connections: 32, seconds };
  const results = new Map<Leg, { cpu: number; rate: number }[]>();
  const threads = new Map<Leg, Map<string, { user: number; system: number }>[]>();
  const startLoad = loadavg()[0]!;
  for (let round = 0; round < rounds; round++) {
    const order = legs.map((_, i) => legs[(i + round) % legs.length]!);
    for (const leg of order) {
      const target = targets.get(leg)!;
      await runWrk(tools.wrk, script, target.url, target.headers, { ...load, seconds: 1 });
      const cpuBefore = cpuSeconds(target.pid);
      const threadsBefore = threadCpuSeconds(target.pid);
      const run = await runWrk(tools.wrk, script, target.url, target.headers, load);
      const cpu = ((cpuSeconds(target.pid) - cpuBefore) * 1e6) / run.requests;
      const perThread = new Map<string, { user: number; system: number }>();
      for (const [name, after] of threadCpuSeconds(target.pid)) {
        const was = threadsBefore.get(name) ?? { user: 0, system: 0 };
        perThread.set(name, {
          user: ((after.user - was.user) * 1e6) / run.requests,
          system: ((after.system - was.system) * 1e6) / run.requests,
        });
      }
      threads.set(leg, [...(threads.get(leg) ?? []), perThread]);
      const rate = run.requests / run.seconds;
      console.error(
        `round ${round + 1} ${leg}: ${cpu.toFixed(1)} µs/request, ${rate.toFixed(0)} req/s`,
      );
      results.set(leg, [...(results.get(leg) ?? []), { cpu, rate }]);
    }
  }
  console.log(
    `${rounds} rounds × ${legs.length} legs, wrk -t2 -c32 -d${seconds}s each; ` +
      `load average ${startLoad.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`,
  );
  console.log("| leg | CPU µs/request: median (min–max) | req/s: median |");
  // min: the round the machine disturbed least.
  console.log("| --- | --- | --- |");
  for (const leg of legs) {
    const runs = results.get(leg);
    if (!runs) continue;
    const cpus = runs.map((r) => r.cpu).sort((a, b) => a - b);
    const rates = runs.map((r) => r.rate).sort((a, b) => a - b);
    const median = (xs: number[]) => xs[Math.floor(xs.length / 2)]!;
    console.log(
      `| ${leg} | ${median(cpus).toFixed(1)} (${cpus[0]!.toFixed(1)}–${cpus.at(-1)!.toFixed(1)}) | ${Math.round(median(rates))} |`,
    );
  }
  if (byThread) {
    console.log("\nCPU µs per request by thread name, user + system (median over the rounds):\n");
    console.log("| leg | thread | user | system |");
    console.log("| --- | --- | --- | --- |");
    for (const leg of legs) {
      const runs = threads.get(leg) ?? [];
      const names = new Set(runs.flatMap((run) => [...run.keys()]));
      for (const name of [...names].sort()) {
        const med = (pick: (t: { user: number; system: number }) => number) => {
          const xs = runs.map((run) => pick(run.get(name) ?? { user: 0, system: 0 }));
          return xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
        };
        const user = med((t) => t.user);
        const system = med((t) => t.system);
        if (user + system < 0.05) continue;
        console.log(`| ${leg} | ${name} | ${user.toFixed(1)} | ${system.toFixed(1)} |`);
      }
    }
  }
  if (process.env.MXCD_AB_STRACE === "1") {
    console.log("\nSystem calls per request (strace -c -f, wrk -t1 -c8 -d2s):\n");
    const table = new Map<Leg, Map<string, number>>();
    const names = new Set<string>();
    for (const leg of legs) {
      const target = targets.get(leg)!;
      const out = join(dir, `strace-${leg.replace(/\W/g, "-")}.txt`);
      const tracer = spawn("strace", ["-c", "-f", "-o", out, "-p", String(target.pid)], {
        stdio: "ignore",
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      const run = await runWrk(tools.wrk, script, target.url, target.headers, {
        threads: 1,
        connections: 8,
        seconds: 2,
      });
      tracer.kill("SIGINT");
      await new Promise((resolve) => tracer.once("close", resolve));
      const counts = new Map<string, number>();
      for (const line of readFileSync(out, "utf8").split("\n")) {
        const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/.exec(line);
        if (m && m[2] !== "total") {
          counts.set(m[2]!, Number(m[1]) / run.requests);
          names.add(m[2]!);
        }
      }
      table.set(leg, counts);
    }
    const shown = [...names].filter((name) =>
      legs.some((leg) => (table.get(leg)!.get(name) ?? 0) >= 0.01),
    );
    console.log(`| system call | ${legs.join(" | ")} |`);
    console.log(`| --- | ${legs.map(() => "---").join(" | ")} |`);
    for (const name of shown.sort()) {
      const cells = legs.map((leg) => (table.get(leg)!.get(name) ?? 0).toFixed(2));
      console.log(`| ${name} | ${cells.join(" | ")} |`);
    }
  }
} finally {
  await cleanup.run();
}

/** The source of one node leg's server (ESM, run from a temporary file). */
function nodeServer(
  leg: Leg,
  port: number,
  headerSet: Record<string, string>,
  media: { token: string; mediaId: string },
): string {
  if (leg.startsWith("limit")) {
    const head = Object.entries({ ...headerSet, "content-length": "4096" }).flat();
    return limitServerSource(REPO, port, head, media);
  }
  const dist = (path: string) =>
    JSON.stringify(pathToFileURL(join(REPO, "dist", "src", path)).href);
  const withHeaders = leg !== "node";
  const log = leg.includes("+log");
  return `
import { createServer } from "node:http";
import { createRequire } from "node:module";
const require = createRequire(${JSON.stringify(join(REPO, "package.json"))});
const body = Buffer.alloc(4096, 7);
const head = ${withHeaders ? JSON.stringify({ ...headerSet, "content-length": "4096" }) : `{ "content-type": "application/octet-stream", "content-length": "4096" }`};
let write = () => {};
if (${log}) {
  const { requestLogWriter } = await import(${dist("logging/request-log-line.js")});
  const logging = await import(${dist("logging/logger.js")});
  const destinations = await import(${dist("logging/log-destination.js")}).catch(() => ({}));
  const buffered = ${leg === "node+headers+log-buffered"};
  if (buffered && !destinations.createLogDestination) throw new Error("this build has no createLogDestination");
  const logger = logging.createLogger("info", buffered ? destinations.createLogDestination() : undefined);
  const line = requestLogWriter(logger);
  let n = 0;
  write = (req) => line({ id: "req-" + (++n).toString(36), method: "GET", url: req.url, remoteAddress: req.socket.remoteAddress, statusCode: 200, responseTime: 0.05 });
}
createServer((req, res) => {
  res.writeHead(200, head);
  res.end(body);
  write(req);
}).listen(${port}, "127.0.0.1");
`;
}
