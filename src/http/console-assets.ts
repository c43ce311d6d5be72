/**
 * The moderation console's built files (docs/console.md): `vite build`
 * writes them to `dist/console/` (`npm run build`, and `prepare` at
 * `npm ci`). They are listed once, when the routes are registered, and read
 * into memory (the whole bundle is a few hundred KiB), so a request can
 * only ever name a file from that list: no request path reaches the file
 * system, and `..` or an encoded slash is simply a name that is not there.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** One built file. */
export interface ConsoleAsset {
  readonly body: Buffer;
  readonly contentType: string;
}

/** The built console: `files` by path relative to its folder (`assets/index-abc.js`). */
export interface ConsoleAssets {
  readonly index: ConsoleAsset;
  readonly files: ReadonlyMap<string, ConsoleAsset>;
}

/** Most files and bytes read from the folder: a bound against a wrong `dir`. */
const MAX_FILES = 500;
const MAX_BYTES = 32 * 1024 * 1024;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".json": "application/json",
  ".txt": "text/plain; charset=utf-8",
};

/**
 * `dist/console/` of the package this module belongs to: found by walking
 * up to the folder holding `package.json`, so it is the same from the
 * compiled `dist/src/...` and from `src/...` run by tsx (the tests).
 */
export function defaultConsoleDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return join(dir, "dist", "console");
}

/** The built console in `dir`, or undefined when it has not been built (no `index.html`). */
export function loadConsoleAssets(dir: string): ConsoleAssets | undefined {
  const indexPath = join(dir, "index.html");
  if (!existsSync(indexPath)) return undefined;
  const files = new Map<string, ConsoleAsset>();
  let bytes = 0;
  for (const path of listFiles(dir)) {
    const body = readFileSync(path);
    bytes += body.length;
    if (files.size >= MAX_FILES || bytes > MAX_BYTES) {
      throw new Error(`${dir} holds more than a console build (${MAX_FILES} files, 32 MiB)`);
    }
    const name = relative(dir, path).split(sep).join("/");
    const contentType = CONTENT_TYPES[extname(name)] ?? "application/octet-stream";
    files.set(name, { body, contentType });
  }
  const index = files.get("index.html");
  return index && { index, files };
}

function* listFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    const stat = statSync(path);
    if (stat.isDirectory()) yield* listFiles(path);
    else if (stat.isFile()) yield path;
  }
}
