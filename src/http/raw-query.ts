/**
 * Reads a query parameter from the raw URL with strict UTF-8 decoding:
 * Fastify's parser would turn invalid percent-encoded UTF-8 into U+FFFD,
 * where Synapse (for upload `filename`) answers 400.
 */
import { MatrixError } from "../domain/matrix-error.js";

/** The first value of `name` in `url`'s query, decoded; undefined when absent. */
export function strictQueryParam(url: string, name: string): string | undefined {
  const query = url.split("?", 2)[1];
  if (query === undefined) return undefined;
  for (const pair of query.split("&")) {
    const eq = pair.indexOf("=");
    const key = eq === -1 ? pair : pair.slice(0, eq);
    if (key !== name) continue;
    const raw = eq === -1 ? "" : pair.slice(eq + 1);
    try {
      return decodeURIComponent(raw.replace(/\+/g, " "));
    } catch {
      throw new MatrixError("M_INVALID_PARAM", `Query parameter ${name} must be valid UTF-8`);
    }
  }
  return undefined;
}
