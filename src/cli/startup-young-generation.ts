/**
 * Keeps V8's young generation at its initial size while `mxcd serve` starts.
 *
 * Why: start-up (loading some 600 modules, compiling the config schema,
 * checking migrations) allocates a lot of short-lived data at a high
 * survival rate, which makes V8 double the young generation's semi-spaces up
 * to their 16 MiB maximum. Nothing shrinks them again while the process is
 * idle, so an idle server kept about 15 MiB of start-up garbage space
 * resident (issue 15, "Memory at rest"; docs/deployment.md). The growth
 * factor is held at 1 during start-up and set to 16 at the server's first
 * request other than a health check (see GROWTH_FACTOR_AFTER_START; not at
 * `listen`: the work that still runs after it — background jobs starting,
 * the admin check — grew it under load), so the first growth under load restores
 * the size an ordinary start leaves and the hot path costs what it did.
 * `v8.setFlagsFromString` after start-up is allowed but unusual; V8 reads
 * this flag each time it grows the young generation.
 *
 * A `--semi-space-growth-factor` or `--max-semi-space-size` given by the
 * operator (node flags or NODE_OPTIONS) is left alone.
 */
import type { IncomingMessage, Server } from "node:http";
import { setFlagsFromString } from "node:v8";

/**
 * The growth factor once the server listens. Not V8's default (2): growth
 * only happens after a scavenge when the bytes that survived since the last
 * growth exceed the young generation's size, which a request load (short-
 * lived garbage, few survivors) reaches only slowly, doubling at a time. A
 * young generation left at 1 MiB doubled the CPU per 4 KiB download (more,
 * smaller scavenges). With 16 the first growth under load takes it straight
 * from 1 MiB to its 16 MiB maximum, the size an ordinary start leaves.
 */
const GROWTH_FACTOR_AFTER_START = 16;

/** Stops young-generation growth now; the returned function restores it (idempotent). */
export function holdYoungGenerationDuringStartup(): () => void {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ""].some((flag) =>
    /semi[-_]space/.test(flag),
  );
  if (given) return () => {};
  setFlagsFromString("--semi-space-growth-factor=1");
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    setFlagsFromString(`--semi-space-growth-factor=${GROWTH_FACTOR_AFTER_START}`);
  };
}

/**
 * Calls `release` at the first request `server` receives other than
 * `GET /health` (a load balancer's or supervisor's probe), then stops
 * looking at requests.
 */
export function releaseOnFirstRequest(server: Server, release: () => void): void {
  const onRequest = (request: IncomingMessage) => {
    if (request.url === "/health") return;
    server.off("request", onRequest);
    release();
  };
  server.on("request", onRequest);
}
