/**
 * `url_preview_url_blacklist`: Synapse's list of URL patterns that previews
 * refuse (media-gaps.md §1.6; Synapse's config documentation and
 * `url_previewer._is_url_blocked`).
 *
 * Each entry is a map from URL parts to patterns. A pattern that starts with
 * `^` is a regular expression matched from the start of the part (Python's
 * `re.match`); any other pattern is a shell glob that must match the whole
 * part (`fnmatch`: `*`, `?`, `[abc]`, `[!abc]`, case-sensitive). An entry
 * matches a URL when every one of its parts matches; a part the URL does not
 * have (no username, no explicit port) matches nothing. The URL is refused
 * when any entry matches. Synapse applies it to the page, every redirect,
 * the oEmbed endpoint and the image (CVE-2023-32683); so will mxcd.
 *
 * Parts, as Python's `urlsplit` names them: `scheme`, `netloc`
 * (`user:password@host:port`), `hostname` (lower case, no IPv6 brackets),
 * `port`, `path` (with `;params`), `params` (the `;…` of the last path
 * segment, as `urlparse` gives it), `query` (no `?`), `fragment` (no `#`),
 * `username`, `password`. Synapse lists `params` in its docs but reads parts
 * from `urlsplit`, which has none, so there an entry with `params` fails at
 * request time; mxcd gives it `urlparse`'s meaning.
 *
 * Where mxcd differs from Synapse, on purpose: parts are taken from the URL
 * as mxcd fetches it, normalised by the WHATWG URL parser (scheme and host in
 * lower case, IDN hosts in punycode, `0x7f.1` and other IPv4 forms written
 * as dotted decimal, dot segments resolved, a default port dropped), so
 * writing a URL differently does not slip past an entry; an entry with no
 * parts (which would refuse every URL) and unknown part names are refused
 * when the config is loaded, and so are regular expressions that do not
 * compile; a port may be written as a number. The list is a usability
 * feature, not a security boundary (Synapse #17356): the IP range
 * blacklist is what keeps previews off private addresses.
 */
import { z } from "zod";

/** The URL parts an entry may name. */
export const URL_PARTS = [
  "scheme",
  "netloc",
  "hostname",
  "port",
  "path",
  "params",
  "query",
  "fragment",
  "username",
  "password",
] as const;
export type UrlPart = (typeof URL_PARTS)[number];

/** One compiled pattern: a test over a part's text. */
type PartMatcher = (value: string) => boolean;

const pattern = z.union([z.string(), z.number().int().nonnegative()]).transform((value, ctx) => {
  const text = String(value);
  try {
    compilePattern(text);
  } catch (error) {
    ctx.addIssue({
      code: "custom",
      message: `is not a valid pattern: ${(error as Error).message}`,
    });
    return z.NEVER;
  }
  return text;
});

/** One entry: URL parts to patterns (at least one part). */
export const urlBlacklistEntrySchema = z
  .strictObject(
    Object.fromEntries(URL_PARTS.map((part) => [part, pattern.optional()])) as {
      [P in UrlPart]: z.ZodOptional<typeof pattern>;
    },
  )
  .refine(
    (entry) => Object.values(entry).some((value) => value !== undefined),
    `an entry needs at least one URL part (${URL_PARTS.join(", ")}); to refuse every URL, write scheme: "*"`,
  );

/**
 * The `url_preview_url_blacklist` option: a list of entries, default empty.
 * For the config schema; errors name the entry and the part.
 */
export const urlPreviewUrlBlacklistSchema = z.array(urlBlacklistEntrySchema).default([]);

/** A validated entry, as the schema gives it. */
export type UrlBlacklistEntry = Partial<Record<UrlPart, string>>;

/** A compiled blacklist. */
export class UrlBlacklist {
  private readonly entries: { index: number; parts: [UrlPart, PartMatcher][] }[];

