/**
 * The HTTP core every route shares: one error funnel that turns anything
 * thrown into a Matrix error body, 404/405 M_UNRECOGNIZED for unknown paths
 * and wrong methods, JSON bodies (400 M_NOT_JSON when malformed), CORS for
 * browser clients, request logging and metrics.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
} from "fastify";
import type { Registry } from "prom-client";
import { MatrixError } from "../domain/matrix-error.js";
import type { Logger } from "../logging/logger.js";
import { instrumentHttp } from "./http-metrics.js";
import { MethodIndex } from "./method-index.js";

export interface HttpServerOptions {
  logger: Logger;
  metrics: Registry;
  /** Largest JSON body accepted, in bytes. */
  jsonBodyLimit?: number;
  /** Take the client address from X-Forwarded-For (`listen.x_forwarded`). */
  trustProxy?: boolean;
}

/** CORS headers Matrix web clients need (client-server API, "Web Browser Clients"). */
export const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
  "access-control-allow-headers": "X-Requested-With, Content-Type, Authorization, Date",
  "access-control-expose-headers": "ETag, Content-Disposition, Content-Length, Content-Range",
} as const;

export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const methods = new MethodIndex();
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    bodyLimit: options.jsonBodyLimit ?? 1024 * 1024,
    // Ids are validated by our own functions, which give a proper 400;
    // the router's own limit would answer a bare 404 instead.
    routerOptions: { maxParamLength: 10_000 },
    return503OnClosing: true,
    trustProxy: options.trustProxy ?? false,
    forceCloseConnections: "idle",
    frameworkErrors: (error, _request, reply) => {
      sendError(reply, new MatrixError("M_INVALID_PARAM", `Invalid request: ${error.message}`));
    },
  });

  app.addHook("onRoute", (route) => methods.add(route.method, route.url));
  app.addHook("onRequest", async (_request, reply) => {
    reply.headers(CORS_HEADERS);
  });
  instrumentHttp(app, options.metrics);

  // JSON for any content type (many Matrix clients send none); an empty body
  // is "no body" (Synapse's POST admin endpoints ignore bodies).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_request, body, done) => {
    const text = body as string;
    if (text.trim() === "") return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new MatrixError("M_NOT_JSON", "Content not JSON."), undefined);
    }
  });

  app.setNotFoundHandler(async (request, reply) => {
    if (request.method === "OPTIONS") return reply.code(200).send({});
    const path = request.url.split("?", 1)[0] ?? "/";
    const status = methods.pathIsKnown(path) ? 405 : 404;
    sendError(reply, new MatrixError("M_UNRECOGNIZED", "Unrecognized request", status));
  });

  app.setErrorHandler(async (error: FastifyError | MatrixError, request, reply) => {
    const matrixError = toMatrixError(error);
    if (matrixError.status >= 500) {
      request.log.error({ err: error }, "request failed");
    }
    sendError(reply, matrixError);
  });

  return app;
}

/** Maps anything thrown while handling a request to the Matrix error the client sees. */
export function toMatrixError(error: unknown): MatrixError {
  if (error instanceof MatrixError) return error;
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

function sendError(reply: FastifyReply, error: MatrixError): void {
  // A request body we stopped reading (a rejected upload) cannot be skipped
  // on a kept-alive connection: close it after this answer.
  if (!reply.request.raw.complete) reply.header("connection", "close");
  // 429s say when to retry in the header too (Matrix spec v1.10, "Rate
  // limiting"): whole seconds, rounded up.
  const retryAfterMs = error.extra.retry_after_ms;
  if (error.status === 429 && typeof retryAfterMs === "number") {
    reply.header("retry-after", String(Math.max(0, Math.ceil(retryAfterMs / 1000))));
  }
  reply.code(error.status).headers(CORS_HEADERS).type("application/json").send(error.toJSON());
}
