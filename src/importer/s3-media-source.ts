/**
 * Synapse media in a bucket written by synapse-s3-storage-provider, as a
 * MediaSource for `mxcd import synapse --copy` / `--verify`.
 *
 * Design notes:
 * - The provider stores a file under `prefix + path` (plain concatenation,
 *   no `/` added: `prefix: media/` gives `media/local_content/ab/cd/ef`,
 *   `prefix: media` gives `medialocal_content/...`), so any prefix is taken
 *   as it is, unlike mxcd's own S3 store which wants one ending in `/`.
 * - Settings use the provider's own names (`bucket`, `prefix`,
 *   `endpoint_url`, `region_name`, `access_key_id`, `secret_access_key`,
 *   `session_token`), so its `config:` block can be pasted into a file for
 *   `--s3-config`. Other provider keys (`storage_class`, `threadpool_size`,
 *   ...) only matter for writing and are ignored. SSE-C objects cannot be
 *   read without the key on every GET, which this source does not send: a
 *   config with `sse_customer_key` is refused rather than failing per file.
 * - Credentials never appear in `description` or any error we make.
 * - Path-style URLs are used whenever `endpoint_url` is set (MinIO, Garage,
 *   s3rver and most S3-compatible services need them); `force_path_style:
 *   false` turns that off.
 */
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { GetObjectCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { z } from "zod";
import { BlobNotFoundError } from "../storage/blob-store.js";
import { assertSafeKey } from "../storage/media-paths.js";
import type { ProbeResult } from "./media-file-probe.js";
import type { MediaSource } from "./media-source.js";

/** synapse-s3-storage-provider's `config:` block (the keys this source reads). */
const s3SourceSchema = z.object({
  bucket: z.string().regex(/^[A-Za-z0-9._-]{3,255}$/, "must be an S3 bucket name"),
  prefix: z.string().default(""),
  endpoint_url: z.url({ protocol: /^https?$/ }).optional(),
  region_name: z.string().min(1).default("us-east-1"),
  access_key_id: z.string().min(1).optional(),
  secret_access_key: z.string().min(1).optional(),
  session_token: z.string().min(1).optional(),
  force_path_style: z.boolean().optional(),
  sse_customer_key: z.unknown().optional(),
});

export type S3SourceConfig = z.output<typeof s3SourceSchema>;

/**
 * Reads `--s3-config FILE` (the provider's `config:` block, or a whole
 * `media_storage_providers` entry with one) and applies the flag overrides.
 * Errors name the key, never a value.
 */
export function loadS3SourceConfig(
  file: string | undefined,
  overrides: Record<string, string | undefined>,
): S3SourceConfig {
  let raw: Record<string, unknown> = {};
  if (file !== undefined) {
    let parsed: unknown;
    try {
      parsed = parseYaml(readFileSync(file, "utf8"));
    } catch (error) {
      // YAML errors quote the offending line, which may hold the secret key: name the line only.
      const line = error instanceof YAMLParseError ? ` (line ${error.linePos?.[0]?.line})` : "";
      const what = error instanceof YAMLParseError ? "not valid YAML" : "cannot be read";
      throw new Error(`--s3-config ${file}: ${what}${line}`);
    }
    const entry = (Array.isArray(parsed) ? parsed[0] : parsed) as Record<string, unknown> | null;
    raw = { ...((entry?.config as Record<string, unknown> | undefined) ?? entry ?? {}) };
  }
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) raw[key] = value;
  const result = s3SourceSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new Error(`S3 source settings: ${problems.join("; ")}`);
  }
  if (result.data.sse_customer_key !== undefined) {
    throw new Error("S3 source settings: sse_customer_key (SSE-C) is not supported by the import");
  }
  if ((result.data.access_key_id === undefined) !== (result.data.secret_access_key === undefined)) {
    throw new Error("S3 source settings: set both access_key_id and secret_access_key, or neither");
  }
  return result.data;
}

/** The slice of an S3 client this source uses (a fake can stand in). */
export interface S3ReadClient {
  send(command: GetObjectCommand | HeadObjectCommand): Promise<{
    Body?: unknown;
    ContentLength?: number;
  }>;
  destroy(): void;
}

/** The provider's bucket as a MediaSource. */
export class S3MediaSource implements MediaSource {
  readonly description: string;
  readonly #client: S3ReadClient;
  readonly #bucket: string;
  readonly #prefix: string;

  constructor(config: S3SourceConfig, client: S3ReadClient = createClient(config)) {
    this.#client = client;
    this.#bucket = config.bucket;
    this.#prefix = config.prefix;
    const where = config.endpoint_url ? ` at ${new URL(config.endpoint_url).host}` : "";
    this.description = `s3://${config.bucket}/${config.prefix}${where}`;
  }

  /**
   * HeadObject. 404 is "missing" and 403 "unreadable" (counted against the
   * file); any other failure (network, 5xx, no such bucket) rejects, which
   * stops the import to be resumed later, instead of marking every file.
   */
  async probe(key: string): Promise<ProbeResult> {
    try {
      const head = await this.#client.send(
        new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#objectKey(key) }),
      );
      return { ok: true, size: head.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(error)) return { ok: false, problem: "missing" };
      if (statusOf(error) === 403) return { ok: false, problem: "unreadable" };
      throw error;
    }
  }

  async read(key: string): Promise<Readable> {
    let output: { Body?: unknown };
    try {
      output = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: this.#objectKey(key) }),
      );
    } catch (error) {
      throw isNotFound(error) ? new BlobNotFoundError(key) : error;
    }
    if (!(output.Body instanceof Readable)) throw new Error(`S3 GetObject ${key}: no body stream`);
    return output.Body;
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }

  #objectKey(key: string): string {
    return this.#prefix + assertSafeKey(key);
  }
}

function createClient(config: S3SourceConfig): S3ReadClient {
  const { access_key_id: accessKeyId, secret_access_key: secretAccessKey } = config;
  return new S3Client({
    region: config.region_name,
    endpoint: config.endpoint_url,
    forcePathStyle: config.force_path_style ?? config.endpoint_url !== undefined,
    // Absent keys: the AWS default chain (env, shared files, instance role), as boto3 does.
    credentials:
      accessKeyId !== undefined && secretAccessKey !== undefined
        ? { accessKeyId, secretAccessKey, sessionToken: config.session_token }
        : undefined,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  }) as unknown as S3ReadClient;
}

/** NoSuchKey from GET, a bare 404 NotFound from HEAD (not NoSuchBucket: that stops the import). */
function isNotFound(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  if (name === "NoSuchBucket") return false;
  return name === "NoSuchKey" || name === "NotFound" || statusOf(error) === 404;
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}
