/**
 * Attached mode's cost (issue "The attached shape", "Done when"): an
 * authenticated 4 KiB download from mxcd in attached mode, with the token
 * already in its cache, against the same download from a standalone mxcd and
 * against nginx serving the very same file, all in the same run.
 *
 * Two claims are checked on the homeserver's own request counters (the
 * scripted homeserver of the tests, run in this process: wrk is a child, so
 * nothing else talks to it):
 * - warm: while wrk loads the attached mxcd, the homeserver receives no
 *   request at all;
 * - cold: N tokens the cache has never seen cost exactly N whoami requests,
 *   asked one request at a time or with several requests per token at once
 *   (single-flight).
 *
 * Both mxcd processes run from `dist/` with the same settings, SQLite and a
 * filesystem store; the rounds alternate the order of the three servers so
 * drift in the machine's load affects them alike.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { formatSigningKeyFile, generateSigningKey } from "../src/federation/signing-key.js";
import { ScriptedHomeserver } from "../test/support/scripted-homeserver.js";
import {
  type LoadContext,
  measureThroughput,
  type Target,
  type Throughput,
} from "./download-bench.js";
import type { Cleanup } from "./support/cleanup.js";
import { envSeconds } from "./support/env-seconds.js";
import { sha256sum, tempDir, writeRandomFile } from "./support/files.js";
import { isMainModule, runMain } from "./support/main.js";
import { count, markdownTable, times } from "./support/markdown.js";
import {
  downloadUrl,
  localContentPath,
  type MxcdServer,
  startMxcd,
  uploadFile,
} from "./support/mxcd-server.js";
import { bodyDigest } from "./support/network.js";
import { startNginx } from "./support/nginx-server.js";
import { findTools } from "./support/tools.js";
import { writeWrkScript } from "./support/wrk.js";

export interface AttachedBenchContext extends LoadContext {
  /** `dist/src/cli/main.js`. */
  readonly cli: string;
  /** An empty folder for both servers, nginx and the file. */
  readonly dir: string;
  /** Measured rounds (each: the three servers, in a rotating order). */
  readonly rounds: number;
  /** `worker_processes` of the reference nginx. */
  readonly nginxWorkers: string;
  /** Fresh tokens of the concurrent cold-token check. */
  readonly coldTokens: number;
  /** Extra node flags for both mxcd processes (e.g. `--cpu-prof`). */
  readonly nodeFlags?: readonly string[];
}

type ServerName = "standalone" | "attached" | "nginx";

/** One round: each server's throughput, and the order they ran in. */
export interface AttachedRound {
  readonly order: readonly ServerName[];
  readonly results: Readonly<Record<ServerName, Throughput>>;
}

/** A cold-token check: `tokens` fresh tokens, `perToken` requests each. */
export interface ColdCheck {
  readonly tokens: number;
  readonly perToken: number;
  /** Requests in flight at once. */
  readonly inFlight: number;
  /** whoami requests the homeserver received meanwhile. */
  readonly whoami: number;
  /** Any other homeserver requests meanwhile. */
  readonly otherRequests: number;
}

export interface AttachedResult {
  readonly bytes: number;
  readonly seconds: number;
  readonly rounds: readonly AttachedRound[];
  /** Homeserver requests during every warm-up and measured run of the attached mxcd. */
  readonly warmHomeserverRequests: number;
  /** Downloads the attached mxcd served in the measured runs (req/s × seconds). */
  readonly warmDownloads: number;
  readonly cold: readonly ColdCheck[];
}

/** The bound: attached within 10 % of standalone. */
const ATTACHED_TARGET = 0.9;

const SERVER_NAME = "bench.local";
const USER_ID = `@bench:${SERVER_NAME}`;
const WHOAMI = "/_matrix/client/v3/account/whoami";
const FILE_BYTES = 4 * 1024;
const ORDER: readonly ServerName[] = ["standalone", "attached", "nginx"];

