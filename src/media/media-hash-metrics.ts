/**
 * The PDQ hashing queue's figures (MediaHashingService.stats) on `/metrics`,
 * read when scraped (docs/trust-and-safety.md "Stored hashes"):
 * - `mxcd_media_hash_queue{state="queued"|"running"}`: items waiting, and
 *   being hashed (never more than `max_thumbnail_concurrency`);
 * - `mxcd_media_hash_outcomes_total{outcome="hashed"|"no_hash"|"dropped"}`:
 *   outcomes the queue recorded, and items dropped on a full queue (left to
 *   the `media-hash-backfill` job).
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { MediaHashingStats } from "./media-hashing-service.js";

export function registerMediaHashMetrics(registry: Registry, stats: MediaHashingStats): void {
  const registers = [registry];
  new Gauge({
    name: "mxcd_media_hash_queue",
    help: "Media items in the PDQ hashing queue: waiting (queued) and being hashed (running)",
    labelNames: ["state"],
    registers,
    collect() {
      this.set({ state: "queued" }, stats.queued);
      this.set({ state: "running" }, stats.running);
    },
  });
  new Counter({
    name: "mxcd_media_hash_outcomes_total",
    help: "PDQ hashing queue outcomes: hashed, no hash (reason stored), dropped (queue full)",
    labelNames: ["outcome"],
    registers,
    collect() {
      this.reset();
      this.inc({ outcome: "hashed" }, stats.hashed);
      this.inc({ outcome: "no_hash" }, stats.noHash);
      this.inc({ outcome: "dropped" }, stats.dropped);
    },
  });
}
