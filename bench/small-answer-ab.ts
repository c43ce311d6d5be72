/**
 * Issue 15's thumbnail figure: does a smaller answer cost mxcd more per
 * request than a bigger one, and what in mxcd's set-up makes it so? Legs take
 * turns in the same minutes (the order rotates every round), each loaded with
 * `wrk -t2 -c<MXCD_SMALL_CONNECTIONS, 32>` for `MXCD_BENCH_DURATION` (5 s,
 * after 1 s of warm-up), `MXCD_AB_ROUNDS` (5) rounds; per leg the server's
 * CPU per request (user + system ÷ requests), median and min–max.
 *
 * Legs (`MXCD_AB_LEGS`, default all):
 * - `mxcd-4096`, `mxcd-275`: one mxcd (this build, shipped config) serving a
 *   4 KiB and a 275-byte upload on the client v1 download route (fast path);
 * - `limit-4096`, `limit-275`: the measured limit (fast-path-limit.ts) with
 *   the same heads and bodies;
 * - `limit+opts-4096`, `limit+opts-275`: the limit on a server made with the
 *   options mxcd's Fastify gives Node's `http` (`MXCD_LIMIT_SERVER_OPTIONS`).
 *
 * Run: `npm run build && npx tsx bench/small-answer-ab.ts`. Nothing here asserts a time.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { limitServerSource } from "./fast-path-limit.js";
import { Cleanup } from "./support/cleanup.js";
import { cpuSeconds } from "./support/cpu-time.js";
import { tempDir } from "./support/files.js";
import { startMxcd } from "./support/mxcd-server.js";
import { freePort, waitForHttp } from "./support/network.js";
import { stopChild } from "./support/processes.js";
import { findTools } from "./support/tools.js";
import { runWrk, writeWrkScript } from "./support/wrk.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const SIZES = [4096, 275] as const;
const seconds = Number.parseFloat(process.env.MXCD_BENCH_DURATION ?? "5");
const rounds = Number(process.env.MXCD_AB_ROUNDS ?? 5);
const connections = Number(process.env.MXCD_SMALL_CONNECTIONS ?? 32);
/** The options Fastify (as mxcd configures it) passes to `http.createServer`, and its keep-alive timeout. */
const FASTIFY_OPTIONS = {
  headersTimeout: 60_000,
  requestTimeout: 0,
  connectionsCheckingInterval: 15_000,
  keepAliveTimeout: 72_000,
};
const ALL = [...SIZES, "thumb"].flatMap((size) => [
  `mxcd-${size}`,
  `limit-${size}`,
  `limit+opts-${size}`,
]);
const legs = process.env.MXCD_AB_LEGS?.split(",") ?? ALL;

interface Target {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly pid: number;
}

/**
 * `MXCD_SMALL_PIN=1`: wrk (and this process) on CPU 0, every server on CPU 1,
 * so the two do not take turns on one core (the figures' main noise).
 */
const pin = process.env.MXCD_SMALL_PIN === "1";
/**
 * `MXCD_SMALL_TICKS=<preload.cjs>`: every server runs with that preload, which
 * counts queued callbacks and writes them to `$TICK_OUT.<pid>` on SIGUSR2
 * (and starts over); printed per request for each leg's last round.
 */
const ticks = process.env.MXCD_SMALL_TICKS;
const preload = ticks ? ["--require", ticks] : [];
const taskset = (cpu: number, pid: number) =>
  execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" });

