/**
 * The measured limit of issue 15's small hits (bench/README.md, "Fifth
 * session"): what any correct answer to a cached, authenticated 4 KiB
 * download must do, and nothing else, in Node's bare `http`.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/**
 * The source of the `limit` server (bench/fast-path-ab.ts's `limit` legs and
 * bench:hot's limit row): the least a correct cached 4 KiB download needs, in
 * Node's bare `http`, run from a temporary .mjs file against `repo`'s `dist/`
 * (bench/README.md, "Fifth session"). `head` is the answer's flat head
 * (Content-Length included), `media` the token and media id it accepts and
 * the file holding the body (4 KiB of 7s without one, as fast-path-ab
 * uploads); `GET /x` answers "ready". The media id is the URL's last
 * segment, query included: for bench:hot's thumbnail limit
 * (`…/<id>?width=32&height=32&method=crop`) that is one look-up of the whole
 * request, as the fast path's remembered URLs are. The environment variable
 * `MXCD_LIMIT_WITHOUT` (parts joined by `+`; fast-path-ab's `limit-<parts>`
 * legs) leaves parts out, to see what each costs: `metrics` (the recorders),
 * `defaults` (prom-client's default process metrics), `log` (the request
 * line), `hash` (the token's SHA-256 and its Map), `arrayhead` (the head as an
 * object instead of a flat list).
 */
export function limitServerSource(
  repo: string,
  port: number,
  head: readonly string[],
  media: {
    readonly token: string;
    readonly mediaId: string;
    readonly bodyFile?: string;
    /** The route pattern of the metrics label (default: the client v1 download's). */
    readonly route?: string;
  },
): string {
  const dist = (path: string) =>
    JSON.stringify(pathToFileURL(join(repo, "dist", "src", path)).href);
  return `
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
const { hashAccessToken } = await import(${dist("accounts/access-token.js")});
const { requestLogWriter } = await import(${dist("logging/request-log-line.js")});
const { createLogger } = await import(${dist("logging/logger.js")});
const { createLogDestination } = await import(${dist("logging/log-destination.js")});
const { createMetricsRegistry, instrumentHttp, registerFastPathMetrics } = await import(${dist("http/http-metrics.js")});
const without = new Set((process.env.MXCD_LIMIT_WITHOUT ?? "").split("+"));
const { Registry } = createRequire(${JSON.stringify(join(repo, "package.json"))})("prom-client");
const registry = without.has("defaults") ? new Registry() : createMetricsRegistry();
// instrumentHttp's Fastify hook is not used here: no Fastify.
const record = instrumentHttp({ addHook() {} }, registry);
const counted = registerFastPathMetrics(registry);
const line = without.has("log") ? () => {} : requestLogWriter(createLogger("info", createLogDestination()));
const route = ${JSON.stringify(media.route ?? "/_matrix/client/v1/media/download/:serverName/:mediaId")};
const tokens = new Map([[hashAccessToken(${JSON.stringify(media.token)}), { userId: "@bench:bench.local" }]]);
const head = ${JSON.stringify(head)};
const headObject = {};
for (let i = 0; i < head.length; i += 2) headObject[head[i]] = head[i + 1];
const rows = new Map([[${JSON.stringify(media.mediaId)}, { head: without.has("arrayhead") ? headObject : head, body: ${media.bodyFile === undefined ? "Buffer.alloc(4096, 7)" : `(await import("node:fs")).readFileSync(${JSON.stringify(media.bodyFile)})`} }]]);
const BEARER = /^Bearer\\s+(\\S+)\\s*$/i;
let n = 0;
// MXCD_LIMIT_SERVER_OPTIONS (JSON): options for createServer, keepAliveTimeout among them.
const serverOptions = JSON.parse(process.env.MXCD_LIMIT_SERVER_OPTIONS || "{}");
const server = createServer(serverOptions, (req, res) => {
  const url = req.url;
  if (url === "/x") return res.end("ready");
  const start = performance.now();
  const raw = req.rawHeaders;
  let authorization;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].length === 13 && raw[i].toLowerCase() === "authorization") authorization = raw[i + 1];
  }
  const bearer = authorization === undefined ? null : BEARER.exec(authorization);
  const known = without.has("hash") ? bearer : bearer && tokens.get(hashAccessToken(bearer[1]));
  const row = known ? rows.get(url.slice(url.lastIndexOf("/") + 1)) : undefined;
  if (!row) {
    res.writeHead(404);
    res.end();
    return;
  }
  res.writeHead(200, row.head);
  res.end(row.body);
  const ms = performance.now() - start;
  if (!without.has("metrics")) {
    counted(route.includes("/thumbnail/") ? "thumbnail" : "download", "answered");
    record("GET", route, 200, ms / 1000);
  }
  n = (n + 1) & 0x7fffffff;
  line({ id: "req-" + n.toString(36), method: "GET", url, urlHasNoSecrets: true, remoteAddress: req.socket.remoteAddress, statusCode: 200, responseTime: ms });
});
if (serverOptions.keepAliveTimeout !== undefined) server.keepAliveTimeout = serverOptions.keepAliveTimeout;
server.listen(${port}, "127.0.0.1");
`;
}
