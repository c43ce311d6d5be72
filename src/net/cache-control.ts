/**
 * How long a response may be cached, from its Cache-Control header (RFC 9111
 * §5.2.2). Used for `.well-known/matrix/server` (Matrix spec §4.5 step 3).
 */

/**
 * Milliseconds from `max-age`; 0 for `no-store` or `no-cache`; undefined
 * when the header says nothing about freshness (the caller's default
 * applies). A malformed `max-age` is ignored.
 */
export function cacheLifetimeMs(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const directives = (Array.isArray(header) ? header.join(",") : header)
    .split(",")
    .map((d) => d.trim().toLowerCase());
  if (directives.includes("no-store") || directives.includes("no-cache")) return 0;
  for (const directive of directives) {
    const match = /^max-age\s*=\s*"?(\d{1,10})"?$/.exec(directive);
    if (match) return Number(match[1]) * 1000;
  }
  return undefined;
}
