/**
 * Server discovery: where to send a federation request for a server name,
 * and which Host header and TLS name to use (Matrix spec §4.5).
 *
 * Design notes:
 * - Steps, in order: `federation_custom_resolvers` (no discovery); 1. IP
 *   literal; 2. hostname with a port; 3. `.well-known/matrix/server`
 *   delegation, whose value is resolved by its sub-steps 3.1–3.5; 4. SRV
 *   `_matrix-fed._tcp`; 5. (deprecated) SRV `_matrix._tcp`; 6. port 8448.
 * - A/AAAA lookups are not done here: `baseUrl` keeps the host name and
 *   OutboundHttp resolves (and checks) it when it connects, so the address
 *   checked is the address used.
 * - Only well-known answers are cached (WellKnownCache). SRV answers are
 *   looked up per resolve; a failed SRV lookup (SERVFAIL, timeout) counts
 *   as "no record" so that a resolver that fails unknown names (container
 *   DNS, Complement's `hs1`) does not block the fallback to 8448.
 * - An SRV answer whose only target is "." means "no service here" (RFC
 *   2782) and fails the resolution instead of falling through.
 */
import { isIP } from "node:net";
import type { Readable } from "node:stream";
import { cacheLifetimeMs } from "../net/cache-control.js";
import { type Dns, pickSrvRecord, type SrvRecord } from "../net/dns.js";
import { formatHost, formatHostPort, type HostPort, parseHostPort } from "../net/host-port.js";
import { readAll } from "../net/json-response.js";
import { OutboundHttpError } from "../net/outbound-errors.js";
import type { OutboundHttp } from "../net/outbound-http.js";
import { SingleFlight } from "../util/single-flight.js";

/** Where and how to reach a server. */
export interface ResolvedServer {
  /** `https://<ip-or-host>:<port>` (no trailing slash); custom resolvers may give http. */
  readonly baseUrl: string;
  /** The Host header to send. */
  readonly hostHeader: string;
  /** SNI and the name the certificate must match; undefined: none, check the IP. */
  readonly tlsServerName: string | undefined;
}

/** The server name is malformed, or its SRV records say it has no federation service. */
export class UnresolvableServerError extends OutboundHttpError {}

export interface ServerResolverOptions {
  readonly dns: Pick<Dns, "resolveSrv">;
  readonly wellKnown: WellKnownFetcher;
  /** `federation_custom_resolvers`: server name → base URL, used with no discovery. */
  readonly customResolvers?: Readonly<Record<string, string>>;
  /** Clock for the well-known cache; default Date.now. */
  readonly now?: () => number;
  /** Random source for SRV weights; default Math.random. */
  readonly random?: () => number;
}

const DEFAULT_PORT = 8448;

export class ServerResolver {
  readonly #dns: Pick<Dns, "resolveSrv">;
  readonly #wellKnown: WellKnownCache;
  readonly #custom: ReadonlyMap<string, string>;
  readonly #random: () => number;

  constructor(options: ServerResolverOptions) {
    this.#dns = options.dns;
    this.#wellKnown = new WellKnownCache(options.wellKnown, options.now ?? Date.now);
    this.#custom = new Map(Object.entries(options.customResolvers ?? {}));
    this.#random = options.random ?? Math.random;
  }

