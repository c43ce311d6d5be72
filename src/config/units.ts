/**
 * Synapse's size and duration notations: sizes `"50M"`, `"10K"`, `"1G"`
 * (powers of 1024) or plain bytes; durations `"500ms"`, `"30s"`, `"5m"`,
 * `"24h"`, `"7d"`, `"1w"`, `"1y"`.
 *
 * A duration always carries its unit. Synapse reads a bare number as
 * milliseconds, but mxcd's `shutdown_grace_period` once took bare seconds,
 * so a bare number is ambiguous in an mxcd config; it is refused (with the
 * dotted key) rather than guessed, for every duration option alike.
 */

const SIZE_UNITS: Record<string, number> = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

/** Bytes of a size like `"50M"`; undefined when the text is not a size. */
export function parseSize(value: number | string): number | undefined {
  if (typeof value === "number")
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const match = /^\s*(\d+)\s*([KMGT]?)B?\s*$/i.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * (SIZE_UNITS[match[2]!.toUpperCase()] ?? 1);
}

/**
 * Milliseconds of a duration like `"24h"`; undefined when the text is not a
 * duration with a unit (or too large to be exact in milliseconds).
 */
export function parseDuration(value: string): number | undefined {
  const match = /^\s*(\d+)\s*(ms|s|m|h|d|w|y)\s*$/.exec(value);
  if (!match) return undefined;
  const ms = Number(match[1]) * (DURATION_UNITS[match[2] ?? ""] ?? Number.NaN);
  return Number.isSafeInteger(ms) ? ms : undefined;
}
