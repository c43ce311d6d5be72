/**
 * The MD5 worker pool's figures on `/metrics`, read when scraped
 * (docs/media.md "Hashes while streaming"):
 * - `mxcd_upload_md5_workers`: MD5 worker threads alive (0 until the first
 *   large upload; at most the number of cores);
 * - `mxcd_upload_md5_sessions`: uploads whose MD5 runs on a worker now;
 * - `mxcd_upload_md5_worker_bytes_total`: bytes hashed on workers;
 * - `mxcd_upload_md5_main_thread_total`: uploads small enough to be hashed
 *   on the main thread;
 * - `mxcd_upload_md5_worker_failures_total`: workers that died (each fails
 *   the uploads it served; the next upload starts a new one).
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { Md5WorkerPool } from "./md5-worker-pool.js";

export function registerMd5WorkerMetrics(
  registry: Registry,
  pool: Pick<Md5WorkerPool, "stats">,
): void {
  const registers = [registry];
  new Gauge({
    name: "mxcd_upload_md5_workers",
    help: "MD5 worker threads alive (started by the first large upload)",
    registers,
    collect() {
      this.set(pool.stats.workers);
    },
  });
  new Gauge({
    name: "mxcd_upload_md5_sessions",
    help: "Uploads and remote fetches whose MD5 runs on a worker thread now",
    registers,
    collect() {
      this.set(pool.stats.sessions);
    },
  });
  new Counter({
    name: "mxcd_upload_md5_worker_bytes_total",
    help: "Bytes of uploads and remote fetches whose MD5 was computed on a worker thread",
    registers,
    collect() {
      this.reset();
      this.inc(pool.stats.offloadedBytes);
    },
  });
  new Counter({
    name: "mxcd_upload_md5_main_thread_total",
    help: "Uploads and remote fetches small enough for their MD5 on the main thread",
    registers,
    collect() {
      this.reset();
      this.inc(pool.stats.mainThreadUploads);
    },
  });
  new Counter({
    name: "mxcd_upload_md5_worker_failures_total",
    help: "MD5 worker threads that died (the uploads they served failed)",
    registers,
    collect() {
      this.reset();
      this.inc(pool.stats.workerFailures);
    },
  });
}
