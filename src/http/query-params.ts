/**
 * Query-parameter parsing with Synapse's error texts (its shared servlet
 * helpers): admin tools match on these messages, so keep them exact.
 * Only the first occurrence of a repeated parameter is used.
 */
import { MatrixError } from "../domain/matrix-error.js";

export type Query = Record<string, string | string[] | undefined>;

/** The first value of a query parameter, or undefined. */
export function firstParam(query: Query, name: string): string | undefined {
  const value = query[name];
  return Array.isArray(value) ? value[0] : value;
}

const INTEGER = /^\s*[+-]?\d+\s*$/;

/** A non-negative integer parameter; absent → `fallback`, or 400 M_MISSING_PARAM when required. */
export function integerParam(query: Query, name: string, fallback: number): number;
export function integerParam(query: Query, name: string, fallback?: undefined): number | undefined;
export function integerParam(query: Query, name: string, fallback?: number): number | undefined {
  const raw = firstParam(query, name);
  if (raw === undefined) return fallback;
  if (!INTEGER.test(raw)) {
    throw new MatrixError("M_INVALID_PARAM", `Query parameter ${name} must be an integer`);
  }
  const value = Number.parseInt(raw, 10);
  if (value < 0) {
    throw new MatrixError("M_INVALID_PARAM", `Query parameter ${name} must be a positive integer.`);
  }
  if (!Number.isSafeInteger(value)) {
    throw new MatrixError("M_INVALID_PARAM", `Query parameter ${name} must be an integer`);
  }
  return value;
}

/**
 * A page size `limit`: absent → `fallback`; 0 is refused (a client paging
 * with it would loop forever, docs/compatibility.md); above `max` → `max`.
 */
export function pageLimitParam(query: Query, fallback: number, max: number): number {
  const value = integerParam(query, "limit", fallback);
  if (value === 0) {
    throw new MatrixError("M_INVALID_PARAM", "Query parameter limit must be greater than 0");
  }
  return Math.min(value, max);
}

/** A required non-negative integer parameter. */
export function requiredIntegerParam(query: Query, name: string): number {
  const value = integerParam(query, name);
  if (value === undefined) {
    throw new MatrixError("M_MISSING_PARAM", `Missing required integer query parameter ${name}`);
  }
  return value;
}

/** A boolean parameter: exactly `true` or `false`. */
export function booleanParam(query: Query, name: string, fallback: boolean): boolean;
export function booleanParam(query: Query, name: string, fallback?: undefined): boolean | undefined;
export function booleanParam(query: Query, name: string, fallback?: boolean): boolean | undefined {
  const raw = firstParam(query, name);
  if (raw === undefined) return fallback;
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw new MatrixError(
    "M_INVALID_PARAM",
    `Boolean query parameter '${name}' must be one of ['true', 'false']`,
  );
}

/** A parameter from a fixed list of values; the error lists them in order. */
export function enumParam<T extends string>(
  query: Query,
  name: string,
  allowed: readonly T[],
): T | undefined {
  const raw = firstParam(query, name);
  if (raw === undefined) return undefined;
  if ((allowed as readonly string[]).includes(raw)) return raw as T;
  const list = allowed.map((v) => `'${v}'`).join(", ");
  throw new MatrixError("M_INVALID_PARAM", `Query parameter '${name}' must be one of [${list}]`);
}

/** An opaque paging token: a JSON array as base64url (`next_batch` of mxcd's own APIs). */
export function jsonToken(values: readonly unknown[]): string {
  return Buffer.from(JSON.stringify(values)).toString("base64url");
}

/**
 * The array inside a `jsonToken` given as `name` (`from`), or null when the
 * parameter is absent; anything that is not such a token of `length` values
 * is 400 `M_INVALID_PARAM` "Invalid from token". The caller checks the values.
 */
export function jsonTokenParam(query: Query, name: string, length: number): unknown[] | null {
  const raw = firstParam(query, name);
  if (raw === undefined) return null;
  const invalid = new MatrixError("M_INVALID_PARAM", `Invalid ${name} token`);
  if (!/^[A-Za-z0-9_-]{1,2000}$/.test(raw)) throw invalid;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
  } catch {
    throw invalid;
  }
  if (!Array.isArray(parsed) || parsed.length !== length) throw invalid;
  return parsed;
}
