/**
 * The DNS seam of outbound HTTP and federation server discovery. The system
 * implementation uses node:dns; tests inject a small in-memory table, so no
 * test ever depends on real DNS.
 */
import { promises as dnsPromises } from "node:dns";

/** One address a host name resolves to. */
export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** One SRV record (RFC 2782). */
export interface SrvRecord {
  readonly name: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
}

export interface Dns {
  /**
   * Every A/AAAA address of `hostname` (CNAMEs followed). Rejects when the
   * name does not resolve; `code` on the error carries the resolver's code.
   */
  lookup(hostname: string): Promise<ResolvedAddress[]>;
  /** SRV records of `name`; `[]` when the name has none (NXDOMAIN or no data). */
  resolveSrv(name: string): Promise<SrvRecord[]>;
}

/** Codes meaning "this name has no such records", as opposed to a resolver failure. */
const NO_RECORDS = new Set(["ENOTFOUND", "ENODATA", "ENONAME"]);

/** The system resolver: getaddrinfo for addresses (as connections would), c-ares for SRV. */
export const systemDns: Dns = {
  async lookup(hostname) {
    const results = await dnsPromises.lookup(hostname, { all: true, verbatim: true });
    return results.map((r) => ({ address: r.address, family: r.family === 6 ? 6 : 4 }));
  },
  async resolveSrv(name) {
    try {
      return await dnsPromises.resolveSrv(name);
    } catch (error) {
      if (NO_RECORDS.has((error as NodeJS.ErrnoException).code ?? "")) return [];
      throw error;
    }
  },
};

/**
 * RFC 2782 choice: the lowest priority, then weighted-random among equals.
 * Undefined when every record's target is "." (service not available).
 */
export function pickSrvRecord(
  records: readonly SrvRecord[],
  random: () => number = Math.random,
): SrvRecord | undefined {
  const usable = records.filter((r) => r.name !== "." && r.name !== "");
  if (usable.length === 0) return undefined;
  const best = Math.min(...usable.map((r) => r.priority));
  const group = usable.filter((r) => r.priority === best);
  const total = group.reduce((sum, r) => sum + r.weight, 0);
  let ticket = random() * total;
  for (const record of group) {
    ticket -= record.weight;
    if (ticket < 0) return record;
  }
  return group[0];
}
