/**
 * Knows every (method, path pattern) the server registered, so an unmatched
 * request can be told apart as "known path, wrong method" (405) or "unknown
 * path" (404), both M_UNRECOGNIZED, as the Matrix spec asks.
 */
import FindMyWay, { type HTTPMethod } from "find-my-way";

export class MethodIndex {
  readonly #router = FindMyWay({ ignoreTrailingSlash: false, maxParamLength: 10_000 });
  readonly #methods = new Set<HTTPMethod>();

  add(method: string | string[], url: string): void {
    for (const m of Array.isArray(method) ? method : [method]) {
      const upper = m.toUpperCase() as HTTPMethod;
      this.#methods.add(upper);
      // Fastify may report a route twice (e.g. its automatic HEAD route); ignore repeats.
      if (!this.#router.hasRoute(upper, url)) this.#router.on(upper, url, () => {});
    }
  }

  /** True when some other method is registered for a path matching `path`. */
  pathIsKnown(path: string): boolean {
    for (const method of this.#methods) {
      if (this.#router.find(method, path)) return true;
    }
    return false;
  }
}
