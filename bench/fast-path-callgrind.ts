/**
 * Instructions per request of the serving fast path's small hits, counted by
 * valgrind's callgrind (issue 15's thumbnail figure): a count the machine's
 * load does not change, unlike CPU time, whose run-to-run spread (±20 % on
 * this 2-core machine, bench/README.md) hides a 10 µs difference. User-space
 * instructions only: the kernel's share is not in it (strace counts the
 * system calls: bench/fast-path-ab.ts `MXCD_AB_STRACE=1`).
 *
 * One mxcd (this build, `dist/`, shipped config) is prepared normally (a
 * 4 KiB upload, a 275-byte upload and a PNG whose 32×32 crop thumbnail is
 * pre-generated), then restarted under `valgrind --tool=callgrind` on the
 * same database and store; the limit server (fast-path-limit.ts) runs under
 * callgrind too, with the thumbnail's head and body. Each leg is warmed for
 * `MXCD_CG_WARM` seconds (20: the JIT settles), then for `MXCD_CG_ROUNDS` (3)
 * rounds its counters are zeroed, `wrk -t1 -c4` loads it for 4 s, and the
 * count is dumped: instructions ÷ completed requests. With
 * `MXCD_CG_FUNCTIONS=1` the last round's dumps are compared function by
 * function (`callgrind_annotate`), the functions whose instructions per
 * request differ most between the legs first.
 *
 * Legs (`MXCD_CG_LEGS`): mxcd-4096, mxcd-275, mxcd-thumb, limit-4096, limit-thumb.
 * Needs valgrind (`apt-get install valgrind`). Run: `npm run build && npx tsx
 * bench/fast-path-callgrind.ts`. Nothing here asserts a count.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { limitServerSource } from "./fast-path-limit.js";
import { Cleanup } from "./support/cleanup.js";
import { tempDir } from "./support/files.js";
import { startMxcd } from "./support/mxcd-server.js";
import { freePort, waitForHttp } from "./support/network.js";
import { OutputTail, stopChild } from "./support/processes.js";
import { findTools } from "./support/tools.js";
import { runWrk, writeWrkScript } from "./support/wrk.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(REPO, "dist", "src", "cli", "main.js");
const warm = Number(process.env.MXCD_CG_WARM ?? 20);
const rounds = Number(process.env.MXCD_CG_ROUNDS ?? 3);
const functions = process.env.MXCD_CG_FUNCTIONS === "1";
const legs = (
  process.env.MXCD_CG_LEGS ?? "mxcd-4096,mxcd-275,mxcd-thumb,limit-4096,limit-thumb"
).split(",");

interface Target {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly pid: number;
}

/** Each process's JIT code map (node --perf-basic-prof), sorted by start address. */
const perfMaps = new Map<number, { start: number; end: number; name: string }[]>();

