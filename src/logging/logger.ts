/**
 * The server's structured JSON logger (pino). Access tokens never reach the
 * log: the Authorization header is redacted and `access_token` query values
 * are masked in logged URLs.
 */
import { type Logger, pino } from "pino";

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: ["req.headers.authorization"], censor: "<redacted>" },
      serializers: {
        req: (req: { method: string; url: string; ip?: string; id?: string }) => ({
          id: req.id,
          method: req.method,
          url: maskAccessToken(req.url),
          remoteAddress: req.ip,
        }),
      },
    },
    destination,
  );
}

/** Replaces the value of any `access_token` query parameter with `<redacted>`. */
export function maskAccessToken(url: string): string {
  return url.replace(/([?&]access_token=)[^&#]*/g, "$1<redacted>");
}
