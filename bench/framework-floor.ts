/**
 * The floor under mxcd's small-download figure (issue 15): the same 4 KiB
 * answer from Node's bare `http` module, from a Fastify route with no logger,
 * and from a Fastify route logging one pino line per request as mxcd does at
 * the shipped `log_level: info` — each from memory, no auth, no checks —
 * loaded with the downloads' wrk load. Run: `npx tsx bench/framework-floor.ts`.
 * Prints req/s and server CPU per request per leg; nothing asserts a time.
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { freePort } from "./support/network.js";

const LEGS = ["bare-http", "fastify", "fastify+log"] as const;
const duration = process.env.MXCD_BENCH_DURATION ?? "5s";

const serverSource = (leg: string, port: number) => `
const body = Buffer.alloc(4096, 7);
const headers = { "content-type": "application/octet-stream", "content-length": "4096" };
if (${JSON.stringify(leg)} === "bare-http") {
  require("node:http").createServer((req, res) => { res.writeHead(200, headers); res.end(body); }).listen(${port}, "127.0.0.1");
} else {
  const logger = ${JSON.stringify(leg)} === "fastify+log"
    ? require("pino")({ level: "info" }, require("pino").destination({ dest: "/dev/null", sync: true }))
    : false;
  const app = require("fastify")({ loggerInstance: logger || undefined, logger: logger ? undefined : false });
  app.get("/x/:a/:b", (req, reply) => reply.headers(headers).send(body));
  app.listen({ port: ${port}, host: "127.0.0.1" });
}`;

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

for (const leg of LEGS) {
  const port = await freePort();
  const child = spawn(process.execPath, ["-e", serverSource(leg, port)], { stdio: "inherit" });
  const url = `http://127.0.0.1:${port}/x/bench.local/abc`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(url);
      break;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  execFileSync("wrk", ["-t2", "-c32", "-d2s", url]);
  const before = cpuMs(child.pid!);
  const out = execFileSync("wrk", ["-t2", "-c32", `-d${duration}`, url]).toString();
  const requests = Number(/(\d+) requests in/.exec(out)![1]);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(out)![1];
  const perRequest = ((cpuMs(child.pid!) - before) * 1000) / requests;
  console.log(`${leg}: ${rate} req/s, ${perRequest.toFixed(1)} µs CPU per request`);
  child.kill();
}
