/**
 * The HTTP core every route shares: one error funnel that turns anything
 * thrown into a Matrix error body, 404/405 M_UNRECOGNIZED for unknown paths
 * and wrong methods, JSON bodies (400 M_NOT_JSON when malformed), CORS for
 * browser clients, request logging and metrics; and the connection limits:
 * a header timeout (Node's `headersTimeout`), a request-body idle timeout
 * (body-idle-timeout.ts) and a lingering close after an early answer
 * (lingering-close.ts).
 *
 * The serving fast path (fast-path.ts) sits in front of Fastify on the same
 * `http` server: its request listener answers clean cache hits of downloads
 * and thumbnails and hands every other request to Fastify's handler, with
 * the request ids, metrics and log line Fastify's answers get.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { Registry } from "prom-client";
import { exceedsJsonDepth } from "../domain/json-depth.js";
import { MatrixError } from "../domain/matrix-error.js";
import type { Logger } from "../logging/logger.js";
import { requestLogWriter } from "../logging/request-log-line.js";
import { BlobNotFoundError } from "../storage/blob-store.js";
import { watchBodyIdle } from "./body-idle-timeout.js";
import { answerClientError } from "./client-error.js";
import type { FastPathSlot, HttpCore } from "./fast-path.js";
import { instrumentHttp } from "./http-metrics.js";
import { DEFAULT_LINGER, type LingerLimits, lingerBeforeClose } from "./lingering-close.js";
import { addNosniffIfMedia } from "./media-response.js";
import { MethodIndex } from "./method-index.js";
import {
  isNullByteStorageError,
  jsonHasNullByte,
  nullByteBodyError,
  nullByteError,
  urlHasNullByte,
} from "./null-bytes.js";

export interface HttpServerOptions {
  logger: Logger;
  metrics: Registry;
  /** Largest JSON body accepted, in bytes. */
  jsonBodyLimit?: number;
  /** Take the client address from X-Forwarded-For (`listen.x_forwarded`). */
  trustProxy?: boolean;
  /** `http_timeouts` (docs/configuration.md); defaults 60 s each. */
  timeouts?: HttpTimeouts;
  /** Bounds of the lingering close after an early answer; tests shrink them. */
  linger?: LingerLimits;
  /** The serving fast path, filled in once the services exist; unset or empty: Fastify only. */
  fastPath?: FastPathSlot;
}

export interface HttpTimeouts {
  /** Time to receive a request's headers (Node `headersTimeout`); 408, then close. */
  readonly headersMs: number;
  /** Longest wait for the next bytes of a request body; then the connection is closed. */
  readonly bodyIdleMs: number;
}

const DEFAULT_TIMEOUTS: HttpTimeouts = { headersMs: 60_000, bodyIdleMs: 60_000 };

/**
 * Deepest JSON body parsed. Above the event-content limit (MAX_JSON_DEPTH,
 * checked by the room services with its own message), because bodies wrap
 * event contents a few levels down (createRoom's `initial_state`).
 */
const MAX_BODY_DEPTH = 128;

/** CORS headers Matrix web clients need (client-server API, "Web Browser Clients"). */
export const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
  "access-control-allow-headers": "X-Requested-With, Content-Type, Authorization, Date",
  "access-control-expose-headers": "ETag, Content-Disposition, Content-Length, Content-Range",
} as const;

export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const methods = new MethodIndex();
  const timeouts = options.timeouts ?? DEFAULT_TIMEOUTS;
  const linger = options.linger ?? DEFAULT_LINGER;
  const requestId = requestIds();
  const app = Fastify({
    // One sequence for Fastify's requests and the fast path's.
    genReqId: requestId,
    http: {
      headersTimeout: timeouts.headersMs,
      // Fastify turns the whole-request limit off (0) anyway; set it here so
      // Node accepts any headersTimeout (it refuses one above requestTimeout).
      requestTimeout: 0,
      // Node checks header deadlines on this interval (30 s by default).
      connectionsCheckingInterval: Math.max(10, Math.min(30_000, timeouts.headersMs / 4)),
    },
    loggerInstance: options.logger as FastifyBaseLogger,
    // One line per request (logRequest below) instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.jsonBodyLimit ?? 1024 * 1024,
    // Ids are validated by our own functions, which give a proper 400;
    // the router's own limit would answer a bare 404 instead.
    routerOptions: { maxParamLength: 10_000 },
    return503OnClosing: true,
    trustProxy: options.trustProxy ?? false,
    forceCloseConnections: "idle",
    // Requests Node's parser refuses (431, 408, 400) get a Matrix error body too.
    clientErrorHandler: answerClientError,
    frameworkErrors: (error, request, reply) => {
      addNosniffIfMedia(reply, request.url);
      sendError(
        reply,
        new MatrixError("M_INVALID_PARAM", `Invalid request: ${error.message}`),
        linger,
      );
    },
  });

  app.addHook("onRoute", (route) => methods.add(route.method, route.url));
  app.addHook("onResponse", logRequest);
  app.addHook("onRequest", async (request, reply) => {
    reply.headers(CORS_HEADERS);
    // No id, filter or token holds NUL; PostgreSQL cannot store it (null-bytes.ts).
    if (urlHasNullByte(request.url)) throw nullByteError();
    watchBodyIdle(request.raw, timeouts.bodyIdleMs, () =>
      request.log.info({ body_idle_ms: timeouts.bodyIdleMs }, "request body stalled: closing"),
    );
  });
  const record = instrumentHttp(app, options.metrics);
  if (options.fastPath) {
    const core = {
      requestId,
      record,
      log: requestLogWriter(options.logger),
      corsHeaders: CORS_HEADERS,
    };
    serveFastPathFirst(app, options.fastPath, core, options.trustProxy ?? false);
  }

  // JSON for any content type (many Matrix clients send none); an empty body
  // is "no body" (Synapse's POST admin endpoints ignore bodies).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (request, body, done) => {
    const text = body as string;
    if (text.trim() === "") return done(null, undefined);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return done(new MatrixError("M_NOT_JSON", "Content not JSON."), undefined);
    }
    // Every JSON body, whatever route reads it, so nothing downstream can
    // recurse into one deep enough to overflow the stack (json-depth.ts).
    if (exceedsJsonDepth(value, MAX_BODY_DEPTH)) {
      const message = `JSON body nested more than ${MAX_BODY_DEPTH} levels deep`;
      return done(new MatrixError("M_BAD_JSON", message), undefined);
    }
    // Refused for every route, so SQLite and PostgreSQL (which cannot store
    // NUL) answer alike; the app-service transactions opt out (null-bytes.ts).
    const allowsNul = request.routeOptions.config.nullBytesInBody === "allowed";
    if (!allowsNul && jsonHasNullByte(text, value)) return done(nullByteBodyError(), undefined);
    done(null, value);
  });

  app.setNotFoundHandler(async (request, reply) => {
    addNosniffIfMedia(reply, request.url);
    if (request.method === "OPTIONS") return reply.code(200).send({});
    const path = request.url.split("?", 1)[0] ?? "/";
    const status = methods.pathIsKnown(path) ? 405 : 404;
    sendError(reply, new MatrixError("M_UNRECOGNIZED", "Unrecognized request", status), linger);
  });

  app.setErrorHandler(async (error: FastifyError | MatrixError, request, reply) => {
    const matrixError = toMatrixError(error);
    if (matrixError.status >= 500) {
      request.log.error({ err: error }, "request failed");
    } else if (error instanceof BlobNotFoundError) {
      request.log.warn({ key: error.key }, "media row without bytes in the store");
    }
    sendError(reply, matrixError, linger);
  });

  return app;
}

