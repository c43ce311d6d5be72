/**
 * Reading whole (small, capped) bodies: JSON answers of federation and
 * discovery requests. Media bodies are streamed instead, never read here.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import { HttpStatusError, InvalidJsonResponseError } from "./outbound-errors.js";

/** A parsed JSON answer (2xx). The JSON value is unchecked: validate its shape. */
export interface JsonResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly json: unknown;
}

/** Reads the whole stream; its errors (size cap, timeout, reset) reject. */
export async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Reads and parses a JSON response. Non-2xx: HttpStatusError carrying the
 * parsed body (or undefined when it is not JSON). 2xx with a body that is
 * not JSON: InvalidJsonResponseError.
 */
export async function readJsonResponse(
  response: { status: number; headers: IncomingHttpHeaders; body: Readable },
  target: string,
): Promise<JsonResponse> {
  const text = (await readAll(response.body)).toString("utf8");
  let json: unknown;
  let parseError: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    parseError = error;
  }
  const { status, headers } = response;
  if (status < 200 || status > 299) throw new HttpStatusError(target, status, json);
  if (parseError !== undefined) throw new InvalidJsonResponseError(target, { cause: parseError });
  return { status, headers, json };
}
