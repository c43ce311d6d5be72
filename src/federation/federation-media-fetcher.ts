/**
 * Fetches remote media over federation (matrix-media-spec.md §4.1, §1.4):
 * the authenticated `GET /_matrix/federation/v1/media/download/{mediaId}`
 * first (a two-part multipart body; a `Location` part is followed, unsigned,
 * through the same address-checked client), then — when the remote does not
 * know that endpoint — the legacy unauthenticated
 * `GET /_matrix/media/v3/download/{origin}/{mediaId}?allow_remote=false`.
 *
 * "Does not know the endpoint" is a 404/405 with `M_UNRECOGNIZED` or a body
 * that is not JSON, or a 400 that is not JSON (Complement's fake server).
 * A remote 404 otherwise means the media does not exist.
 */
import type { Readable } from "node:stream";
import {
  type FetchedMedia,
  type RemoteMediaFetcher,
  RemoteNotFoundError,
  RemoteTooLargeError,
} from "../media/remote-media-fetcher.js";
import { ResponseTooLargeError } from "../net/outbound-errors.js";
import type { OutboundHttp, OutboundResponse } from "../net/outbound-http.js";
import { filenameFromDisposition } from "./content-disposition-filename.js";
import type { FederationClient } from "./federation-client.js";
import { boundaryOf, parseMultipartMedia } from "./multipart.js";

const DOWNLOAD_TIMEOUT_MS = 20_000;
/** Room for the multipart framing around the media bytes. */
const MULTIPART_OVERHEAD = 64 * 1024;
const ERROR_BODY_BYTES = 64 * 1024;

export class FederationMediaFetcher implements RemoteMediaFetcher {
  constructor(
    private readonly federation: FederationClient,
    private readonly outbound: OutboundHttp,
    private readonly maxSize: number,
  ) {}

  async fetch(origin: string, mediaId: string, signal: AbortSignal): Promise<FetchedMedia> {
    try {
      return await this.#fetch(origin, mediaId, signal);
    } catch (error) {
      throw error instanceof ResponseTooLargeError ? new RemoteTooLargeError() : error;
    }
  }

  async #fetch(origin: string, mediaId: string, signal: AbortSignal): Promise<FetchedMedia> {
    const id = encodeURIComponent(mediaId);
    const response = await this.federation.get(
      origin,
      `/_matrix/federation/v1/media/download/${id}?timeout_ms=${DOWNLOAD_TIMEOUT_MS}`,
      { maxBytes: this.maxSize + MULTIPART_OVERHEAD, signal },
    );
    if (response.status === 200) return this.#fromMultipart(response, signal);
    const body = await readSmall(response.body);
    if (!unknownEndpoint(response.status, body)) throw statusError(response.status, body);

    const legacy = await this.federation.get(
      origin,
      `/_matrix/media/v3/download/${encodeURIComponent(origin)}/${id}?allow_remote=false&timeout_ms=${DOWNLOAD_TIMEOUT_MS}`,
      { maxBytes: this.maxSize, signal, signed: false },
    );
    if (legacy.status !== 200) throw statusError(legacy.status, await readSmall(legacy.body));
    return fromHeaders(legacy);
  }

  async #fromMultipart(response: OutboundResponse, signal: AbortSignal): Promise<FetchedMedia> {
    const boundary = boundaryOf(header(response, "content-type"));
    if (!boundary) {
      response.body.destroy();
      throw new Error("federation media response is not multipart/mixed");
    }
    const part = await parseMultipartMedia(response.body, boundary);
    if (part.kind === "bytes") {
      const contentLength = declaredLength(response);
      return {
        contentType: part.contentType,
        uploadName: filenameFromDisposition(part.contentDisposition),
        bytes: part.bytes,
        ...(contentLength !== undefined && { contentLength }),
      };
    }
    // A Location part: fetch that URL (not cached: it may expire).
    const redirected = await this.outbound.request({
      url: part.location,
      maxBytes: this.maxSize,
      signal,
    });
    if (redirected.status !== 200) {
      throw statusError(redirected.status, await readSmall(redirected.body));
    }
    return fromHeaders(redirected);
  }
}

function header(response: OutboundResponse, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function fromHeaders(response: OutboundResponse): FetchedMedia {
  const contentLength = declaredLength(response);
  return {
    contentType: header(response, "content-type"),
    uploadName: filenameFromDisposition(header(response, "content-disposition")),
    bytes: response.body,
    ...(contentLength !== undefined && { contentLength }),
  };
}

/** The response's Content-Length when it is a plain decimal number; else undefined. */
function declaredLength(response: OutboundResponse): number | undefined {
  const value = header(response, "content-length");
  if (value === undefined || !/^\d{1,15}$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

/** Reads (at most 64 KiB of) an error body and discards the rest. */
async function readSmall(body: Readable): Promise<string> {
  let text = "";
  try {
    for await (const chunk of body) {
      text += (chunk as Buffer).toString("utf8");
      if (text.length > ERROR_BODY_BYTES) {
        body.destroy();
        break;
      }
    }
  } catch {
    // An error body that fails half-way is as good as none.
  }
  return text;
}

function errcodeOf(text: string): string | undefined | null {
  try {
    const json = JSON.parse(text) as { errcode?: unknown };
    return typeof json.errcode === "string" ? json.errcode : undefined;
  } catch {
    return null; // not JSON
  }
}

function unknownEndpoint(status: number, body: string): boolean {
  const errcode = errcodeOf(body);
  if (status === 404 || status === 405) return errcode === null || errcode === "M_UNRECOGNIZED";
  if (status === 400) return errcode === null || errcode === "M_UNRECOGNIZED";
  return false;
}

function statusError(status: number, body: string): Error {
  if (status === 404) return new RemoteNotFoundError();
  const errcode = errcodeOf(body);
  if (errcode === "M_TOO_LARGE") return new RemoteTooLargeError();
  return new Error(`remote answered ${status}${errcode ? ` ${errcode}` : ""}`);
}