/** Request ids as Fastify's default makes them: `req-` and a counter in base 36. */
function requestIds(): () => string {
  let next = 0;
  return () => {
    next = (next + 1) & 0x7fffffff;
    return `req-${next.toString(36)}`;
  };
}

/**
 * Puts the fast path's handler before Fastify's on the server's `request`
 * event. Requests go straight to Fastify while the server closes (its 503),
 * and when the client address comes from X-Forwarded-For (`trustProxy` and
 * the header present): the log line's address is Fastify's to work out.
 */
function serveFastPathFirst(
  app: FastifyInstance,
  slot: FastPathSlot,
  lent: Omit<HttpCore, "pass">,
  trustProxy: boolean,
): void {
  const server = app.server;
  const [fastify, ...others] = server.listeners("request") as ((
    req: IncomingMessage,
    res: ServerResponse,
  ) => void)[];
  if (!fastify || others.length > 0) throw new Error("expected Fastify's one request listener");
  let closing = false;
  app.addHook("preClose", (done) => {
    closing = true;
    done();
  });
  server.removeListener("request", fastify);
  const core: HttpCore = { ...lent, pass: fastify };
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const handler = slot.handler;
    const forwarded = trustProxy && req.headers["x-forwarded-for"] !== undefined;
    if (handler === undefined || closing || forwarded || !handler(req, res, core)) {
      fastify(req, res);
    }
  });
}

/**
 * The one log line of a request, at `info` once it is answered: the request
 * id (bound to `request.log`), method, URL with secret query values masked
 * (the logger's `req` serializer), client address, status and response time.
 */
function logRequest(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  request.log.info(
    { req: request, res: { statusCode: reply.statusCode }, responseTime: reply.elapsedTime },
    "request completed",
  );
  done();
}

/** Maps anything thrown while handling a request to the Matrix error the client sees. */
export function toMatrixError(error: unknown): MatrixError {
  if (error instanceof MatrixError) return error;
  // A row whose bytes are gone, on any route (download, thumbnail,
  // federation): the media is not there (STYLE.md 16).
  if (error instanceof BlobNotFoundError) return new MatrixError("M_NOT_FOUND", "Not found");
  if (isNullByteStorageError(error)) return nullByteError();
  const fastifyError = error as Partial<FastifyError>;
  switch (fastifyError.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new MatrixError("M_TOO_LARGE", "Request body too large", 413);
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new MatrixError("M_UNKNOWN", "Content-Length value is invalid", 400);
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return new MatrixError("M_UNKNOWN", fastifyError.message ?? "Bad request", status);
  }
  return new MatrixError("M_UNKNOWN", "Internal server error", 500);
}

function sendError(reply: FastifyReply, error: MatrixError, linger: LingerLimits): void {
  // A request body we stopped reading (a rejected upload) cannot be skipped
  // on a kept-alive connection: close it after this answer — lingering, so
  // the client reads the answer instead of a reset (lingering-close.ts).
  if (!reply.request.raw.complete) {
    reply.header("connection", "close");
    lingerBeforeClose(reply.request.raw, linger);
  }
  // 429s say when to retry in the header too (Matrix spec v1.10, "Rate
  // limiting"): whole seconds, rounded up.
  const retryAfterMs = error.extra.retry_after_ms;
  if (error.status === 429 && typeof retryAfterMs === "number") {
    reply.header("retry-after", String(Math.max(0, Math.ceil(retryAfterMs / 1000))));
  }
  reply.code(error.status).headers(CORS_HEADERS).type("application/json").send(error.toJSON());
}
