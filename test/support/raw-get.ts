/**
 * A GET over plain node:http with the path and header names sent exactly
 * as given, for tests that compare whole answers byte for byte.
 */
import { request as httpRequest, type OutgoingHttpHeaders } from "node:http";

export interface RawAnswer {
  status: number;
  /** Every header in the order sent, name lower-cased, except Date. */
  headers: [string, string][];
  body: Buffer;
}

/** GET `path` (not normalised) with `headers` (arrays: one line per value); the whole answer. */
export function rawGet(
  baseUrl: string,
  path: string,
  headers: OutgoingHttpHeaders = {},
): Promise<RawAnswer> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, path, headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (d: Buffer) => chunks.push(d));
        res.on("end", () => {
          const pairs: [string, string][] = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            const name = res.rawHeaders[i]!.toLowerCase();
            if (name !== "date") pairs.push([name, res.rawHeaders[i + 1]!]);
          }
          resolve({ status: res.statusCode ?? 0, headers: pairs, body: Buffer.concat(chunks) });
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}
