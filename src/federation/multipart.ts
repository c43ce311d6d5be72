/**
 * The two-part `multipart/mixed` body of the federation media endpoints
 * (Matrix spec, server-server "Content Repository"; byte layout as Synapse
 * writes it, matrix-media-spec.md §4.1):
 *
 *   CRLF --b CRLF Content-Type: application/json CRLF CRLF {}
 *   CRLF --b CRLF Content-Type: <type> CRLF Content-Disposition: <disp> CRLF CRLF <bytes>
 *   CRLF --b-- CRLF
 *
 * Writing streams the media bytes; reading (`parseMultipartMedia`) streams
 * the second part's bytes out as they arrive, so a remote file is never held
 * in memory. The reader accepts bodies with or without the leading CRLF and
 * with a `Location` part instead of bytes.
 */
import { randomBytes } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";

const CRLF = "\r\n";

/** A 32-hex-character boundary. */
export function newBoundary(): string {
  return randomBytes(16).toString("hex");
}

export interface MediaPart {
  readonly contentType: string;
  readonly contentDisposition: string;
  readonly bytes: Readable;
  /** Byte length of `bytes`, when known: gives the whole body's Content-Length. */
  readonly length?: number;
}

/** The head and tail around the media bytes, and the total length when known. */
export function multipartFrame(boundary: string, part: Omit<MediaPart, "bytes">) {
  const head = Buffer.from(
    `${CRLF}--${boundary}${CRLF}Content-Type: application/json${CRLF}${CRLF}{}` +
      `${CRLF}--${boundary}${CRLF}Content-Type: ${part.contentType}${CRLF}` +
      `Content-Disposition: ${part.contentDisposition}${CRLF}${CRLF}`,
  );
  const tail = Buffer.from(`${CRLF}--${boundary}--${CRLF}`);
  const length = part.length === undefined ? undefined : head.length + part.length + tail.length;
  return { head, tail, length };
}

/** Streams the whole multipart body: head, the media bytes, tail. */
export function multipartBody(
  boundary: string,
  part: MediaPart,
): { body: Readable; length?: number } {
  const { head, tail, length } = multipartFrame(boundary, part);
  const body = new PassThrough();
  body.write(head);
  part.bytes.on("error", (error) => body.destroy(error));
  part.bytes.on("end", () => body.end(tail));
  part.bytes.pipe(body, { end: false });
  return { body, length };
}

/** What the second part of a federation media response holds. */
export type ParsedMedia =
  | {
      kind: "bytes";
      contentType: string | undefined;
      contentDisposition: string | undefined;
      bytes: Readable;
    }
  | { kind: "location"; location: string };

/** Thrown when a multipart body does not have the expected shape. */
export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MultipartError";
  }
}

/** The boundary parameter of a `multipart/mixed` Content-Type, if any. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  if (!contentType || !/^\s*multipart\/mixed\s*;/i.test(contentType)) return undefined;
  const match = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return match ? (match[1] ?? match[2]) : undefined;
}

/**
 * Reads a federation media response: skips the JSON part, parses the second
 * part's headers, and resolves once they are known; the bytes then stream
 * from `bytes`, ending at the closing boundary. Headers of the parts are
 * limited to 64 KiB so a hostile body cannot make this buffer without bound.
 */
export function parseMultipartMedia(body: Readable, boundary: string): Promise<ParsedMedia> {
  return new MultipartReader(body, boundary).start();
}

const MAX_HEADER_BYTES = 64 * 1024;

class MultipartReader {
  readonly #delimiter: Buffer;
  #buffer: Buffer = Buffer.alloc(0);
  #state: "preamble" | "json" | "headers" | "bytes" | "done" = "preamble";
  #out: PassThrough | undefined;
  #resolve!: (value: ParsedMedia) => void;
  #reject!: (error: Error) => void;
  #settled = false;

  constructor(
    private readonly body: Readable,
    boundary: string,
  ) {
    this.#delimiter = Buffer.from(`${CRLF}--${boundary}`);
  }

  start(): Promise<ParsedMedia> {
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      // The leading CRLF is optional: treat the body as if it had one.
      this.#buffer = Buffer.from(CRLF);
      this.body.on("data", (chunk: Buffer) => this.#push(chunk));
      this.body.on("end", () => this.#end());
      this.body.on("error", (error) => this.#fail(error));
    });
  }

  #push(chunk: Buffer): void {
    this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, chunk]) : chunk;
    try {
      this.#advance();
    } catch (error) {
      this.#fail(error as Error);
    }
  }

  #advance(): void {
    for (;;) {
      if (this.#state === "bytes") {
        this.#streamBytes();
        return;
      }
      if (this.#state === "done") return;
      if (this.#state === "preamble" || this.#state === "json") {
        const at = this.#buffer.indexOf(this.#delimiter);
        if (at === -1) {
          this.#guardHeaderSize();
          return;
        }
        this.#buffer = this.#buffer.subarray(at + this.#delimiter.length);
        this.#state = this.#state === "preamble" ? "json" : "headers";
        continue;
      }
      // headers: after the delimiter comes CRLF, header lines, CRLF CRLF.
      const end = this.#buffer.indexOf(`${CRLF}${CRLF}`);
      if (end === -1) {
        this.#guardHeaderSize();
        return;
      }
      const headers = parseHeaders(this.#buffer.subarray(0, end).toString("latin1"));
      this.#buffer = this.#buffer.subarray(end + 4);
      this.#onSecondPart(headers);
    }
  }

  #onSecondPart(headers: Map<string, string>): void {
    const location = headers.get("location");
    if (location !== undefined) {
      this.#state = "done";
      this.body.destroy();
      this.#settle({ kind: "location", location });
      return;
    }
    this.#state = "bytes";
    this.#out = new PassThrough();
    // A truncated body may fail the stream before the caller reads it; the
    // error stays on the stream for the caller, without crashing the process.
    this.#out.on("error", () => {});
    this.#settle({
      kind: "bytes",
      contentType: headers.get("content-type"),
      contentDisposition: headers.get("content-disposition"),
      bytes: this.#out,
    });
  }

  /** Emits everything that cannot be the start of the closing delimiter. */
  #streamBytes(): void {
    const at = this.#buffer.indexOf(this.#delimiter);
    if (at !== -1) {
      this.#out!.end(this.#buffer.subarray(0, at));
      this.#state = "done";
      this.#buffer = Buffer.alloc(0);
      return;
    }
    const keep = this.#delimiter.length - 1;
    if (this.#buffer.length > keep) {
      const ready = this.#buffer.subarray(0, this.#buffer.length - keep);
      this.#buffer = Buffer.from(this.#buffer.subarray(this.#buffer.length - keep));
      if (!this.#out!.write(ready)) {
        this.body.pause();
        this.#out!.once("drain", () => this.body.resume());
      }
    }
  }

  #guardHeaderSize(): void {
    if (this.#buffer.length > MAX_HEADER_BYTES) {
      throw new MultipartError("multipart part too large before the media part");
    }
  }

  #end(): void {
    if (this.#state === "done") return;
    this.#fail(new MultipartError("multipart body ended early"));
  }

  #fail(error: Error): void {
    if (this.#out && this.#state !== "done") this.#out.destroy(error);
    this.#state = "done";
    if (!this.#settled) {
      this.#settled = true;
      this.#reject(error);
    }
  }

  #settle(value: ParsedMedia): void {
    this.#settled = true;
    this.#resolve(value);
  }
}

function parseHeaders(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of text.split(CRLF)) {
    const colon = line.indexOf(":");
    if (colon > 0)
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}