  /**
   * Resolves `serverName` by spec §4.5 (see the design notes). Rejects with
   * UnresolvableServerError for a malformed name or an explicit "no
   * service" SRV answer; well-known failures fall through to SRV and 8448.
   */
  async resolve(serverName: string): Promise<ResolvedServer> {
    const custom = this.#custom.get(serverName);
    if (custom !== undefined) return fromBaseUrl(custom);
    const name = parseHostPort(serverName);
    if (!name) throw new UnresolvableServerError("not a valid server name", serverName);
    // Step 1: IP literal. Host is the server name, port included if given.
    if (name.ipFamily !== 0) return direct(name, serverName, undefined);
    // Step 2: hostname with an explicit port.
    if (name.port !== undefined) return direct(name, serverName, name.host);
    // Step 3: well-known delegation.
    const delegated = parseHostPort((await this.#wellKnown.get(name.host)) ?? "");
    if (delegated) return this.#resolveDelegated(delegated);
    // Steps 4-6, for the server's own hostname.
    return this.#srvOrDefault(name.host, serverName);
  }

  /** Step 3 sub-steps for a valid `m.server` value. */
  #resolveDelegated(delegated: HostPort): Promise<ResolvedServer> | ResolvedServer {
    const hostPort = formatHostPort(delegated.host, delegated.port);
    // 3.1: IP literal; Host is the IP plus the port if one was given.
    if (delegated.ipFamily !== 0) return direct(delegated, hostPort, undefined);
    // 3.2: hostname with a port.
    if (delegated.port !== undefined) return direct(delegated, hostPort, delegated.host);
    // 3.3-3.5: SRV _matrix-fed, SRV _matrix, then 8448, Host the delegated host.
    return this.#srvOrDefault(delegated.host, delegated.host);
  }

  /** Steps 4-6 (and 3.3-3.5): SRV `_matrix-fed._tcp`, SRV `_matrix._tcp`, port 8448. */
  async #srvOrDefault(host: string, hostHeader: string): Promise<ResolvedServer> {
    for (const service of ["_matrix-fed._tcp", "_matrix._tcp"]) {
      const records = await this.#lookupSrv(`${service}.${host}`);
      if (records.length === 0) continue;
      const chosen = pickSrvRecord(records, this.#random);
      if (!chosen) throw new UnresolvableServerError(`${service} says no service`, host);
      const target = chosen.name.replace(/\.$/, "");
      return {
        baseUrl: `https://${formatHostPort(target, chosen.port)}`,
        hostHeader,
        tlsServerName: host,
      };
    }
    return {
      baseUrl: `https://${formatHostPort(host, DEFAULT_PORT)}`,
      hostHeader,
      tlsServerName: host,
    };
  }

  async #lookupSrv(name: string): Promise<SrvRecord[]> {
    try {
      return await this.#dns.resolveSrv(name);
    } catch {
      return [];
    }
  }
}

/** Steps 1, 2, 3.1, 3.2: connect to the host itself, on its port or 8448. */
function direct(name: HostPort, hostHeader: string, tlsServerName: string | undefined) {
  const baseUrl = `https://${formatHostPort(name.host, name.port ?? DEFAULT_PORT)}`;
  return { baseUrl, hostHeader, tlsServerName };
}

/** A custom resolver's base URL: talk to it as to any URL (its host is the Host header). */
function fromBaseUrl(value: string): ResolvedServer {
  const url = new URL(value);
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const tlsServerName = isIP(hostname) === 0 ? hostname : undefined;
  return { baseUrl: url.origin, hostHeader: url.host, tlsServerName };
}

/** The outcome of one `.well-known/matrix/server` fetch. */
export interface WellKnownResult {
  /** The valid `m.server` value; undefined when the answer was invalid (spec: go to step 4). */
  readonly server: string | undefined;
  /** Freshness from Cache-Control, if it gave one. */
  readonly cacheMs: number | undefined;
}

/** Fetches `https://<host>/.well-known/matrix/server`; rejects on transport failure or 5xx. */
export interface WellKnownFetcher {
  fetch(host: string): Promise<WellKnownResult>;
}

const WELL_KNOWN_MAX_BYTES = 50 * 1024; // as Synapse
const WELL_KNOWN_TIMEOUT_MS = 10_000;
const MAX_REDIRECTS = 5;

/** The real fetcher, over OutboundHttp (address policy and TLS rules apply). */
export class HttpWellKnownFetcher implements WellKnownFetcher {
  readonly #http: Pick<OutboundHttp, "request">;
  constructor(http: Pick<OutboundHttp, "request">) {
    this.#http = http;
  }

