/**
 * The request-body idle timeout: a client that sent its headers and then
 * stalls mid-body (one byte, then nothing) would otherwise hold its
 * connection, its request and its upload's temp file forever (Fastify sets
 * Node's own `requestTimeout` to 0, and a whole-request limit would cut off
 * honest slow uploads anyway).
 *
 * Design note: a check every quarter of `idleMs` compares the socket's byte
 * count (`bytesRead` counts what the HTTP parser consumes too). The clock
 * only runs against the client: while body bytes wait in the request's
 * buffer, the server is the slow side (a blob store applying backpressure,
 * a handler still checking auth) and the connection is not idle. A stalled
 * request is destroyed, which ends its socket and fails its upload, whose
 * clean-up then removes the temp file and releases the claim.
 */
import type { IncomingMessage } from "node:http";

/** Watches `request` until its body is complete; destroys it after `idleMs` without body bytes. */
export function watchBodyIdle(
  request: IncomingMessage,
  idleMs: number,
  onStall: () => void = () => {},
): void {
  if (!hasBody(request)) return;
  const socket = request.socket;
  let lastBytes = socket.bytesRead;
  let lastChange = Date.now();
  const stop = () => clearInterval(timer);
  const timer = setInterval(
    () => {
      if (request.complete || request.destroyed || socket.destroyed) {
        stop();
        return;
      }
      const bytes = socket.bytesRead;
      const now = Date.now();
      if (bytes !== lastBytes || request.readableLength > 0) {
        lastBytes = bytes;
        lastChange = now;
        return;
      }
      if (now - lastChange < idleMs) return;
      stop();
      onStall();
      request.destroy(new Error(`request body idle for ${idleMs} ms`));
    },
    Math.max(5, Math.floor(idleMs / 4)),
  );
  timer.unref();
  // Listening for these does not start the body flowing.
  request.once("end", stop);
  request.once("close", stop);
}

/** Whether the request announces a body (RFC 9112 §6.3: Content-Length or Transfer-Encoding). */
function hasBody(request: IncomingMessage): boolean {
  if (request.headers["transfer-encoding"] !== undefined) return true;
  const length = request.headers["content-length"];
  return length !== undefined && length !== "0";
}
