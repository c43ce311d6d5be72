/**
 * `user_glob` of `media_upload_limit_overrides` (docs/media.md "Upload
 * limits"): a pattern matched against a whole user id. `*` matches any run
 * of characters (none included), `?` exactly one; every other character is
 * literal. Character sets (`[…]`) and braces are refused rather than read
 * one of several ways (MMR and Python's fnmatch disagree on them).
 */

/** Why `glob` is not a valid `user_glob`; undefined when it is. */
export function userGlobProblem(glob: string): string | undefined {
  if (glob.length === 0) return "must not be empty";
  if (glob.length > 255) return "must be at most 255 characters (a user id's length)";
  if (/\s/.test(glob)) return "must not contain white space";
  if (/[[\]{}]/.test(glob)) return "may use only * and ? as wildcards ([ ] { } are not supported)";
  if (!glob.startsWith("@") && !glob.startsWith("*")) {
    return 'must match user ids: start with "@" (as "@*:example.org") or "*"';
  }
  return undefined;
}

/** A predicate that is true for user ids the glob matches whole. Check `userGlobProblem` first. */
export function compileUserGlob(glob: string): (userId: string) => boolean {
  let source = "";
  for (const c of glob) {
    if (c === "*") source += ".*";
    else if (c === "?") source += ".";
    else source += c.replace(/[.+^$()|\\/]/g, "\\$&");
  }
  const regex = new RegExp(`^${source}$`, "su");
  return (userId) => regex.test(userId);
}
