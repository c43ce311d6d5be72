/**
 * The one place that picks a blob-store backend from `media_store` in the
 * config; everything above it sees only a `BlobStore`.
 */
import type { MediaStoreConfig } from "../config/config-schema.js";
import type { BlobStore } from "./blob-store.js";
import { FilesystemBlobStore } from "./filesystem/filesystem-blob-store.js";
import { MemoryBlobStore } from "./memory/memory-blob-store.js";
import { LazyS3BlobStore } from "./s3/lazy-s3-blob-store.js";

/**
 * Builds the configured blob store. Cheap: no I/O happens, and no backend
 * library is loaded, until it is used.
 */
export function createBlobStore(config: MediaStoreConfig): BlobStore {
  switch (config.engine) {
    case "filesystem":
      return new FilesystemBlobStore(config.path);
    case "memory":
      return new MemoryBlobStore();
    case "s3":
      // The AWS SDK loads on the store's first operation (lazy-s3-blob-store.ts).
      return new LazyS3BlobStore(config);
    default: {
      const unknown: never = config;
      throw new Error(`unknown media store engine ${JSON.stringify(unknown)}`);
    }
  }
}
