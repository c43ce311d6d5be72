/**
 * Authenticating inbound server-server requests by their X-Matrix
 * signature (Matrix spec, server-server API "Request Authentication";
 * reference §4.2 receiver procedure): rebuild the signed object from the
 * request as received, fetch the origin's key, verify.
 *
 * Every failure is 401 M_UNAUTHORIZED, as in Synapse, except that a
 * malformed header is 401 here too (Synapse answers 400). When a request
 * carries several Authorization headers (one per sender key), it is
 * accepted if any X-Matrix one verifies; otherwise the first header's
 * failure is reported. Headers of other schemes are ignored.
 */
import type { KeyObject } from "node:crypto";
import { MatrixError } from "../domain/matrix-error.js";
import { isValidServerName } from "../identifiers/server-name.js";
import { verifyJsonSignature } from "./json-signing.js";
import {
  parseXMatrixHeader,
  requestJson,
  type XMatrixCredentials,
  XMatrixHeaderError,
} from "./x-matrix.js";

/** The one thing FederationAuth needs from the key ring. */
export interface VerifyKeySource {
  /** The origin's key valid now for request signatures, or undefined. */
  getVerifyKey(serverName: string, keyId: string): Promise<KeyObject | undefined>;
}

/** An inbound request as far as its signature is concerned. */
export interface InboundFederationRequest {
  /** The HTTP method (any case). */
  readonly method: string;
  /** Path and query exactly as received: not decoded, normalised or re-ordered. */
  readonly uri: string;
  readonly headers: { readonly authorization?: string | readonly string[] | undefined };
  /** The parsed JSON body; undefined when the request has none. */
  readonly body?: unknown;
}

/** Checks X-Matrix signatures of requests addressed to `serverName`. */
export class FederationAuth {
  constructor(
    private readonly serverName: string,
    private readonly keys: VerifyKeySource,
  ) {}

  /**
   * The origin server name of a correctly signed request, or
   * MatrixError 401 M_UNAUTHORIZED: no X-Matrix header or no signature
   * ("Missing Authorization headers"), a malformed header, a destination
   * other than our server name, an origin key that cannot be had (unknown,
   * expired, an old key), or a signature that does not verify.
   */
  async authenticate(request: InboundFederationRequest): Promise<string> {
    const headers = request.headers.authorization;
    const list: readonly string[] =
      headers === undefined ? [] : typeof headers === "string" ? [headers] : headers;
    let failure: MatrixError | undefined;
    for (const header of list) {
      try {
        const credentials = parseXMatrixHeader(header);
        if (credentials) return await this.#verify(credentials, request);
      } catch (error) {
        failure ??= toUnauthorized(error);
      }
    }
    throw failure ?? unauthorized("Missing Authorization headers");
  }

  async #verify(credentials: XMatrixCredentials, request: InboundFederationRequest) {
    const { origin, destination, key, sig } = credentials;
    if (destination !== undefined && destination !== this.serverName) {
      throw unauthorized("Destination mismatch in auth header");
    }
    if (!isValidServerName(origin)) throw unauthorized("Malformed Authorization header: origin");
    const publicKey = await this.keys.getVerifyKey(origin, key);
    if (publicKey === undefined) throw unauthorized(`Failed to find key ${key} of ${origin}`);
    const json = requestJson({
      method: request.method,
      uri: request.uri,
      origin,
      destination: this.serverName,
      content: request.body,
    });
    const signed = { ...json, signatures: { [origin]: { [key]: sig } } };
    if (!verifyJsonSignature(signed, origin, key, publicKey)) {
      throw unauthorized(`Invalid signature for server ${origin} with key ${key}`);
    }
    return origin;
  }
}

function unauthorized(message: string): MatrixError {
  return new MatrixError("M_UNAUTHORIZED", message, 401);
}

/** Header problems become 401; anything else (a bug, a key-ring failure) propagates as is. */
function toUnauthorized(error: unknown): MatrixError {
  if (error instanceof MatrixError) return error;
  if (error instanceof XMatrixHeaderError) return unauthorized(error.message);
  throw error;
}
