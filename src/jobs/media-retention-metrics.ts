/**
 * The `media-retention` job's counts on `/metrics` (docs/media.md
 * "Retention"), read when scraped, for this process's batches since start:
 * - `mxcd_media_retention_deleted_total{kind="local"|"remote"}`: media deleted;
 * - `mxcd_media_retention_deleted_bytes_total{kind}`: their bytes (originals);
 * - `mxcd_media_retention_spared_total{reason="avatar"|"exempt"}`: selected by
 *   age but kept (a current avatar; quarantined or protected after marking);
 * - `mxcd_media_retention_failed_total`: items whose files could not be deleted;
 * - `mxcd_media_retention_batches_total`: committed batches;
 * - `mxcd_media_retention_passes_total`: passes finished (every rule walked).
 */
import { Counter, type Registry } from "prom-client";
import type { MediaRetentionStats } from "./media-retention-job.js";

export function registerMediaRetentionMetrics(
  registry: Registry,
  stats: MediaRetentionStats,
): void {
  const registers = [registry];
  new Counter({
    name: "mxcd_media_retention_deleted_total",
    help: "Media deleted by the media-retention job, by kind (local, remote)",
    labelNames: ["kind"],
    registers,
    collect() {
      this.reset();
      this.inc({ kind: "local" }, stats.deleted.local);
      this.inc({ kind: "remote" }, stats.deleted.remote);
    },
  });
  new Counter({
    name: "mxcd_media_retention_deleted_bytes_total",
    help: "Bytes of the originals the media-retention job deleted, by kind (local, remote)",
    labelNames: ["kind"],
    registers,
    collect() {
      this.reset();
      this.inc({ kind: "local" }, stats.bytes.local);
      this.inc({ kind: "remote" }, stats.bytes.remote);
    },
  });
  new Counter({
    name: "mxcd_media_retention_spared_total",
    help: "Media old enough to go that retention kept: a current avatar, or exempt since marked",
    labelNames: ["reason"],
    registers,
    collect() {
      this.reset();
      this.inc({ reason: "avatar" }, stats.spared.avatar);
      this.inc({ reason: "exempt" }, stats.spared.exempt);
    },
  });
  new Counter({
    name: "mxcd_media_retention_failed_total",
    help: "Media the media-retention job could not delete (files kept; retried next pass)",
    registers,
    collect() {
      this.reset();
      this.inc(stats.failed);
    },
  });
  new Counter({
    name: "mxcd_media_retention_batches_total",
    help: "Committed batches of the media-retention job",
    registers,
    collect() {
      this.reset();
      this.inc(stats.batches);
    },
  });
  new Counter({
    name: "mxcd_media_retention_passes_total",
    help: "Passes of the media-retention job finished in this process (every rule walked)",
    registers,
    collect() {
      this.reset();
      this.inc(stats.passes);
    },
  });
}