  /** Follows up to 5 https redirects (no loops, no downgrade); validates `m.server`. */
  async fetch(host: string): Promise<WellKnownResult> {
    let url: URL | undefined = new URL(`https://${formatHost(host)}/.well-known/matrix/server`);
    const seen = new Set<string>();
    while (url && seen.size <= MAX_REDIRECTS && !seen.has(url.href)) {
      seen.add(url.href);
      const response = await this.#http.request({
        url,
        timeoutMs: WELL_KNOWN_TIMEOUT_MS,
        maxBytes: WELL_KNOWN_MAX_BYTES,
        headers: { accept: "application/json" },
      });
      const { status, headers, body } = response;
      if (status >= 300 && status < 400 && headers.location) {
        body.destroy();
        url = redirectTarget(headers.location, url);
        continue;
      }
      if (status >= 500) {
        body.destroy();
        throw new OutboundHttpError(`well-known answered ${status}`, host);
      }
      const server = await validServer(status, body);
      return { server, cacheMs: cacheLifetimeMs(headers["cache-control"]) };
    }
    return { server: undefined, cacheMs: undefined }; // a loop or too many redirects
  }
}

/** An https redirect target; undefined for a malformed or non-https Location. */
function redirectTarget(location: string, base: URL): URL | undefined {
  try {
    const next = new URL(location, base);
    return next.protocol === "https:" ? next : undefined;
  } catch {
    return undefined;
  }
}

/** The `m.server` of a 200 JSON body, if valid; undefined otherwise. */
async function validServer(status: number, body: Readable) {
  let text: string;
  try {
    text = (await readAll(body)).toString("utf8");
  } catch {
    return undefined; // too large or cut off: an invalid answer
  }
  if (status !== 200) return undefined;
  try {
    const server = (JSON.parse(text) as Record<string, unknown> | null)?.["m.server"];
    return typeof server === "string" && parseHostPort(server) ? server : undefined;
  } catch {
    return undefined;
  }
}

const HOUR = 3_600_000;
const CACHE_DEFAULT_MS = 24 * HOUR;
const CACHE_MAX_MS = 48 * HOUR;
const CACHE_MIN_MS = 5 * 60_000; // as Synapse: even `no-store` is kept 5 minutes
const INVALID_CACHE_MS = HOUR;
const FAILURE_BACKOFF_MS = 2 * 60_000;
const MAX_ENTRIES = 10_000;

interface CacheEntry {
  readonly server: string | undefined;
  readonly expiresAt: number;
  /** Consecutive failed fetches, for the backoff. */
  readonly failures: number;
}

/**
 * Spec §4.5 step 3 caching: valid answers per Cache-Control (24 h default,
 * 48 h at most); invalid answers 1 h; failures with backoff from 2 minutes
 * doubling to 1 h. Concurrent lookups of one host share one fetch.
 */
class WellKnownCache {
  readonly #entries = new Map<string, CacheEntry>();
  readonly #inFlight = new SingleFlight<string, string | undefined>();
  readonly #fetcher: WellKnownFetcher;
  readonly #now: () => number;

  constructor(fetcher: WellKnownFetcher, now: () => number) {
    this.#fetcher = fetcher;
    this.#now = now;
  }

  /** The delegated server of `host`, or undefined when it has none (or it failed). */
  get(host: string): Promise<string | undefined> {
    const key = host.toLowerCase();
    const entry = this.#entries.get(key);
    if (entry && entry.expiresAt > this.#now()) return Promise.resolve(entry.server);
    return this.#inFlight.run(key, () => this.#refresh(key, host, entry?.failures ?? 0));
  }

  async #refresh(key: string, host: string, failures: number) {
    let entry: CacheEntry;
    try {
      const result = await this.#fetcher.fetch(host);
      const ttl = result.server === undefined ? INVALID_CACHE_MS : validTtl(result.cacheMs);
      entry = { server: result.server, expiresAt: this.#now() + ttl, failures: 0 };
    } catch {
      const backoff = Math.min(HOUR, FAILURE_BACKOFF_MS * 2 ** Math.min(failures, 10));
      entry = { server: undefined, expiresAt: this.#now() + backoff, failures: failures + 1 };
    }
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    if (this.#entries.size > MAX_ENTRIES) this.#entries.delete(this.#entries.keys().next().value!);
    return entry.server;
  }
}

function validTtl(cacheMs: number | undefined): number {
  if (cacheMs === undefined) return CACHE_DEFAULT_MS;
  return Math.min(CACHE_MAX_MS, Math.max(CACHE_MIN_MS, cacheMs));
}
