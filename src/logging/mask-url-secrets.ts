/**
 * Masks the values of secret query parameters in a URL before it is logged.
 *
 * Why parse rather than match `access_token=` in the raw text: the HTTP
 * layer decodes parameter names, so `access%5Ftoken=`, `access%5ftoken=`
 * and `%61ccess_token=` all authenticate as `access_token`, and a pattern
 * on the raw string misses them. Here each name is decoded the same way
 * (percent escapes in either case, `+` as a space) and compared without
 * regard to case, so a spelling the server does not even accept is masked
 * too. Values run to the next `&` (as the query parser reads them); a
 * secret name after a `;` inside a pair masks the rest of that pair, for
 * parsers that split on `;`.
 */

/** Query parameters whose values are secrets (compared lower-cased, after decoding). */
const SECRET_QUERY_PARAMS: ReadonlySet<string> = new Set([
  "access_token", // client-server API, legacy query form of the bearer token
  "refresh_token",
  "hs_token", // application services (the homeserver's token)
  "as_token",
  "password",
  "mac", // shared-secret registration
  "token", // registration-token validity checks
  "login_token",
  "logintoken", // SSO redirects carry `loginToken`

  "client_secret",
]);

export const REDACTED = "<redacted>";

/** `url` with the value of every secret query parameter replaced by `<redacted>`. */
export function maskUrlSecrets(url: string): string {
  const start = url.indexOf("?");
  if (start === -1) return url;
  const pairs = url
    .slice(start + 1)
    .split("&")
    .map(maskPair);
  return `${url.slice(0, start + 1)}${pairs.join("&")}`;
}

function maskPair(pair: string): string {
  const segments = pair.split(";");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const eq = segment.indexOf("=");
    const name = eq === -1 ? segment : segment.slice(0, eq);
    if (isSecretName(name)) return [...segments.slice(0, i), `${name}=${REDACTED}`].join(";");
  }
  return pair;
}

/** Whether a raw (still encoded) parameter name names a secret. */
export function isSecretName(rawName: string): boolean {
  return SECRET_QUERY_PARAMS.has(decodeLeniently(rawName).trim().toLowerCase());
}

/** Percent-decoding that never throws: a malformed escape stays as it is. */
function decodeLeniently(text: string): string {
  const plus = text.replace(/\+/g, " ");
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus.replace(/%([0-9a-f]{2})/gi, (_, hex: string) =>
      String.fromCharCode(Number.parseInt(hex, 16)),
    );
  }
}
