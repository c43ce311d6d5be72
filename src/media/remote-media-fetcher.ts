/**
 * The seam between the remote media cache and federation: something that
 * fetches one remote media item's bytes (federation-media-fetcher.ts does it
 * over the v1 federation endpoint with the legacy fallback).
 */
import type { Readable } from "node:stream";

export interface FetchedMedia {
  readonly contentType: string | undefined;
  /** From the remote's Content-Disposition (`filename*` first, then `filename`). */
  readonly uploadName: string | null;
  readonly bytes: Readable;
  /**
   * Bytes the remote declared (Content-Length) before sending them, when it
   * did: charged to the download rate limit before the body is read. For a
   * multipart answer, the whole body's length (the media plus its framing).
   */
  readonly contentLength?: number;
}

/** The remote server says the media does not exist. */
export class RemoteNotFoundError extends Error {
  constructor(message = "remote media not found") {
    super(message);
    this.name = "RemoteNotFoundError";
  }
}

/** The remote media is larger than we accept. */
export class RemoteTooLargeError extends Error {
  constructor(message = "remote media too large") {
    super(message);
    this.name = "RemoteTooLargeError";
  }
}

export interface RemoteMediaFetcher {
  /**
   * Starts fetching; resolves when the bytes start to flow. Rejects with
   * RemoteNotFoundError, RemoteTooLargeError or any other error (a failure).
   */
  fetch(origin: string, mediaId: string, signal: AbortSignal): Promise<FetchedMedia>;
}
