/**
 * The file name in a remote server's Content-Disposition, for the remote
 * cache's `upload_name`: `filename*` (RFC 5987, UTF-8 or US-ASCII) first,
 * then `filename` (token or quoted string). Undecodable values are ignored.
 */
export function filenameFromDisposition(header: string | undefined): string | null {
  if (!header) return null;
  const extended = /;\s*filename\*\s*=\s*(?:utf-8|us-ascii)'[^']*'([^;\s]+)/i.exec(header);
  if (extended) {
    try {
      const name = decodeURIComponent(extended[1]!);
      if (name) return name;
    } catch {
      // Fall through to the plain parameter.
    }
  }
  const plain = /;\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(header);
  if (!plain) return null;
  const name = plain[1] !== undefined ? plain[1].replace(/\\(.)/g, "$1") : plain[2]!;
  return name || null;
}
