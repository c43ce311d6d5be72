/**
 * The slice of an S3 client that S3BlobStore uses (STYLE point 4), and the one
 * place where the real `S3Client` is built from `media_store` config.
 *
 * The store sees only `S3ObjectClient`: four object commands, a multipart
 * upload, a presigner and `destroy`. A small in-memory fake can implement it;
 * production wraps `@aws-sdk/client-s3` with `s3ObjectClientOf`.
 */
import type { Readable } from "node:stream";
import {
  type DeleteObjectCommand,
  type DeleteObjectCommandOutput,
  GetObjectCommand,
  type GetObjectCommandInput,
  type GetObjectCommandOutput,
  type HeadObjectCommand,
  type HeadObjectCommandOutput,
  type ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { MediaStoreConfig } from "../../config/config-schema.js";

/** `media_store` when its engine is `s3`. */
export type S3MediaStoreConfig = Extract<MediaStoreConfig, { engine: "s3" }>;

/** What to upload: the object's bucket and full key, and a byte stream. */
export interface S3UploadInput {
  readonly Bucket: string;
  readonly Key: string;
  readonly Body: Readable;
}

/** Memory bounds of one upload: about (queueSize + 1) × partSize bytes are buffered. */
export interface S3UploadLimits {
  readonly partSize: number;
  readonly queueSize: number;
}

/**
 * A running upload (lib-storage's `Upload`): `done()` settles once the
 * object is committed, or once a failed multipart upload has been aborted.
 */
export interface S3Upload {
  done(): Promise<unknown>;
}

/** The S3 operations S3BlobStore needs; nothing else of the client leaks into it. */
export interface S3ObjectClient {
  send(command: GetObjectCommand): Promise<GetObjectCommandOutput>;
  send(command: HeadObjectCommand): Promise<HeadObjectCommandOutput>;
  send(command: DeleteObjectCommand): Promise<DeleteObjectCommandOutput>;
  send(command: ListObjectsV2Command): Promise<ListObjectsV2CommandOutput>;
  /** Starts uploading `input.Body` (one PUT when it fits a part, else multipart). */
  upload(input: S3UploadInput, limits: S3UploadLimits): S3Upload;
  /** A GET URL for the object that needs no other credentials, valid `expiresIn` seconds. */
  presignGetObject(input: GetObjectCommandInput, expiresIn: number): Promise<string>;
  /** Closes the client's sockets. */
  destroy(): void;
}

/**
 * The configured SDK client. Checksums are computed and validated only where
 * S3 requires them: the SDK's newer default (CRC32 on every upload) is refused
 * by several S3-compatible stores, and TLS already protects the bytes in flight.
 */
export function createS3Client(config: S3MediaStoreConfig): S3Client {
  const { access_key_id: accessKeyId, secret_access_key: secretAccessKey } = config;
  return new S3Client({
    region: config.region,
    endpoint: config.endpoint,
    forcePathStyle: config.force_path_style,
    // Absent keys: the AWS default chain (env, shared files, instance role).
    credentials:
      accessKeyId !== undefined && secretAccessKey !== undefined
        ? { accessKeyId, secretAccessKey }
        : undefined,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

/** Adapts a real S3Client to the slice the store uses. */
export function s3ObjectClientOf(client: S3Client): S3ObjectClient {
  return {
    send: client.send.bind(client),
    upload: (input, limits) =>
      new Upload({
        client,
        params: input,
        partSize: limits.partSize,
        queueSize: limits.queueSize,
        // Upload aborts the multipart upload itself when a part or the body fails.
        leavePartsOnError: false,
      }),
    presignGetObject: (input, expiresIn) =>
      getSignedUrl(client, new GetObjectCommand(input), { expiresIn }),
    destroy: () => client.destroy(),
  };
}
