/**
 * Lingering close, as nginx does it: when an answer goes out before the
 * request body was read (a 413 for an over-limit upload, a 401 before the
 * bytes), the answer is sent, the sending side is shut (FIN), and the rest
 * of the body is read and thrown away — for a bounded time and amount —
 * before the socket is closed.
 *
 * Why: closing a TCP socket with unread bytes in its receive buffer makes the
 * kernel send a reset (RFC 1122 §4.2.2.13), and a reset that reaches the
 * client before it has read the answer discards the answer from its receive
 * buffer. curl then often reports "connection reset" instead of the 413, and
 * python's http.client, which sends the whole body before reading, always did.
 *
 * How: Node closes the socket of a `Connection: close` answer with
 * `socket.destroySoon()` once the answer is written (http server,
 * `resOnFinish`). For this one socket, that call is replaced by a half close
 * and a drain. The drain ends (and the socket is destroyed) when the body is
 * complete, the client closes its side, `maxBytes` more bytes arrive, no
 * byte arrives for `idleMs`, or `maxMs` pass — whichever comes first.
 */
import type { IncomingMessage } from "node:http";

/** How much of an unread body is drained after an early answer. */
export interface LingerLimits {
  /** Bytes read (and discarded) at most. */
  readonly maxBytes: number;
  /** Time spent lingering at most (nginx `lingering_time`, 30s). */
  readonly maxMs: number;
  /** Longest wait for the next bytes (nginx `lingering_timeout`, 5s). */
  readonly idleMs: number;
}

export const DEFAULT_LINGER: LingerLimits = {
  maxBytes: 64 * 1024 * 1024,
  maxMs: 30_000,
  idleMs: 5_000,
};

/**
 * Arranges for `request`'s socket to linger instead of closing at once when
 * its `Connection: close` answer has been written. Call before sending the
 * answer; harmless when the body turns out to be complete.
 */
export function lingerBeforeClose(request: IncomingMessage, limits: LingerLimits): void {
  const socket = request.socket;
  if (socket.destroyed) return;
  socket.destroySoon = () => {
    // FIN after the answer: the client sees the whole answer, then EOF.
    socket.end();
    drain(request, limits);
  };
}

function drain(request: IncomingMessage, limits: LingerLimits): void {
  const socket = request.socket;
  let bytes = 0;
  let done = false;
  // Polite end: destroy once the answer and FIN are flushed. Forced end
  // (timers): destroy now, even if a client that does not read holds them up.
  const finish = (force: boolean) => {
    if (done) return;
    done = true;
    clearTimeout(total);
    clearTimeout(idle);
    if (force || socket.writableFinished) socket.destroy();
    else socket.once("finish", () => socket.destroy());
  };
  const total = setTimeout(() => finish(true), limits.maxMs);
  const idle = setTimeout(() => finish(true), limits.idleMs);
  socket.once("close", () => finish(true));
  // The whole body arrived, or the client closed its side: nothing more comes.
  if (request.complete) {
    finish(false);
    return;
  }
  request.once("end", () => finish(false));
  socket.once("end", () => finish(false));
  request.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > limits.maxBytes) finish(true);
    else idle.refresh();
  });
  request.on("error", () => finish(true));
  // The body may have been paused (an upload stopped reading it): let it flow
  // to the listener above, which discards it.
  request.resume();
}
