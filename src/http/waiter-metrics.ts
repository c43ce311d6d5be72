/**
 * `mxcd_waiting_requests{kind}`: how many requests are waiting, right now,
 * for something another request or process will do — an async upload's
 * bytes, a quarantine feed record, a remote fetch or a thumbnail under way
 * in another process. Read when scraped; the sources keep the counts.
 */
import { Gauge, type Registry } from "prom-client";

/** Something that knows how many of its callers are waiting. */
export interface WaiterSource {
  readonly waiting: number;
}

/** Adds the gauge to `registry`, one `kind` label value per source. */
export function registerWaiterMetrics(
  registry: Registry,
  sources: Readonly<Record<string, WaiterSource>>,
): void {
  new Gauge({
    name: "mxcd_waiting_requests",
    help: "Requests waiting for an upload, a feed record, or work under way in another process",
    labelNames: ["kind"],
    registers: [registry],
    collect() {
      for (const [kind, source] of Object.entries(sources)) this.set({ kind }, source.waiting);
    },
  });
}
