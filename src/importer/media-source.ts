/**
 * Where `mxcd import synapse --copy` and `--verify` read Synapse's media
 * bytes: a seam with two backends, Synapse's `media_store_path` on disk
 * (here) and a bucket written by synapse-s3-storage-provider
 * (s3-media-source.ts). Keys are media_store-relative paths in Synapse's
 * layout (media-paths.ts), checked by `assertSafeKey` before any use.
 */
import type { Readable } from "node:stream";
import { FilesystemBlobStore } from "../storage/filesystem/filesystem-blob-store.js";
import { MediaFileProbe, type ProbeResult } from "./media-file-probe.js";

/** A read-only source of Synapse media files. */
export interface MediaSource {
  /** Names the source for the report and the import's identity (no secrets). */
  readonly description: string;
  /** Whether the file is there and its size, without reading its bytes. */
  probe(key: string): Promise<ProbeResult>;
  /** Streams the file; rejects (BlobNotFoundError when absent) before any byte. */
  read(key: string): Promise<Readable>;
  /** Releases connections; idempotent. */
  close?(): Promise<void>;
}

/** Synapse's `media_store_path` on this machine. */
export class FilesystemMediaSource implements MediaSource {
  readonly description: string;
  readonly #probe: MediaFileProbe;
  readonly #files: FilesystemBlobStore;

  constructor(root: string) {
    this.#probe = new MediaFileProbe(root);
    this.#files = new FilesystemBlobStore(root);
    this.description = this.#probe.root;
  }

  probe(key: string): Promise<ProbeResult> {
    return this.#probe.probe(key);
  }

  read(key: string): Promise<Readable> {
    return this.#files.read(key);
  }
}
