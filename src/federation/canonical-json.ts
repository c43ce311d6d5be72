/**
 * Canonical JSON (Matrix spec, appendices "Canonical JSON"; reference §4.3):
 * the one byte string every signer and verifier must agree on.
 *
 * Design note: `JSON.stringify` already writes strings the canonical way
 * (non-ASCII raw, only the short escapes, lowercase `\u00xx` for the other
 * control characters), so strings go through it. What it gets wrong is done
 * here: object keys are sorted by Unicode code point (not by UTF-16 code
 * unit, which is what `Array.prototype.sort` does), and numbers are refused
 * unless they are integers the spec allows (`-0` is the integer zero and is
 * written `0`, as the spec's own example shows). Strings holding a lone
 * surrogate have no UTF-8 form and are refused. Anything that is not plain JSON
 * data (a `Date`, a `Map`, a class instance, `undefined` in an array, a
 * bigint) is refused rather than guessed at, because two implementations
 * guessing differently would make signatures fail far from the cause.
 */

/** A value that has no canonical JSON encoding (a float, `-0`, a `Date`, ...). */
export class CanonicalJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CanonicalJsonError";
  }
}

/**
 * The canonical JSON text of `value`: no whitespace, keys sorted by code
 * point at every depth, integers only in [-(2^53)+1, 2^53-1] (`-0` written
 * `0`), strings as well-formed Unicode. Object
 * properties whose value is `undefined` are left out (as `JSON.stringify`
 * does); anything else without a JSON meaning throws `CanonicalJsonError`.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, "$");
}

function encode(value: unknown, path: string): string {
  switch (typeof value) {
    case "string":
      return encodeString(value, path);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      // isSafeInteger is exactly the spec's range; String(-0) is "0".
      if (!Number.isSafeInteger(value)) {
        throw new CanonicalJsonError(`${path}: ${value} is not an integer canonical JSON allows`);
      }
      return String(value);
    case "object":
      if (value === null) return "null";
      if (Array.isArray(value)) return encodeArray(value, path);
      return encodeObject(value, path);
    default:
      throw new CanonicalJsonError(`${path}: a ${typeof value} has no JSON encoding`);
  }
}

function encodeArray(items: readonly unknown[], path: string): string {
  const parts: string[] = [];
  for (let i = 0; i < items.length; i++) {
    if (items[i] === undefined) throw new CanonicalJsonError(`${path}[${i}]: undefined`);
    parts.push(encode(items[i], `${path}[${i}]`));
  }
  return `[${parts.join(",")}]`;
}

function encodeObject(object: object, path: string): string {
  const prototype = Object.getPrototypeOf(object);
  if (prototype !== Object.prototype && prototype !== null) {
    throw new CanonicalJsonError(`${path}: only plain objects can be encoded`);
  }
  const record = object as Record<string, unknown>;
  const keys = Object.keys(record)
    .filter((key) => record[key] !== undefined)
    .sort(compareCodePoints);
  const parts = keys.map(
    (key) => `${encodeString(key, path)}:${encode(record[key], `${path}.${key}`)}`,
  );
  return `{${parts.join(",")}}`;
}

// In unicode mode a surrogate pair is one code point, so this finds lone halves only.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

function encodeString(text: string, path: string): string {
  if (LONE_SURROGATE.test(text)) throw new CanonicalJsonError(`${path}: lone surrogate in string`);
  return JSON.stringify(text);
}

/**
 * Orders two strings by Unicode code point. UTF-16 order differs from code
 * point order only where a surrogate (U+D800–U+DFFF, half of an astral
 * character) meets a unit in U+E000–U+FFFF: the astral character is the
 * larger code point but the smaller unit. Moving surrogates above U+FFFF
 * before comparing fixes exactly that case.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}
