/**
 * A throwaway S3 for tests: s3rver (npm) in this process, on a free loopback
 * port, storing into a temp dir, with one bucket. Tests start and stop it
 * themselves; nothing outside the process is needed.
 *
 * s3rver 3.7 does not implement ListMultipartUploads or AbortMultipartUpload
 * (it answers 501 / 405), so tests check multipart clean-up by recording the
 * commands the client sends (see `recordCommands`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import type { ConfigInput } from "../../src/config/config-schema.js";

/** The part of s3rver's API used here (the package ships no types). */
interface S3rverServer {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
  httpServer?: Server;
}

type S3rverConstructor = new (options: {
  port: number;
  address: string;
  silent: boolean;
  directory: string;
  configureBuckets: { name: string }[];
}) => S3rverServer;

// s3rver is CommonJS without type declarations; require keeps tsc out of it.
// Loaded on the first start, not at import: every test file imports this
// module through test-server.ts, and loading s3rver costs ~0.6 s of CPU,
// which the filesystem pass would pay ~150 times for nothing. The AWS SDK
// (~0.5 s; mxcd itself loads it only for an S3 store) likewise.
let s3rverConstructor: S3rverConstructor | undefined;
function loadS3rver(): S3rverConstructor {
  s3rverConstructor ??= createRequire(import.meta.url)("s3rver") as S3rverConstructor;
  return s3rverConstructor;
}

/** s3rver checks signatures against this fixed key pair. */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export interface TestS3 {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly bucket: string;
  /** `media_store` for this instance; `extra` overrides or adds keys. */
  storeConfig(extra?: Record<string, unknown>): NonNullable<ConfigInput["media_store"]>;
  /** A new SDK client for this instance (the caller destroys it). */
  client(): S3Client;
  stop(): Promise<void>;
}

/** Starts s3rver with the bucket `mxcd-test` (or `bucket`). */
export async function startS3rver(bucket = "mxcd-test"): Promise<TestS3> {
  const directory = mkdtempSync(join(tmpdir(), "mxcd-s3rver-"));
  const S3rver = loadS3rver();
  const { createS3Client } = await import("../../src/storage/s3/s3-object-client.js");
  const server = new S3rver({
    port: 0,
    address: "127.0.0.1",
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    storeConfig: (extra = {}) => ({
      engine: "s3",
      bucket,
      endpoint,
      force_path_style: true,
      access_key_id: S3RVER_CREDENTIALS.accessKeyId,
      secret_access_key: S3RVER_CREDENTIALS.secretAccessKey,
      ...extra,
    }),
    client: () =>
      createS3Client({
        engine: "s3",
        bucket,
        endpoint,
        region: "us-east-1",
        prefix: "",
        force_path_style: true,
        access_key_id: S3RVER_CREDENTIALS.accessKeyId,
        secret_access_key: S3RVER_CREDENTIALS.secretAccessKey,
        presigned_redirects: false,
        presigned_url_ttl: 300_000,
      }),
    async stop() {
      // Keep-alive sockets of SDK clients would hold close() open.
      server.httpServer?.closeAllConnections();
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** One command as the client sent it, and how it ended. */
export interface RecordedCommand {
  readonly name: string;
  readonly input: Record<string, unknown>;
  readonly output?: Record<string, unknown>;
  readonly error?: string;
}

/** Records every command `client` sends, after it settles, into the returned array. */
export function recordCommands(client: S3Client): RecordedCommand[] {
  const log: RecordedCommand[] = [];
  client.middlewareStack.add(
    (next: any, context: any) => async (args: any) => {
      const name = String(context.commandName).replace(/Command$/, "");
      const input = { ...args.input, Body: undefined };
      try {
        const result = await next(args);
        log.push({ name, input, output: { ...result.output, Body: undefined } });
        return result;
      } catch (error) {
        log.push({ name, input, error: (error as Error).name });
        throw error;
      }
    },
    { step: "initialize", name: "mxcdRecordCommands" },
  );
  return log;
}