const cleanup = new Cleanup();
try {
  const tools = findTools();
  const dir = tempDir(cleanup, "mxcd-fast-path-callgrind-");
  const script = writeWrkScript(dir);
  const mxcd = await startMxcd({ cli: CLI, dir, shippedDefaults: true }, cleanup);
  const token = /^Bearer (.+)$/.exec(mxcd.authHeaders.Authorization ?? "")?.[1] ?? "";
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
    { name: "4096", body: Buffer.alloc(4096, 7), type: "application/octet-stream" },
    { name: "275", body: Buffer.alloc(275, 7), type: "application/octet-stream" },
    { name: "thumb", body: png, type: "image/png" },
  ];
  /** Per item: the path, the route pattern, the answer's head and body (read from mxcd). */
  const answers = new Map<
    string,
    { path: string; route: string; mediaId: string; head: string[]; body: Buffer }
  >();
  for (const item of items) {
    const id = await upload(item.body, item.type);
    const thumb = item.name === "thumb";
    const mediaId = thumb ? `${id}?width=32&height=32&method=crop` : id;
    const route = thumb
      ? "/_matrix/client/v1/media/thumbnail/:serverName/:mediaId"
      : "/_matrix/client/v1/media/download/:serverName/:mediaId";
    const path = route.replace(":serverName", mxcd.serverName).replace(":mediaId", mediaId);
    let answer: Response | undefined;
    // Until it is served: the thumbnail's pre-generation runs after the upload.
    for (let i = 0; i < 200; i++) {
      answer = await fetch(mxcd.baseUrl + path, { headers: mxcd.authHeaders });
      if (answer.status === 200) break;
      await answer.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const body = Buffer.from(await answer!.arrayBuffer());
    const head: string[] = [];
    for (const [name, value] of answer!.headers) {
      if (!["date", "connection", "keep-alive"].includes(name)) head.push(name, value);
    }
    answers.set(item.name, { path, route, mediaId, head, body });
  }
  await mxcd.stop();

  const valgrind = (args: string[], name: string) => {
    const child = spawn(
      "valgrind",
      [
        "--tool=callgrind",
        "--instr-atstart=no",
        `--callgrind-out-file=${join(dir, `cg-${name}.%p`)}`,
        process.execPath,
        // JIT-compiled functions' names, for the per-function table (/tmp/perf-<pid>.map).
        ...(functions ? ["--perf-basic-prof"] : []),
        ...args,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    const out = new OutputTail(child.stdout!);
    const err = new OutputTail(child.stderr!);
    cleanup.add(`stop ${name}`, () => stopChild(child, "SIGTERM", 20_000));
    return { child, output: () => [...out.lines(20), ...err.lines(20)].join("\n") };
  };
  const targets = new Map<string, Target>();
  const started: { name: string; child: ChildProcess }[] = [];
  if (legs.some((leg) => leg.startsWith("mxcd-"))) {
    const served = valgrind([CLI, "serve", "-c", join(dir, "mxcd.yaml")], "mxcd");
    try {
      await waitForHttp(`${mxcd.baseUrl}/health`, 300_000, () => served.child.exitCode === null);
    } catch (error) {
      throw new Error(`mxcd under valgrind did not start: ${error}\n${served.output()}`);
    }
    started.push({ name: "mxcd", child: served.child });
    for (const [name, answer] of answers) {
      targets.set(`mxcd-${name}`, {
        url: mxcd.baseUrl + answer.path,
        headers: mxcd.authHeaders,
        pid: served.child.pid!,
      });
    }
  }
  for (const leg of legs.filter((l) => l.startsWith("limit-"))) {
    const answer = answers.get(leg.slice("limit-".length))!;
    const port = await freePort();
    const bodyFile = join(dir, `${leg}.body`);
    writeFileSync(bodyFile, answer.body);
    const file = join(dir, `${leg}.mjs`);
    writeFileSync(
      file,
      limitServerSource(REPO, port, answer.head, {
        token,
        mediaId: answer.mediaId,
        bodyFile,
        route: answer.route,
      }),
    );
    const limit = valgrind([file], leg);
    await waitForHttp(`http://127.0.0.1:${port}/x`, 300_000, () => limit.child.exitCode === null);
    started.push({ name: leg, child: limit.child });
    targets.set(leg, {
      url: `http://127.0.0.1:${port}${answer.path}`,
      headers: mxcd.authHeaders,
      pid: limit.child.pid!,
    });
  }
  for (const { child } of started) control(["-i", "on", String(child.pid)]);

  const load = { threads: 1, connections: 4, seconds: 4 };
  for (const leg of legs) {
    const target = targets.get(leg)!;
    const check = await fetch(target.url, { headers: target.headers });
    await check.arrayBuffer();
    if (check.status !== 200) throw new Error(`${leg} answered ${check.status}`);
    await runWrk(tools.wrk, script, target.url, target.headers, { ...load, seconds: warm });
  }
  const counts = new Map<string, number[]>();
  const cheapest = new Map<string, { dump: string; perRequest: number; requests: number }>();
  /**
   * Each server's instructions per second with no load (its timers, the
   * access-time flush, log flushes), measured each round and taken out of the
   * loaded count: at valgrind's request rate they would weigh far more per
   * request than at full speed.
   */
  const idle = new Map<number, number>();
  const totalOf = (pid: string) =>
    Number(/^totals:\s+(\d+)/m.exec(readFileSync(newestDump(dir, pid), "utf8"))?.[1]);
  for (let round = 0; round < rounds; round++) {
    for (const pid of new Set([...targets.values()].map((t) => String(t.pid)))) {
      control(["-z", pid]);
      const from = performance.now();
      await new Promise((resolve) => setTimeout(resolve, load.seconds * 1000));
      control(["-d", pid]);
      const rate = totalOf(pid) / ((performance.now() - from) / 1000);
      idle.set(Number(pid), Math.min(rate, idle.get(Number(pid)) ?? rate));
      console.error(`round ${round + 1} idle ${pid}: ${Math.round(rate)} instructions/s`);
    }
    for (const leg of legs.map((_, i) => legs[(i + round) % legs.length]!)) {
      const target = targets.get(leg)!;
      const pid = String(target.pid);
      control(["-z", pid]);
      const run = await runWrk(tools.wrk, script, target.url, target.headers, load);
      control(["-d", pid]);
      const dump = newestDump(dir, pid);
      const background = (idle.get(target.pid) ?? 0) * run.seconds;
      const perRequest = (totalOf(pid) - background) / run.requests;
      console.error(`round ${round + 1} ${leg}: ${Math.round(perRequest)} instructions/request`);
      counts.set(leg, [...(counts.get(leg) ?? []), perRequest]);
      // The cheapest round's dump: the one least disturbed by a major GC, the
      // JIT, or the server's per-second work (timers, the access-time flush),
      // which weighs far more per request at valgrind's request rate.
      if (perRequest <= Math.min(...counts.get(leg)!)) {
        cheapest.set(leg, { dump, perRequest, requests: run.requests });
      }
    }
  }
  console.log(`${rounds} rounds, wrk -t1 -c4 -d4s per leg under callgrind, after ${warm} s warm`);
  console.log("| leg | instructions per request: median (min–max) |");
  console.log("| --- | --- |");
  for (const leg of legs) {
    const xs = [...counts.get(leg)!].sort((a, b) => a - b);
    const k = (x: number) => `${(x / 1000).toFixed(1)} k`;
    console.log(
      `| ${leg} | ${k(xs[Math.floor(xs.length / 2)]!)} (${k(xs[0]!)}–${k(xs.at(-1)!)}) |`,
    );
  }
  // `MXCD_CG_SAVE=<dir>`: keeps each leg's cheapest dump (and the perf maps) for callgrind_annotate.
  const save = process.env.MXCD_CG_SAVE;
  if (save) {
    mkdirSync(save, { recursive: true });
    for (const [leg, { dump }] of cheapest) copyFileSync(dump, join(save, `${leg}.callgrind`));
    for (const { child } of started) {
      if (existsSync(`/tmp/perf-${child.pid}.map`)) {
        copyFileSync(`/tmp/perf-${child.pid}.map`, join(save, `perf-${child.pid}.map`));
      }
    }
  }
  if (functions) {
    const perFunction = new Map<string, Map<string, number>>();
    for (const leg of legs) {
      const text = execFileSync(
        "callgrind_annotate",
        ["--inclusive=no", "--threshold=100", cheapest.get(leg)!.dump],
        {
          encoding: "utf8",
          maxBuffer: 64 * 1024 * 1024,
        },
      );
      // Per request (the idle background is not taken out function by function).
      const scale = 1 / cheapest.get(leg)!.requests;
      const map = new Map<string, number>();
      for (const line of text.split("\n")) {
        const m = /^\s*([\d,]+)\s+\([^)]*\)\s+(.*)$/.exec(line);
        if (!m) continue;
        const raw = m[2]!.replace(/^\?\?\?:/, "").replace(/\s+\[.*\]$/, "");
        const name = jitName(raw, targets.get(leg)!.pid);
        map.set(name, (map.get(name) ?? 0) + Number(m[1]!.replace(/,/g, "")) * scale);
      }
      perFunction.set(leg, map);
    }
    const names = new Set([...perFunction.values()].flatMap((m) => [...m.keys()]));
    const rows = [...names].map((name) => {
      const values = legs.map((leg) => perFunction.get(leg)!.get(name) ?? 0);
      return { name, values, spread: Math.max(...values) - Math.min(...values) };
    });
    rows.sort((a, b) => b.spread - a.spread);
    console.log(
      `\nInstructions per request by function (each leg's cheapest round), largest differences first:\n`,
    );
    console.log(`| function | ${legs.join(" | ")} |`);
    console.log(`| --- | ${legs.map(() => "---").join(" | ")} |`);
    for (const row of rows.slice(0, 40)) {
      console.log(`| ${row.name} | ${row.values.map((v) => v.toFixed(0)).join(" | ")} |`);
    }
  }
} finally {
  await cleanup.run();
}

/** A JIT code address (`0x…`, as callgrind names it) → the function's name from the perf map. */
function jitName(name: string, pid: number): string {
  if (!/^0x[0-9a-f]+$/.test(name)) return name;
  let map = perfMaps.get(pid);
  if (!map) {
    map = [];
    try {
      for (const line of readFileSync(`/tmp/perf-${pid}.map`, "utf8").split("\n")) {
        const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
        if (!m) continue;
        const start = Number.parseInt(m[1]!, 16);
        map.push({ start, end: start + Number.parseInt(m[2]!, 16), name: m[3]! });
      }
    } catch {}
    perfMaps.set(pid, map);
  }
  const address = Number.parseInt(name, 16);
  // The newest entry covering the address (code can be moved or replaced).
  for (let i = map.length - 1; i >= 0; i--) {
    const entry = map[i]!;
    if (entry.start <= address && address < entry.end) return entry.name;
  }
  return name;
}

/** callgrind_control, quietly. */
function control(args: string[]): void {
  execFileSync("callgrind_control", args, { stdio: "ignore" });
}

/** The newest dump of process `pid` in `dir` (`cg-<name>.<pid>.<n>`). */
function newestDump(dir: string, pid: string): string {
  const dumps = readdirSync(dir)
    .map((name) => /^cg-.+\.(\d+)\.(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === pid)
    .sort((a, b) => Number(b[2]) - Number(a[2]));
  if (!dumps[0]) throw new Error(`no callgrind dump of ${pid}`);
  return join(dir, dumps[0][0]);
}
