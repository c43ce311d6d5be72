/**
 * The pieces of a fast-path hit measured alone, in one process (issue 15;
 * bench/README.md, "The hot path's last microseconds"): CPU µs per call
 * (`process.cpuUsage` over many calls, the last of several repetitions), so
 * the machine's load disturbs them far less than a server under wrk.
 * Run: `npx tsx bench/fast-path-pieces.ts`. Nothing here asserts a time.
 */
import { IncomingMessage, ServerResponse } from "node:http";
import { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { hashAccessToken } from "../src/accounts/access-token.js";
import { parseFastPathRequest } from "../src/http/fast-path-request.js";
import { instrumentHttp, registerFastPathMetrics } from "../src/http/http-metrics.js";
import { CORS_HEADERS } from "../src/http/http-server.js";
import { DownloadHeaderSets } from "../src/http/media-response.js";
import { createLogger } from "../src/logging/logger.js";
import { requestLogWriter } from "../src/logging/request-log-line.js";

const set = {
  ...CORS_HEADERS,
  "x-content-type-options": "nosniff",
  ...new DownloadHeaderSets().of("application/octet-stream", null),
};
const asObject = Object.freeze({ ...set });
const asList = Object.freeze(Object.entries(set).flat());
const request = new IncomingMessage(new Socket());
const head = (write: (res: ServerResponse) => void) => () => {
  const res = new ServerResponse(request);
  write(res);
};
const registry = new Registry();
const record = instrumentHttp({ addHook() {} } as unknown as FastifyInstance, registry);
const counted = registerFastPathMetrics(registry);
const line = requestLogWriter(createLogger("info", { write() {} }));
const url = "/_matrix/client/v1/media/download/bench.local/AbCdEfGhIjKlMnOpQrStUvWx";
let n = 0;

const pieces: Record<string, () => unknown> = {
  [`writeHead, ${asList.length / 2} headers: fresh object spread + content-length (before)`]: head(
    (res) => res.writeHead(200, { ...asObject, "content-length": 4096 }),
  ),
  "writeHead, the same as a precomputed flat list + content-length (now)": head((res) =>
    res.writeHead(200, [...asList, "content-length", "4096"]),
  ),
  "writeHead, 2 headers": head((res) =>
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": "4096" }),
  ),
  parseFastPathRequest: () => parseFastPathRequest(url),
  "hashAccessToken (SHA-256)": () => hashAccessToken("mxcd_abcdefghijklmnopqrstuvwxyz0123456789AB"),
  "HTTP metrics: labelled counter + histogram child, fast-path counter": () => {
    record("GET", "/_matrix/client/v1/media/download/:serverName/:mediaId", 200, 0.0001);
    counted("download", "answered");
  },
  "the request line, built (written nowhere)": () =>
    line({
      id: `req-${(++n).toString(36)}`,
      method: "GET",
      url,
      remoteAddress: "127.0.0.1",
      statusCode: 200,
      responseTime: 0.05,
    }),
};

const CALLS = 100_000;
const results = new Map<string, number>();
for (let repetition = 0; repetition < 4; repetition++) {
  for (const [name, piece] of Object.entries(pieces)) {
    const before = process.cpuUsage();
    for (let i = 0; i < CALLS; i++) piece();
    const spent = process.cpuUsage(before);
    results.set(name, (spent.user + spent.system) / CALLS);
  }
}
console.log("| piece | CPU µs per call |\n| --- | --- |");
for (const [name, micros] of results) console.log(`| ${name} | ${micros.toFixed(2)} |`);
