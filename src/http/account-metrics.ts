/**
 * Login and password-hashing metrics, read from their sources when scraped:
 *
 * - `mxcd_password_hash_total{op}`: KDF runs completed, `op` = `hash`
 *   (a new password) or `verify` (a login; one per attempt, known user or not);
 * - `mxcd_password_hash_jobs{state}`: hashes `running` on the worker pool
 *   and `queued` for it;
 * - `mxcd_password_hash_rejected_total`: hashes refused with 429 because
 *   the queue was full;
 * - `mxcd_login_rate_limited_total{limit}`: logins refused by each
 *   `rc_login` limit (`address`, `account`, `failed_attempts`).
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { LoginRateLimits } from "../accounts/login-rate-limits.js";
import type { PasswordHashCounts } from "../accounts/password-hash.js";
import type { PasswordHashPoolStats } from "../accounts/password-hash-pool.js";

export interface AccountMetricSources {
  readonly hasher: { readonly counts: PasswordHashCounts };
  readonly pool: { readonly stats: PasswordHashPoolStats };
  readonly loginLimits: Pick<LoginRateLimits, "refused">;
}

export function registerAccountMetrics(registry: Registry, sources: AccountMetricSources): void {
  const registers = [registry];
  new Counter({
    name: "mxcd_password_hash_total",
    help: "Password KDF runs completed, by operation (hash a new password, verify a login)",
    labelNames: ["op"],
    registers,
    collect() {
      const { hashes, verifications } = sources.hasher.counts;
      this.reset();
      this.inc({ op: "hash" }, hashes);
      this.inc({ op: "verify" }, verifications);
    },
  });
  new Gauge({
    name: "mxcd_password_hash_jobs",
    help: "Password hashes running on the hash worker pool, or queued for it",
    labelNames: ["state"],
    registers,
    collect() {
      const { running, queued } = sources.pool.stats;
      this.set({ state: "running" }, running);
      this.set({ state: "queued" }, queued);
    },
  });
  new Counter({
    name: "mxcd_password_hash_rejected_total",
    help: "Password hashes refused with 429 because the hash queue was full",
    registers,
    collect() {
      this.reset();
      this.inc(sources.pool.stats.rejected);
    },
  });
  new Counter({
    name: "mxcd_login_rate_limited_total",
    help: "Login requests refused with 429 by each rc_login limit",
    labelNames: ["limit"],
    registers,
    collect() {
      this.reset();
      for (const [limit, count] of Object.entries(sources.loginLimits.refused)) {
        this.inc({ limit }, count);
      }
    },
  });
}