  /** Compiles validated entries (`urlPreviewUrlBlacklistSchema`); throws on a bad pattern. */
  constructor(entries: readonly UrlBlacklistEntry[]) {
    this.entries = entries.map((entry, index) => ({
      index,
      parts: Object.entries(entry)
        .filter((pair): pair is [UrlPart, string] => pair[1] !== undefined)
        .map(([part, text]) => [part, compilePattern(text)]),
    }));
  }

  /**
   * The index of the first entry that matches `url`, or undefined when no
   * entry does. A string that is not an absolute URL matches nothing (the
   * caller refuses it before it gets here).
   */
  match(url: string | URL): number | undefined {
    let parsed: URL;
    try {
      parsed = typeof url === "string" ? new URL(url) : url;
    } catch {
      return undefined;
    }
    const parts = urlParts(parsed);
    for (const entry of this.entries) {
      const matches = entry.parts.every(([part, test]) => {
        const value = parts[part];
        return value !== undefined && test(value);
      });
      if (matches) return entry.index;
    }
    return undefined;
  }

  /** True when an entry matches `url`. */
  blocks(url: string | URL): boolean {
    return this.match(url) !== undefined;
  }
}

/** The parts of `url` by Python `urlsplit` names; undefined where the URL has none. */
export function urlParts(url: URL): Record<UrlPart, string | undefined> {
  const scheme = url.protocol.slice(0, -1);
  const username = url.username === "" ? undefined : url.username;
  const password = url.password === "" ? undefined : url.password;
  const userinfo =
    username === undefined && password === undefined
      ? ""
      : `${username ?? ""}${password === undefined ? "" : `:${password}`}@`;
  const hostname = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const lastSegment = url.pathname.slice(url.pathname.lastIndexOf("/") + 1);
  const semicolon = lastSegment.indexOf(";");
  return {
    scheme,
    netloc: url.host === "" ? undefined : `${userinfo}${url.host}`,
    hostname: hostname === "" ? undefined : hostname,
    port: url.port === "" ? undefined : url.port,
    path: url.pathname,
    params: semicolon === -1 ? "" : lastSegment.slice(semicolon + 1),
    query: url.search.slice(1),
    fragment: url.hash.slice(1),
    username,
    password,
  };
}

/**
 * A `^regex` or an fnmatch glob (matched whole). The regular expression is
 * sticky at index 0, which is Python's `re.match`: `^a|b` matches "b…" but
 * not "xb", where a plain JavaScript test would find the `b` anywhere.
 */
function compilePattern(text: string): PartMatcher {
  const regex = text.startsWith("^") ? new RegExp(text, "y") : globToRegExp(text);
  return (value) => {
    regex.lastIndex = 0;
    return regex.test(value);
  };
}

/**
 * Python `fnmatch.translate` semantics: `*` any run (slashes included), `?`
 * any one character, `[…]` a set (`[!…]` negated, a leading `]` literal),
 * an unclosed `[` a literal; everything else literal.
 */
export function globToRegExp(glob: string): RegExp {
  let source = "";
  let i = 0;
  while (i < glob.length) {
    const c = glob[i]!;
    i += 1;
    if (c === "*") source += ".*";
    else if (c === "?") source += ".";
    else if (c === "[") {
      let j = i;
      if (glob[j] === "!") j += 1;
      if (glob[j] === "]") j += 1;
      while (j < glob.length && glob[j] !== "]") j += 1;
      if (j >= glob.length) {
        source += "\\[";
        continue;
      }
      let set = glob.slice(i, j);
      i = j + 1;
      const negated = set.startsWith("!");
      if (negated) set = set.slice(1);
      // Inside a set only `\`, `]` and `^` need escaping; `-` keeps its range meaning.
      const body = set.replace(/[\\\]^]/g, "\\$&");
      source += negated ? `[^${body}]` : `[${body}]`;
    } else source += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^(?:${source})$`, "s");
}
