/**
 * The moderation console (docs/console.md) at `/_mxcd/console/`: a
 * single-page app built into `dist/console/` (console-assets.ts).
 *
 * - `assets/…`: the hashed bundle files, cached for a year (`immutable`);
 *   a missing one is 404 (never the app, which would run as a script);
 * - `config.json`: what the login screen needs (the deployment shape and
 *   `server_name`); no secret;
 * - any other path: `index.html` with `no-cache`, so the app's own routes
 *   (`/_mxcd/console/media/…`) load it and a new build is seen at once.
 *
 * Every answer carries a strict Content-Security-Policy (only the bundle's
 * own scripts and styles; images also from `blob:` URLs, which is how the
 * app shows media it fetched with the access token), `nosniff`, no
 * referrer and no framing. The console only calls the public admin APIs
 * with the admin's token; these routes need none.
 */
import type { FastifyInstance, FastifyReply } from "fastify";
import { MatrixError } from "../../domain/matrix-error.js";
import type { ConsoleAsset, ConsoleAssets } from "../console-assets.js";

export interface ConsoleRouteDeps {
  /** The built console, or undefined when `dist/console/` was not built. */
  assets: ConsoleAssets | undefined;
  mode: "standalone" | "attached";
  serverName: string;
}

export const CONSOLE_PREFIX = "/_mxcd/console";

/** The console's Content-Security-Policy: nothing inline, nothing from elsewhere. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "media-src 'self' blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": CONSOLE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
} as const;

const IMMUTABLE = "public, max-age=31536000, immutable";

export function registerConsoleRoutes(app: FastifyInstance, deps: ConsoleRouteDeps): void {
  const settings = { mode: deps.mode, server_name: deps.serverName };
  app.get(CONSOLE_PREFIX, async (_request, reply) => {
    reply.headers(SECURITY_HEADERS);
    return reply.redirect(`${CONSOLE_PREFIX}/`);
  });
  app.get(`${CONSOLE_PREFIX}/config.json`, async (_request, reply) => {
    reply.headers(SECURITY_HEADERS).header("cache-control", "no-cache");
    return settings;
  });
  app.get(`${CONSOLE_PREFIX}/*`, async (request, reply) => {
    reply.headers(SECURITY_HEADERS);
    const { assets } = deps;
    if (!assets) {
      throw new MatrixError(
        "M_NOT_FOUND",
        "The moderation console is not built: run `npm run build` (docs/console.md)",
      );
    }
    // The raw path, undecoded: built file names need no escaping, so an
    // escaped name is one that is not there.
    const path = request.url.split("?", 1)[0]!.slice(CONSOLE_PREFIX.length + 1);
    const file = assets.files.get(path);
    if (file && path !== "index.html") {
      return send(reply, file, path.startsWith("assets/") ? IMMUTABLE : "no-cache");
    }
    if (path.startsWith("assets/")) throw new MatrixError("M_NOT_FOUND", "Not found");
    return send(reply, assets.index, "no-cache");
  });
}

function send(reply: FastifyReply, file: ConsoleAsset, cacheControl: string): FastifyReply {
  return reply.header("cache-control", cacheControl).type(file.contentType).send(file.body);
}
