/**
 * The fast path's request listener called in-process, no socket and no wrk
 * (issue 15; bench/README.md, "Fourth session: where the fast path's CPU
 * goes"): a real `IncomingMessage` (headers added as Node's parser adds them)
 * and a real `ServerResponse` without a socket, so the figure is the
 * JavaScript of one cache hit — parsing, checks, caches, head, metrics and the
 * request line (into a no-op stream) — in CPU µs per request, over 6
 * repetitions of `MXCD_HANDLER_CALLS` (5,000) calls. Far less disturbed by a
 * loaded machine than a server under wrk; the socket, Node's parser and the
 * kernel are left out. `MXCD_HANDLER_ROOT`: another build's root (a copy of
 * `dist/` inside the repository) for a before/after; `MXCD_HANDLER_LEG`:
 * `download` (4 KiB, default) or `thumbnail` (32×32 crop of a 640×480 JPEG).
 * Run: `npm run build && npx tsx bench/fast-path-handler.ts`. Nothing here asserts a time.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { IncomingMessage, ServerResponse } from "node:http";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import sharp from "sharp";

const root = process.env.MXCD_HANDLER_ROOT ?? fileURLToPath(new URL("..", import.meta.url));
const leg = process.env.MXCD_HANDLER_LEG ?? "download";
const calls = Number(process.env.MXCD_HANDLER_CALLS ?? 5000);
const load = (path: string) => import(pathToFileURL(join(root, "dist", "src", path)).href);

type Listener = (req: IncomingMessage, res: ServerResponse) => void;
const { createApp } = await load("app.js");
const { validateConfig } = await load("config/load-config.js");
const { createLogger } = await load("logging/logger.js");
const { formatSigningKeyFile, generateSigningKey } = await load("federation/signing-key.js");
const dir = mkdtempSync(join(tmpdir(), "mxcd-handler-"));
writeFileSync(join(dir, "signing.key"), formatSigningKeyFile([generateSigningKey()]));
const config = validateConfig({
  server_name: "bench.local",
  listen: { host: "127.0.0.1", port: 0 },
  database: { engine: "sqlite", path: join(dir, "db.sqlite") },
  media_store: { engine: "filesystem", path: join(dir, "media") },
  signing_key_path: join(dir, "signing.key"),
});
const app = createApp(config, createLogger("info", { write() {} }));
const base: string = await app.start();
const userId = await app.accounts.register({ localpart: "bench", password: "pw", admin: false });
const token: string = (await app.accounts.issueToken(userId, "DEV")).accessToken;
const upload = async (body: Buffer, type: string) => {
  const res = await fetch(`${base}/_matrix/media/v3/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": type },
    body,
  });
  return String(((await res.json()) as { content_uri: string }).content_uri)
    .split("/")
    .pop()!;
};
let path: string;
if (leg === "thumbnail") {
  const jpeg = await sharp({
    create: { width: 640, height: 480, channels: 3, background: { r: 9, g: 99, b: 199 } },
  })
    .jpeg()
    .toBuffer();
  const id = await upload(jpeg, "image/jpeg");
  path = `/_matrix/client/v1/media/thumbnail/bench.local/${id}?width=32&height=32&method=crop`;
} else {
  path = `/_matrix/client/v1/media/download/bench.local/${await upload(Buffer.alloc(4096, 7), "application/octet-stream")}`;
}
const fastCounts = async () =>
  (await (await fetch(`${base}/metrics`)).text())
    .split("\n")
    .filter((l) => l.startsWith("mxcd_fast_path_requests_total{"))
    .join(", ");
// The caches fill on the routes' first answers (and the thumbnail's pre-generation).
for (let i = 0; i < 200 && !(await fastCounts()).includes('result="answered"'); i++) {
  await (await fetch(base + path, { headers: { authorization: `Bearer ${token}` } })).arrayBuffer();
  await new Promise((resolve) => setTimeout(resolve, 50));
}
const listener = app.http.server.listeners("request")[0] as Listener;
const socket = new Socket();
Object.defineProperty(socket, "remoteAddress", { value: "127.0.0.1" });
const rawHeaders = ["Host", "127.0.0.1", "Authorization", `Bearer ${token}`, "Accept", "*/*"];
const one = () => {
  const req = new IncomingMessage(socket);
  req.method = "GET";
  req.url = path;
  (req as unknown as { _addHeaderLines(h: string[], n: number): void })._addHeaderLines(
    rawHeaders,
    rawHeaders.length,
  );
  req.complete = true;
  listener(req, new ServerResponse(req));
};
const results: string[] = [];
for (let repetition = 0; repetition < 6; repetition++) {
  const before = process.cpuUsage();
  for (let i = 0; i < calls; i++) one();
  const spent = process.cpuUsage(before);
  results.push(((spent.user + spent.system) / calls).toFixed(1));
  await new Promise((resolve) => setImmediate(resolve));
}
console.log(`${root} ${leg}: ${results.join(" ")} CPU µs per request (6 repetitions)`);
console.log(await fastCounts());
await app.stop();
