/** Graceful HTTP shutdown for SIGTERM/SIGINT and tests. */
import type { FastifyInstance } from "fastify";
import type { Logger } from "../logging/logger.js";

/** Closes the HTTP server, letting in-flight requests finish for up to `graceMs`. */
export async function closeWithGrace(http: FastifyInstance, graceMs: number, logger: Logger) {
  const timer = setTimeout(() => {
    logger.warn({ grace_ms: graceMs }, "grace period over: closing remaining connections");
    http.server.closeAllConnections();
  }, graceMs);
  // A keep-alive connection whose last request finishes during the drain
  // becomes idle and would hold close() open until the grace period ends.
  const sweeper = setInterval(() => http.server.closeIdleConnections(), 50);
  try {
    await http.close();
  } finally {
    clearTimeout(timer);
    clearInterval(sweeper);
  }
}
