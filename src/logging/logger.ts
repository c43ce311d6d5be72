/**
 * The server's structured JSON logger (pino). Secrets never reach the log:
 *
 * - request URLs are logged with the values of secret query parameters
 *   masked ({@link maskUrlSecrets}); the query is parsed as the HTTP layer
 *   parses it, so every spelling the server accepts as `access_token`
 *   (`access%5Ftoken`, `%61ccess_token`, a repeated parameter) is masked;
 * - request headers are not logged at all, and an `Authorization` header,
 *   or a secret body field (`password`, `mac`, `hs_token`, ...), logged by
 *   mistake as part of an object is censored by pino's `redact`.
 */
import { type Logger, pino } from "pino";
import { maskUrlSecrets } from "./mask-url-secrets.js";

export type { Logger };

/** Object keys whose values are secrets, wherever they appear (two levels deep). */
const SECRET_KEYS = [
  "authorization",
  "access_token",
  "refresh_token",
  "hs_token",
  "as_token",
  "password",
  "new_password",
  "mac",
  "registration_shared_secret",
  "secret_access_key",
];

const REDACT_PATHS = [
  ...SECRET_KEYS.flatMap((key) => [key, `*.${key}`]),
  "*.headers.authorization",
  "*.headers.cookie",
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: "<redacted>" },
      serializers: {
        req: (req: { method: string; url: string; ip?: string; id?: string }) => ({
          id: req.id,
          method: req.method,
          url: maskUrlSecrets(req.url),
          remoteAddress: req.ip,
        }),
      },
    },
    destination,
  );
}
