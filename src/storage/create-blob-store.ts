/**
 * The one place that picks a blob-store backend from `media_store` in the
 * config; everything above it sees only a `BlobStore`.
 */
import type { MediaStoreConfig } from "../config/config-schema.js";
import type { BlobStore } from "./blob-store.js";
import { FilesystemBlobStore } from "./filesystem/filesystem-blob-store.js";
import { MemoryBlobStore } from "./memory/memory-blob-store.js";
import { S3BlobStore } from "./s3/s3-blob-store.js";
import { createS3Client, s3ObjectClientOf } from "./s3/s3-object-client.js";

/** Builds the configured blob store. Cheap: no I/O happens until it is used. */
export function createBlobStore(config: MediaStoreConfig): BlobStore {
  switch (config.engine) {
    case "filesystem":
      return new FilesystemBlobStore(config.path);
    case "memory":
      return new MemoryBlobStore();
    case "s3":
      return new S3BlobStore(s3ObjectClientOf(createS3Client(config)), {
        bucket: config.bucket,
        prefix: config.prefix,
      });
    default: {
      const unknown: never = config;
      throw new Error(`unknown media store engine ${JSON.stringify(unknown)}`);
    }
  }
}
