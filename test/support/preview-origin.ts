/**
 * Shared by the URL preview tests (test/url-preview.test.ts,
 * test/url-preview-lifecycle.test.ts): the local origin server the previews
 * fetch from. It listens on 127.0.0.2, the only address those tests
 * whitelist, answers by path from a route table, and counts the requests
 * per path so a test can tell a cache hit from a fetch.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export const ORIGIN_HOST = "127.0.0.2";

/** A running origin: `base` is `http://127.0.0.2:<port>`, `hits` the requests per path. */
export interface PreviewOrigin {
  server: Server;
  base: string;
  hits: Map<string, number>;
}

/** Answers one request to a path (the query string is the route's to read). */
export type OriginRoute = (req: IncomingMessage, res: ServerResponse) => void;

/** A fresh origin, not listening yet (routes may close over it to read `base` and `hits`). */
export function newPreviewOrigin(): PreviewOrigin {
  return { server: createServer(), base: "", hits: new Map() };
}

/** Answers 200 with `body` as UTF-8 HTML. */
export function sendHtml(res: ServerResponse, body: string): void {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(body);
}

/**
 * Serves `routes` from `origin` (404 for any other path), counting every
 * request in `origin.hits`, and sets `origin.base` once it listens.
 */
export async function listenPreviewOrigin(
  origin: PreviewOrigin,
  routes: Readonly<Record<string, OriginRoute>>,
): Promise<void> {
  origin.server.on("request", (req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    origin.hits.set(path, (origin.hits.get(path) ?? 0) + 1);
    const route = routes[path];
    if (route) route(req, res);
    else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => origin.server.listen(0, ORIGIN_HOST, r));
  origin.base = `http://${ORIGIN_HOST}:${(origin.server.address() as AddressInfo).port}`;
}
