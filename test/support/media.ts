/** Helpers for media tests: uploads over HTTP and keys in the store. */
import { request as httpRequest } from "node:http";
import type { BlobStore } from "../../src/storage/blob-store.js";
import type { HttpClient } from "./http-client.js";
import type { TestServer } from "./test-server.js";

/** Uploads bytes with POST /_matrix/media/v3/upload; returns the media id. */
export async function uploadBytes(
  http: HttpClient,
  bytes: Uint8Array | string,
  options: { contentType?: string; filename?: string; version?: string } = {},
): Promise<string> {
  const query =
    options.filename === undefined ? "" : `?filename=${encodeURIComponent(options.filename)}`;
  const headers: Record<string, string> = {};
  if (options.contentType) headers["content-type"] = options.contentType;
  const res = await http.request(
    "POST",
    `/_matrix/media/${options.version ?? "v3"}/upload${query}`,
    {
      rawBody: typeof bytes === "string" ? Buffer.from(bytes) : bytes,
      headers,
    },
  );
  if (res.status !== 200) throw new Error(`upload failed: ${res.status} ${res.text}`);
  return mediaIdOf(res.body.content_uri);
}

export function mediaIdOf(contentUri: string): string {
  const match = /^mxc:\/\/[^/]+\/([A-Za-z0-9_-]+)$/.exec(contentUri);
  if (!match) throw new Error(`not an mxc URI: ${contentUri}`);
  return match[1]!;
}

/** Every key in the store (to prove nothing was left behind). */
export async function allKeys(store: BlobStore): Promise<string[]> {
  const keys: string[] = [];
  for await (const key of store.list("")) keys.push(key);
  return keys.sort();
}

/** Downloads raw bytes (fetch, no JSON parsing). */
export async function download(
  baseUrl: string,
  path: string,
  options: { token?: string; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  const response = await fetch(new URL(path, baseUrl), { headers });
  const bytes = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, bytes };
}

/** GET with the path sent exactly as given (fetch would normalise `..` away). */
export function rawGet(
  baseUrl: string,
  path: string,
  token?: string,
): Promise<{ status: number; body: any }> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => {
          text += d;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text || "null") }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** `quarantined_by` of a local media row (null when not quarantined); the row must exist. */
export async function quarantinedBy(server: TestServer, mediaId: string): Promise<string | null> {
  const row = await server.app.database.db
    .selectFrom("local_media_repository")
    .select("quarantined_by")
    .where("media_id", "=", mediaId)
    .executeTakeFirstOrThrow();
  return row.quarantined_by;
}
