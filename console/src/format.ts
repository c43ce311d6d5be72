/** Display helpers: sizes, times, sizes typed by a person. */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "—";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${UNITS[unit]}`;
}

export function formatTime(ts: number | null | undefined): string {
  if (ts === null || ts === undefined) return "—";
  return new Date(ts)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, " UTC");
}

/** "1048576", "512K", "5M", "1G" → bytes; undefined when not a size. */
export function parseSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)i?b?\s*$/i.exec(text);
  if (!match) return undefined;
  const scale = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2]!.toLowerCase()] ?? 1;
  return Math.round(Number(match[1]) * scale);
}

/** Longest media name used in a description. */
const MAX_NAME = 80;

/**
 * A short plain-text description of a media item for `alt` text and labels:
 * its name (control characters dropped, cut to 80 characters, the media id
 * when it has none) and its type. Names come from uploaders: this is only
 * ever used as text or an attribute value, which Preact escapes.
 */
export function describeMedia(row: {
  upload_name?: string | null;
  media_id: string;
  media_type?: string | null;
}): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  const name = (row.upload_name || row.media_id).replace(/[\u0000-\u001f\u007f-\u009f]/g, "");
  const short = name.length > MAX_NAME ? `${name.slice(0, MAX_NAME)}…` : name;
  return `${short} (${row.media_type || "unknown type"})`;
}
