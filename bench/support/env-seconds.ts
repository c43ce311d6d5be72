/** Durations in the benches' environment knobs: `10`, `10s` or `500ms`. */

/** Seconds from the variable `name`'s `value`, or `fallback` when it is unset or empty. */
export function envSeconds(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const match = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value.trim());
  if (!match) throw new Error(`${name} must be seconds, e.g. 10 or 10s`);
  return Number(match[1]) / (match[2] === "ms" ? 1000 : 1);
}
