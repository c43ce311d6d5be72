/**
 * Answers for requests Node's HTTP parser refuses before any route sees
 * them — headers (or a request line: a URL with a huge `access_token`)
 * larger than Node's limit, bytes no header may hold, a header time-out —
 * in the Matrix error shape every other refusal has (`{"errcode","error"}`),
 * instead of Fastify's own `{"error","message","statusCode"}`.
 *
 * The status is the one Fastify and Node give (431, 408, else 400). The
 * answer is followed by a half close, and what the client still sends is
 * read and discarded for a short while before the socket is destroyed: a
 * client still writing a 100 KB request line would otherwise get a reset
 * that discards the answer (lingering-close.ts explains why).
 */
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";

/** How long a refused connection is drained before it is destroyed. */
const LINGER_MS = 2_000;

interface ClientError extends Error {
  readonly code?: string;
}

/** Fastify's `clientErrorHandler`: writes the Matrix error, then lingers and closes. */
export function answerClientError(error: ClientError, socket: Socket): void {
  // A reset connection has nobody to answer; an answered one is answered once
  // (Node reports each further chunk of the refused request again).
  if (error.code === "ECONNRESET" || socket.destroyed || socket.writableEnded) return;
  const [status, message] = describe(error.code);
  const body = JSON.stringify({ errcode: "M_UNKNOWN", error: message });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      "Content-Type: application/json\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      "Connection: close\r\n\r\n" +
      body,
  );
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once("close", () => clearTimeout(timer));
}

function describe(code: string | undefined): [number, string] {
  switch (code) {
    case "HPE_HEADER_OVERFLOW":
      return [431, "Request headers (or URL) too large"];
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return [408, "Request headers not received in time"];
    default:
      return [400, "Malformed HTTP request"];
  }
}