const cleanup = new Cleanup();
try {
  if (pin) taskset(0, process.pid);
  const tools = findTools();
  const dir = tempDir(cleanup, "mxcd-small-answer-ab-");
  const script = writeWrkScript(dir);
  process.env.TICK_OUT = join(dir, "ticks");
  const mxcd = await startMxcd(
    {
      cli: join(REPO, "dist", "src", "cli", "main.js"),
      dir,
      shippedDefaults: true,
      nodeFlags: preload,
    },
    cleanup,
  );
  if (pin) taskset(1, mxcd.pid);
  const token = /^Bearer (.+)$/.exec(mxcd.authHeaders.Authorization ?? "")?.[1] ?? "";
  const targets = new Map<string, Target>();
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
  const png = await sharp({
    create: { width: 640, height: 480, channels: 3, background: { r: 9, g: 99, b: 199 } },
  })
    .png()
    .toBuffer();
  const items = [
    ...SIZES.map((size) => ({ name: String(size), body: Buffer.alloc(size, 7) })),
    { name: "thumb", body: png },
  ];
  for (const item of items) {
    const size = item.name;
    const thumb = size === "thumb";
    const id = await upload(item.body, thumb ? "image/png" : "application/octet-stream");
    const mediaId = thumb ? `${id}?width=32&height=32&method=crop` : id;
    const route = thumb
      ? "/_matrix/client/v1/media/thumbnail/:serverName/:mediaId"
      : "/_matrix/client/v1/media/download/:serverName/:mediaId";
    const path = `${route.replace(":serverName", mxcd.serverName).replace(":mediaId", mediaId)}`;
    const url = `${mxcd.baseUrl}${path}`;
    // Until it is served (a thumbnail's pre-generation runs after the upload);
    // then once more: the first answer fills the caches, the next is the fast path's.
    for (let i = 0; i < 200; i++) {
      const res = await fetch(url, { headers: mxcd.authHeaders });
      await res.arrayBuffer();
      if (res.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const answer = await fetch(url, { headers: mxcd.authHeaders });
    const body = Buffer.from(await answer.arrayBuffer());
    targets.set(`mxcd-${size}`, { url, headers: mxcd.authHeaders, pid: mxcd.pid });
    const head: string[] = [];
    for (const [name, value] of answer.headers) {
      if (!["date", "connection", "keep-alive"].includes(name)) head.push(name, value);
    }
    const bodyFile = join(dir, `body-${size}`);
    writeFileSync(bodyFile, body);
    for (const kind of ["limit", "limit+opts"]) {
      const leg = `${kind}-${size}`;
      if (!legs.includes(leg)) continue;
      const port = await freePort();
      const file = join(dir, `${leg.replace(/\W/g, "-")}.mjs`);
      writeFileSync(file, limitServerSource(REPO, port, head, { token, mediaId, bodyFile, route }));
      const options = kind === "limit+opts" ? JSON.stringify(FASTIFY_OPTIONS) : "";
      const child: ChildProcess = spawn(process.execPath, [...preload, file], {
        stdio: ["ignore", "pipe", "inherit"],
        env: { ...process.env, MXCD_LIMIT_SERVER_OPTIONS: options, TICK_OUT: join(dir, "ticks") },
      });
      child.stdout!.resume();
      if (pin) taskset(1, child.pid!);
      cleanup.add(`stop ${leg}`, () => stopChild(child, "SIGTERM", 5_000));
      await waitForHttp(`http://127.0.0.1:${port}/x`, 10_000, () => child.exitCode === null);
      const limitUrl = `http://127.0.0.1:${port}${path}`;
      const check = await fetch(limitUrl, { headers: mxcd.authHeaders });
      const got = Buffer.from(await check.arrayBuffer());
      if (check.status !== 200 || !got.equals(body)) throw new Error(`${leg}: ${check.status}`);
      targets.set(leg, { url: limitUrl, headers: mxcd.authHeaders, pid: child.pid! });
    }
  }

  const load = { threads: connections > 1 ? 2 : 1, connections, seconds };
  const results = new Map<string, number[]>();
  const tickCounts = new Map<string, Map<string, number>>();
  const dumpTicks = async (pid: number) => {
    const file = join(dir, `ticks.${pid}`);
    rmSync(file, { force: true });
    process.kill(pid, "SIGUSR2");
    for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 10));
    return new Map(JSON.parse(readFileSync(file, "utf8")) as [string, number][]);
  };
  const perRequest = (counts: Map<string, number>, requests: number) =>
    new Map(
      [...counts].map(([name, n]) => [name, name.startsWith("raw:") ? n : n / requests] as const),
    );
  const startLoad = loadavg()[0]!;
  for (let round = 0; round < rounds; round++) {
    const order = legs.map((_, i) => legs[(i + round) % legs.length]!);
    for (const leg of order) {
      const target = targets.get(leg);
      if (!target) throw new Error(`unknown leg ${leg}`);
      await runWrk(tools.wrk, script, target.url, target.headers, { ...load, seconds: 1 });
      if (ticks) await dumpTicks(target.pid);
      const before = cpuSeconds(target.pid);
      const run = await runWrk(tools.wrk, script, target.url, target.headers, load);
      const cpu = ((cpuSeconds(target.pid) - before) * 1e6) / run.requests;
      if (ticks) tickCounts.set(leg, perRequest(await dumpTicks(target.pid), run.requests));
      console.error(
        `round ${round + 1} ${leg}: ${cpu.toFixed(1)} µs/request, ${(run.requests / run.seconds).toFixed(0)} req/s, load ${loadavg()[0]!.toFixed(1)}`,
      );
      results.set(leg, [...(results.get(leg) ?? []), cpu]);
    }
  }
  console.log(
    `${rounds} rounds × ${legs.length} legs, wrk -c${connections} -d${seconds}s each; load average ${startLoad.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`,
  );
  console.log("| leg | CPU µs/request: median (min–max) |");
  console.log("| --- | --- |");
  for (const leg of legs) {
    const xs = [...(results.get(leg) ?? [])].sort((a, b) => a - b);
    if (xs.length === 0) continue;
    const median = xs[Math.floor(xs.length / 2)]!;
    console.log(
      `| ${leg} | ${median.toFixed(1)} (${xs[0]!.toFixed(1)}–${xs.at(-1)!.toFixed(1)}) |`,
    );
  }
  // Per-round differences of each kind's two sizes (the legs of one round ran within seconds).
  for (const [kind, name] of ["mxcd", "limit", "limit+opts"].flatMap((k) => [
    [k, "275"],
    [k, "thumb"],
  ])) {
    const small = results.get(`${kind}-${name}`);
    const big = results.get(`${kind}-4096`);
    if (!small || !big) continue;
    const diffs = small.map((x, i) => x - big[i]!).sort((a, b) => a - b);
    const median = diffs[Math.floor(diffs.length / 2)]!;
    const below = diffs.filter((d) => d < 0).length;
    console.log(
      `${kind}: ${name} − 4096 per round, median ${median.toFixed(1)} µs (${diffs[0]!.toFixed(1)} – ${diffs.at(-1)!.toFixed(1)}), ${below} of ${diffs.length} rounds below 0`,
    );
  }
  if (ticks) {
    const names = [...new Set([...tickCounts.values()].flatMap((m) => [...m.keys()]))].sort();
    console.log(`\n| callback | ${legs.join(" | ")} |`);
    console.log(`| --- | ${legs.map(() => "---").join(" | ")} |`);
    for (const name of names) {
      const cells = legs.map((leg) => (tickCounts.get(leg)?.get(name) ?? 0).toFixed(2));
      if (cells.every((c) => c === "0.00")) continue;
      console.log(`| ${name} | ${cells.join(" | ")} |`);
    }
  }
} finally {
  await cleanup.run();
}
