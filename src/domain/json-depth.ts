/**
 * The nesting limit for JSON request bodies and event contents.
 *
 * Why: `JSON.parse` in V8 is iterative and parses a million-deep body, but
 * almost everything that later walks the value recurses (`JSON.stringify`
 * for the size check, storage and the response; canonical JSON; any
 * recursive visitor) and overflows the stack somewhere below 10,000 levels,
 * which surfaced as a 500. So the depth is checked once, iteratively, right
 * after parsing and before anything recurses (docs/rooms.md "Limits").
 *
 * The Matrix spec sets no depth limit, only the 65,536-byte event size; real
 * events nest well under 20 levels. Synapse inherits Python's recursion
 * limit (about 1,000) and answers deeper bodies 400 `M_NOT_JSON`; mxcd
 * refuses beyond 100 with 400 `M_BAD_JSON` (docs/compatibility.md).
 */
import { MatrixError } from "./matrix-error.js";

/** Deepest nesting of objects and arrays accepted; the outermost container is level 1. */
export const MAX_JSON_DEPTH = 100;

/**
 * True when `value` nests objects or arrays more than `limit` levels deep
 * (a scalar is level 0, the outermost object or array level 1). Iterative
 * with an explicit stack, so it cannot overflow the call stack; its work is
 * bounded by the number of values (so by the body size), and it stops at the
 * first container past the limit, which also ends any cycle.
 */
export function exceedsJsonDepth(value: unknown, limit: number = MAX_JSON_DEPTH): boolean {
  const pending: unknown[] = [value];
  const depths: number[] = [1];
  while (pending.length > 0) {
    const current = pending.pop();
    const depth = depths.pop()!;
    if (typeof current !== "object" || current === null) continue;
    if (depth > limit) return true;
    for (const child of Array.isArray(current) ? current : Object.values(current)) {
      if (typeof child === "object" && child !== null) {
        pending.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

/** 400 `M_BAD_JSON` when `value` is nested deeper than `MAX_JSON_DEPTH`; `what` names it. */
export function assertJsonDepth(value: unknown, what: string): void {
  if (exceedsJsonDepth(value)) {
    throw new MatrixError(
      "M_BAD_JSON",
      `${what} is nested more than ${MAX_JSON_DEPTH} levels deep`,
    );
  }
}
