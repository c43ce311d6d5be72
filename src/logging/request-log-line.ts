/**
 * The "request completed" line of a request answered by the serving fast
 * path (http/fast-path.ts), written without pino's per-call machinery.
 *
 * Why: pino's `redact` (logger.ts) installs a censoring stringifier on every
 * key of every line (its paths include `*.access_token`), which cost 5–6 % of
 * a cached download (bench/README.md, "Where the hot path stands"). This line
 * has fixed keys — `reqId`, `req` {id, method, url, remoteAddress}, `res`
 * {statusCode}, `responseTime`, `msg` — none of which is a redacted key at
 * either level `redact` looks at, so `redact` never changes it; the one
 * secret it can carry, a token in the URL's query, is masked by
 * `maskUrlSecrets`, exactly as the logger's `req` serializer does. The line
 * is the one pino itself writes for Fastify's per-request child logger
 * (level, time, the logger's bindings, `reqId`, the fields, msg), byte for
 * byte; test/fast-path.test.ts compares the two.
 *
 * A logger this shortcut cannot reproduce (a mixin, a log formatter, a
 * stream-write hook, a stream that wants metadata, a nested key) gets the
 * line through `logger.info` with the same object instead.
 */
import { type Logger, pino } from "pino";
import { maskUrlSecrets } from "./mask-url-secrets.js";

/** What the line says about one request. */
export interface RequestLogFields {
  readonly id: string;
  readonly method: string;
  /** The raw URL; secret query values are masked here. */
  readonly url: string;
  /**
   * The caller read every query parameter of `url` and none is a secret:
   * no masking pass (the fast path's thumbnails have three parameters).
   */
  readonly urlHasNoSecrets?: boolean;
  readonly remoteAddress: string | undefined;
  readonly statusCode: number;
  /** Milliseconds, as Fastify's `reply.elapsedTime`. */
  readonly responseTime: number;
}

const MESSAGE = "request completed";
const {
  chindingsSym,
  endSym,
  formattersSym,
  hooksSym,
  lsCacheSym,
  messageKeySym,
  mixinSym,
  needsMetadataGsym,
  nestedKeySym,
  streamSym,
  timeSym,
} = pino.symbols;

type Internals = Record<symbol, unknown>;

/** Writes request lines for `logger` (info level; nothing when info is off). */
export type RequestLogWriter = (fields: RequestLogFields) => void;

export function requestLogWriter(logger: Logger): RequestLogWriter {
  const internals = logger as unknown as Internals;
  const formatters = internals[formattersSym] as { log?: unknown } | undefined;
  const hooks = internals[hooksSym] as { streamWrite?: unknown; logMethod?: unknown } | undefined;
  const stream = internals[streamSym] as ({ write(line: string): unknown } & Internals) | undefined;
  const plain =
    stream !== undefined &&
    typeof internals[timeSym] === "function" &&
    typeof internals[chindingsSym] === "string" &&
    internals[messageKeySym] === "msg" &&
    !internals[mixinSym] &&
    !internals[nestedKeySym] &&
    !formatters?.log &&
    !hooks?.streamWrite &&
    !hooks?.logMethod &&
    stream[needsMetadataGsym] !== true;
  if (!plain) {
    return (fields) => {
      if (!logger.isLevelEnabled("info")) return;
      logger.child({ reqId: fields.id }).info(
        {
          req: requestOf(fields),
          res: { statusCode: fields.statusCode },
          responseTime: fields.responseTime,
        },
        MESSAGE,
      );
    };
  }
  const info = logger.levels.values.info!;
  return (fields) => {
    if (!logger.isLevelEnabled("info")) return;
    // Read each time: level and bindings may change over the logger's life.
    const start = (internals[lsCacheSym] as Record<number, string>)[info]!;
    const time = (internals[timeSym] as () => string)();
    const id = JSON.stringify(fields.id);
    const remote =
      fields.remoteAddress === undefined
        ? ""
        : `,"remoteAddress":${JSON.stringify(fields.remoteAddress)}`;
    const url = JSON.stringify(fields.urlHasNoSecrets ? fields.url : maskUrlSecrets(fields.url));
    const responseTime = Number.isFinite(fields.responseTime) ? fields.responseTime : null;
    stream.write(
      `${start}${time}${internals[chindingsSym] as string},"reqId":${id}` +
        `,"req":{"id":${id},"method":${JSON.stringify(fields.method)},"url":${url}${remote}}` +
        `,"res":{"statusCode":${fields.statusCode}},"responseTime":${responseTime}` +
        `,"msg":"${MESSAGE}"${internals[endSym] as string}`,
    );
  };
}

function requestOf(fields: RequestLogFields) {
  return { id: fields.id, method: fields.method, url: fields.url, ip: fields.remoteAddress };
}