export async function benchAttached(
  context: AttachedBenchContext,
  cleanup: Cleanup,
): Promise<AttachedResult> {
  const { tools, dir } = context;
  const hs = await ScriptedHomeserver.start();
  cleanup.add("stop the scripted homeserver", () => hs.stop());
  let issued = 0;
  const newToken = () => {
    const token = `syt_YmVuY2g_bench${++issued}_${Math.random().toString(36).slice(2, 10)}`;
    hs.addToken(token, { userId: USER_ID, deviceId: "BENCH" });
    return token;
  };

  console.error("attached: starting standalone mxcd, attached mxcd and nginx");
  const dirs = folders(dir, ["standalone", "attached", "nginx"]);
  const nodeFlags = context.nodeFlags ?? [];
  const standalone = await startMxcd(
    { cli: context.cli, dir: dirs.standalone, nodeFlags },
    cleanup,
  );
  const signingKeyPath = join(dirs.attached, "signing.key");
  // Attached mode refuses to invent a key: the homeserver publishes it.
  writeFileSync(signingKeyPath, formatSigningKeyFile([generateSigningKey()]), { mode: 0o600 });
  const attached = await startMxcd(
    {
      cli: context.cli,
      dir: dirs.attached,
      nodeFlags,
      signingKeyPath,
      registerUser: false,
      accessToken: newToken(),
      extraConfig: {
        mode: "attached",
        homeserver: { base_url: hs.baseUrl, admin_api: "synapse" },
        // A ttl longer than the run, so "warm" holds throughout; with the
        // default 60 s a token costs one whoami per minute, however busy.
        access_token_cache: { ttl: "1h", negative_ttl: "5s", admin_ttl: "1h" },
      },
    },
    cleanup,
  );
  const nginx = await startNginx(
    {
      nginx: tools.nginx,
      dir: dirs.nginx,
      root: attached.mediaStore,
      workers: context.nginxWorkers,
    },
    cleanup,
  );

  const file = join(dir, "download-4k.bin");
  await writeRandomFile(tools, file, FILE_BYTES);
  const { sha256 } = await sha256sum(tools, file);
  const upload = (server: MxcdServer) =>
    uploadFile(server, tools.curl, file, `${file}.${server.port}.response`);
  const standaloneId = (await upload(standalone)).mediaId;
  const attachedId = (await upload(attached)).mediaId;
  const targets: Record<ServerName, Target> = {
    standalone: mxcdTarget(standalone, standaloneId),
    attached: mxcdTarget(attached, attachedId),
    nginx: {
      url: `${nginx.baseUrl}/${localContentPath(attachedId)}`,
      headers: {},
      pids: [nginx.pid],
    },
  };
  for (const [name, target] of Object.entries(targets)) {
    const body = await bodyDigest(target.url, target.headers);
    if (body.sha256 !== sha256 || body.bytes !== FILE_BYTES) {
      throw new Error(`${name} served different bytes for ${target.url}`);
    }
  }

  console.error("attached: cold tokens");
  const url = downloadUrl(attached, attachedId);
  const cold = [
    await coldCheck(hs, url, newToken, { tokens: 20, perToken: 3, inFlight: 1 }),
    await coldCheck(hs, url, newToken, {
      tokens: context.coldTokens,
      perToken: 4,
      inFlight: context.coldTokens * 4,
    }),
  ];

  const rounds: AttachedRound[] = [];
  let warmHomeserverRequests = 0;
  for (let round = 0; round < context.rounds; round++) {
    const order = ORDER.map((_, i) => ORDER[(i + round) % ORDER.length]!);
    const results: Partial<Record<ServerName, Throughput>> = {};
    for (const name of order) {
      console.error(`attached: round ${round + 1}/${context.rounds}, ${name}`);
      const before = hs.total;
      results[name] = await measureThroughput(context, targets[name]);
      if (name === "attached") warmHomeserverRequests += hs.total - before;
    }
    rounds.push({ order, results: results as Record<ServerName, Throughput> });
  }
  const seconds = context.load.seconds;
  const warmDownloads = rounds.reduce(
    (sum, round) => sum + round.results.attached.requestsPerSecond * seconds,
    0,
  );
  const result = {
    bytes: FILE_BYTES,
    seconds,
    rounds,
    warmHomeserverRequests,
    warmDownloads,
    cold,
  };
  for (const line of claimLines(result)) console.error(`attached: ${line}`);
  return result;
}

function folders<K extends string>(dir: string, names: readonly K[]): Record<K, string> {
  const paths = {} as Record<K, string>;
  for (const name of names) {
    paths[name] = join(dir, name);
    mkdirSync(paths[name]);
  }
  return paths;
}

function mxcdTarget(server: MxcdServer, mediaId: string): Target {
  return { url: downloadUrl(server, mediaId), headers: server.authHeaders, pids: [server.pid] };
}

/**
 * Downloads `url` with `tokens` fresh tokens, `perToken` times each, at most
 * `inFlight` requests at a time (all of one token's requests before the
 * next token's when `inFlight` is 1); counts the homeserver's requests.
 */
