/**
 * The `Authorization: X-Matrix ...` header of server-server requests
 * (Matrix spec, server-server API "Request Authentication"; reference §4.2):
 * parsing what other servers send, building what we send, and signing our
 * outbound requests.
 *
 * Design note: the parser follows the spec's RFC 9110 §11.4 rules and no
 * further. Names are tokens, compared case-insensitively; values are a
 * quoted string (backslash escapes the next character) or a bare token
 * that may also hold `:`, `/`, `=`, `[` and `]`, so `key=ed25519:abc`,
 * padded base64 and `[::1]:8448` work unquoted. Spaces or tabs may surround commas and `=`;
 * empty list elements are skipped (RFC 9110 §5.6.1). A parameter given
 * twice is malformed rather than "last one wins", so two parsers can never
 * disagree on what a header says.
 */
import { signJson } from "./json-signing.js";
import type { SigningKeyProvider } from "./signing-key.js";

/** What an X-Matrix header carries. */
export interface XMatrixCredentials {
  readonly origin: string;
  /** Optional on receipt: senders before spec v1.3 leave it out. */
  readonly destination?: string;
  /** The key id, e.g. `ed25519:a_Abcd`. */
  readonly key: string;
  /** Unpadded base64 signature (the spec's "signature" parameter is sent as `sig`). */
  readonly sig: string;
}

/** An X-Matrix header that is malformed (`malformed`) or lacks origin, key or sig (`missing`). */
export class XMatrixHeaderError extends Error {
  constructor(
    readonly reason: "malformed" | "missing",
    message: string,
  ) {
    super(message);
    this.name = "XMatrixHeaderError";
  }
}

const SCHEME = /^X-Matrix(?: +|$)/iy;
const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y;
// A token plus ":" (spec), "/" and "=" (base64) and "[]" (IPv6 literals).
const BARE_VALUE = /[!#$%&'*+\-.^_`|~0-9A-Za-z:/=[\]]+/y;
const QUOTED_VALUE = /"((?:[^"\\]|\\.)*)"/y;
const OWS = /[ \t]*/y;
const SEPARATOR = /[ \t]*(?:,[ \t]*)*/y;

/** Matches a sticky regex at `at`; returns the match and moves on, or undefined. */
function take(regex: RegExp, text: string, at: number): RegExpExecArray | undefined {
  regex.lastIndex = at;
  return regex.exec(text) ?? undefined;
}

/**
 * The credentials of an Authorization header value; undefined when its
 * scheme is not X-Matrix (a Bearer token, say). Throws `XMatrixHeaderError`
 * when it is X-Matrix but malformed or incomplete. Unknown parameters are
 * ignored; an empty `origin`, `key` or `sig` counts as missing.
 */
export function parseXMatrixHeader(header: string): XMatrixCredentials | undefined {
  const scheme = take(SCHEME, header, 0);
  if (!scheme) return undefined;
  const params = parseParams(header, scheme[0].length);
  const origin = params.get("origin");
  const key = params.get("key");
  const sig = params.get("sig");
  if (!origin || !key || !sig) {
    throw new XMatrixHeaderError("missing", "Missing Authorization headers");
  }
  const destination = params.get("destination");
  return destination === undefined ? { origin, key, sig } : { origin, destination, key, sig };
}

/** The `name=value` list after the scheme, names lower-cased. */
function parseParams(header: string, start: number): Map<string, string> {
  const params = new Map<string, string>();
  let at = take(SEPARATOR, header, start)![0].length + start;
  while (at < header.length) {
    const name = take(TOKEN, header, at);
    if (!name) throw malformed(`expected a parameter name at ${at}`);
    at += name[0].length;
    at += take(OWS, header, at)![0].length;
    if (header[at] !== "=") throw malformed(`expected "=" at ${at}`);
    at += 1;
    at += take(OWS, header, at)![0].length;
    const quoted = take(QUOTED_VALUE, header, at);
    const bare = quoted ? undefined : take(BARE_VALUE, header, at);
    const value = quoted ? quoted[1]!.replace(/\\(.)/g, "$1") : bare?.[0];
    if (value === undefined) throw malformed(`expected a value at ${at}`);
    at += (quoted ?? bare)![0].length;
    const lower = name[0].toLowerCase();
    if (params.has(lower)) throw malformed(`parameter ${lower} given twice`);
    params.set(lower, value);
    // After a value: the end, or a comma (with optional blanks around it).
    const separator = take(SEPARATOR, header, at)![0];
    if (at + separator.length < header.length && !separator.includes(",")) {
      throw malformed(`expected "," at ${at}`);
    }
    at += separator.length;
  }
  return params;
}

function malformed(detail: string): XMatrixHeaderError {
  return new XMatrixHeaderError("malformed", `Malformed Authorization header: ${detail}`);
}

/**
 * The header value for credentials, in the form the spec asks senders to
 * use: `X-Matrix origin="a",destination="b",key="ed25519:x",sig="..."`.
 */
export function buildXMatrixHeader(credentials: XMatrixCredentials): string {
  const quote = (value: string) => `"${value.replace(/["\\]/g, "\\$&")}"`;
  const parts = [`origin=${quote(credentials.origin)}`];
  if (credentials.destination !== undefined) {
    parts.push(`destination=${quote(credentials.destination)}`);
  }
  parts.push(`key=${quote(credentials.key)}`, `sig=${quote(credentials.sig)}`);
  return `X-Matrix ${parts.join(",")}`;
}

/** The object an X-Matrix signature covers (reference §4.2 step 1). */
export interface SignedRequest {
  readonly method: string;
  readonly uri: string;
  readonly origin: string;
  readonly destination: string;
  readonly content?: unknown;
}

/** The JSON object that is signed for a request; `content` only when there is a body. */
export function requestJson(request: SignedRequest): Record<string, unknown> {
  const json: Record<string, unknown> = {
    method: request.method.toUpperCase(),
    uri: request.uri,
    origin: request.origin,
    destination: request.destination,
  };
  // Synapse leaves `content` out when the body is absent or JSON null.
  if (request.content !== undefined && request.content !== null) json.content = request.content;
  return json;
}

/** Signs our outbound federation requests with the server's current key. */
export class RequestSigner {
  constructor(
    private readonly serverName: string,
    private readonly signingKey: SigningKeyProvider,
  ) {}

  /**
   * The `Authorization` header value for a request to `destination` (its
   * server name before delegation). `uri` is the path and query exactly as
   * they will be sent (`/_matrix/...?a=b`); `content` is the JSON body, if
   * any. Throws `CanonicalJsonError` for a body with no canonical form.
   */
  authorizationHeader(method: string, uri: string, destination: string, content?: unknown) {
    if (!uri.startsWith("/")) throw new Error(`uri must be a path, not ${JSON.stringify(uri)}`);
    const key = this.signingKey();
    const json = requestJson({ method, uri, origin: this.serverName, destination, content });
    const signed = signJson(json, this.serverName, key.keyId, key.privateKey);
    const ours = signed.signatures[this.serverName]!;
    const sig = ours[key.keyId]!;
    return buildXMatrixHeader({ origin: this.serverName, destination, key: key.keyId, sig });
  }
}