async function coldCheck(
  hs: ScriptedHomeserver,
  url: string,
  newToken: () => string,
  shape: { tokens: number; perToken: number; inFlight: number },
): Promise<ColdCheck> {
  const tokens = Array.from({ length: shape.tokens }, newToken);
  const requests = tokens.flatMap((token) => Array<string>(shape.perToken).fill(token));
  const [whoamiBefore, totalBefore] = [hs.count(WHOAMI), hs.total];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < requests.length; i = next++) {
      const response = await fetch(url, { headers: { authorization: `Bearer ${requests[i]}` } });
      const body = Buffer.from(await response.arrayBuffer());
      if (response.status !== 200 || body.length !== FILE_BYTES) {
        throw new Error(`cold token download answered ${response.status}: ${body.toString()}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(shape.inFlight, requests.length) }, worker));
  const whoami = hs.count(WHOAMI) - whoamiBefore;
  return { ...shape, whoami, otherRequests: hs.total - totalBefore - whoami };
}

/** Mean of one server's figure over the rounds. */
function mean(rounds: readonly AttachedRound[], pick: (round: AttachedRound) => number): number {
  return rounds.reduce((sum, round) => sum + pick(round), 0) / rounds.length;
}

const rps = (name: ServerName) => (round: AttachedRound) => round.results[name].requestsPerSecond;
/** CPU seconds of the server per download. */
const cpuPerRequest = (name: ServerName) => (round: AttachedRound) =>
  round.results[name].cpuLoad / round.results[name].requestsPerSecond;

/** attached ÷ standalone, mean req/s over the rounds. */
function attachedRatio(result: AttachedResult): number {
  return mean(result.rounds, rps("attached")) / mean(result.rounds, rps("standalone"));
}

/** Whether the two counter claims held. */
function claimsHeld(result: AttachedResult): { warm: boolean; cold: boolean } {
  return {
    warm: result.warmHomeserverRequests === 0,
    cold: result.cold.every((check) => check.whoami === check.tokens && check.otherRequests === 0),
  };
}

function claimLines(result: AttachedResult): string[] {
  const held = claimsHeld(result);
  return [
    `warm token: ${result.warmHomeserverRequests} homeserver requests during the attached runs (≈${count(Math.round(result.warmDownloads))} downloads measured) — ${held.warm ? "claim holds" : "CLAIM FAILS"}`,
    ...result.cold.map(
      (c) =>
        `cold tokens: ${c.tokens} tokens × ${c.perToken} requests, ${c.inFlight} in flight → ${c.whoami} whoami, ${c.otherRequests} other homeserver requests`,
    ),
    `cold claim (N tokens → N whoami): ${held.cold ? "holds" : "FAILS"}`,
  ];
}

/** Rows for the report's summary table (Figure, mxcd, Reference, Ratio, Target, Met). */
export function attachedSummaryRows(result: AttachedResult): string[][] {
  const held = claimsHeld(result);
  const ratio = attachedRatio(result);
  const standalone = mean(result.rounds, rps("standalone"));
  const nginx = mean(result.rounds, rps("nginx"));
  const concurrent = result.cold.at(-1)!;
  return [
    [
      "Attached: download 4 KiB, warm token (mean of rounds)",
      `${count(Math.round(mean(result.rounds, rps("attached"))))} req/s`,
      `standalone ${count(Math.round(standalone))} req/s; nginx ${count(Math.round(nginx))} req/s`,
      times(ratio),
      `≥ ${times(ATTACHED_TARGET)} standalone`,
      met(ratio >= ATTACHED_TARGET),
    ],
    [
      "Attached: homeserver requests during the warm runs",
      `${result.warmHomeserverRequests} (≈${count(Math.round(result.warmDownloads))} downloads)`,
      "—",
      "—",
      "0",
      met(held.warm),
    ],
    [
      "Attached: whoami requests for N cold tokens",
      `${concurrent.whoami} for ${concurrent.tokens} tokens × ${concurrent.perToken} at once`,
      "—",
      "—",
      "= N",
      met(held.cold),
    ],
  ];
}

/** The report's section. */
export function attachedSection(result: AttachedResult): string[] {
  const perRound = result.rounds.map((round, i) => {
    const [s, a, n] = ORDER.map((name) => round.results[name].requestsPerSecond);
    const [cs, ca] = (["standalone", "attached"] as const).map((name) =>
      cpuPerRequest(name)(round),
    );
    return [
      `${i + 1} (${round.order.join(", ")})`,
      count(Math.round(s!)),
      count(Math.round(a!)),
      count(Math.round(n!)),
      times(a! / s!),
      times(s! / n!),
      times(a! / n!),
      `${(cs! * 1e6).toFixed(0)} / ${(ca! * 1e6).toFixed(0)}`,
    ];
  });
  const ratios = result.rounds.map((round) => rps("attached")(round) / rps("standalone")(round));
  const [s, a, n] = ORDER.map((name) => mean(result.rounds, rps(name)));
  const cpu = ORDER.map((name) => mean(result.rounds, cpuPerRequest(name)) * 1e6);
  return [
    ...markdownTable({
      header: [
        "round (order)",
        "standalone req/s",
        "attached (warm) req/s",
        "nginx req/s",
        "attached ÷ standalone",
        "standalone ÷ nginx",
        "attached ÷ nginx",
        "CPU µs per download (standalone / attached)",
      ],
      rows: [
        ...perRound,
        [
          "**mean**",
          ...[s!, a!, n!].map((v) => count(Math.round(v))),
          times(a! / s!),
          times(s! / n!),
          times(a! / n!),
          `${cpu[0]!.toFixed(0)} / ${cpu[1]!.toFixed(0)}`,
        ],
      ],
      numeric: [1, 2, 3, 4, 5, 6, 7],
    }),
    "",
    `Spread of attached ÷ standalone over the ${ratios.length} rounds: ${times(Math.min(...ratios))} – ${times(Math.max(...ratios))}, median ${times(median(ratios))}. Target: ≥ ${times(ATTACHED_TARGET)} (within 10 % of standalone).`,
    `Server CPU per download (mean of rounds): standalone ${cpu[0]!.toFixed(0)} µs, attached ${cpu[1]!.toFixed(0)} µs, nginx ${cpu[2]!.toFixed(0)} µs.`,
    "",
    "Homeserver counters (the scripted homeserver, in the bench process):",
    "",
    ...claimLines(result).map((line) => `- ${line}`),
    "",
    `${result.bytes / 1024} KiB file; \`GET /_matrix/client/v1/media/download/…\` with a Bearer token`,
    "on both mxcd processes (SQLite, filesystem store, `log_level: warn`); nginx serves the same",
    "file from the attached mxcd's media store. Attached: `admin_api: synapse`,",
    "`access_token_cache.ttl: 1h` (longer than the run). Each figure follows its own untimed warm-up.",
  ];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

function met(ok: boolean): string {
  return ok ? "yes" : "**no**";
}

/** `MXCD_BENCH_ATTACHED_ROUNDS` (3) and `MXCD_BENCH_COLD_TOKENS` (200). */
export function attachedSettingsFromEnv(env: NodeJS.ProcessEnv): {
  rounds: number;
  coldTokens: number;
} {
  const integer = (name: string, fallback: number) => {
    const value = Number(env[name] ?? fallback);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be an integer >= 1`);
    return value;
  };
  return {
    rounds: integer("MXCD_BENCH_ATTACHED_ROUNDS", 3),
    coldTokens: integer("MXCD_BENCH_COLD_TOKENS", 200),
  };
}

if (isMainModule(import.meta.url)) {
  await runMain(async (cleanup) => {
    const cli = join(import.meta.dirname, "..", "dist", "src", "cli", "main.js");
    const tools = findTools();
    const dir = tempDir(cleanup, "mxcd-attached-bench-");
    const seconds = Math.max(
      1,
      Math.round(envSeconds("MXCD_BENCH_DURATION", process.env.MXCD_BENCH_DURATION, 10)),
    );
    const result = await benchAttached(
      {
        tools,
        cli,
        dir,
        wrkScript: writeWrkScript(dir),
        load: { threads: 2, connections: 32, seconds },
        warmupSeconds: Math.round(
          envSeconds("MXCD_BENCH_WARMUP", process.env.MXCD_BENCH_WARMUP, 2),
        ),
        nginxWorkers: process.env.MXCD_BENCH_NGINX_WORKERS ?? "1",
        ...attachedSettingsFromEnv(process.env),
        ...(process.env.MXCD_BENCH_CPU_PROF && {
          nodeFlags: ["--cpu-prof", `--cpu-prof-dir=${process.env.MXCD_BENCH_CPU_PROF}`],
        }),
      },
      cleanup,
    );
    console.log(
      [
        ...markdownTable({
          header: ["Figure", "mxcd", "Reference (same run)", "Ratio", "Target", "Met"],
          rows: attachedSummaryRows(result),
        }),
        "",
        ...attachedSection(result),
      ].join("\n"),
    );
  });
}
