/**
 * Other servers' verify keys, for checking their X-Matrix requests (Matrix
 * spec, server-server API "Retrieving server keys"; reference §4.4).
 *
 * Design note: keys are cached in memory per server and key id until
 * min(valid_until_ts, fetch time + 7 days). A key id we do not hold
 * triggers a fetch of the server's key document, straight from the server
 * first and, when that fails, through the `trusted_key_servers` notaries
 * (whose answers must carry both the server's self-signature and the
 * notary's). Every fetch outcome, good or bad, starts a short quiet period
 * for that server (`retryIntervalMs`): a stream of requests naming made-up
 * key ids or unreachable origins costs one outbound fetch per server per
 * period, not one per request. Concurrent look-ups of one server share one
 * fetch. A failed fetch never evicts keys that are still valid.
 */
import type { KeyObject } from "node:crypto";
import type { Logger } from "../logging/logger.js";
import { SingleFlight } from "../util/single-flight.js";
import { ed25519PublicKeyFromBase64 } from "./json-signing.js";
import { isSignedBy, type TrustedKey, validateServerKeyDocument } from "./server-keys.js";

/** How key documents are fetched: the outbound federation client implements it. */
export interface ServerKeyFetcher {
  /** The JSON body of `GET /_matrix/key/v2/server` on `serverName`; throws on any failure. */
  fetchServerKeys(serverName: string): Promise<unknown>;
  /** The JSON body of `GET /_matrix/key/v2/query/{serverName}` on `notary`; throws on failure. */
  queryNotary(notary: string, serverName: string): Promise<unknown>;
}

/** A notary from `trusted_key_servers` (Synapse's option and shape). */
export interface TrustedKeyServer {
  readonly server_name: string;
  /** Key id → unpadded base64 public key; absent: the notary's keys are fetched from it. */
  readonly verify_keys?: Readonly<Record<string, string>>;
}

export interface KeyRingOptions {
  readonly fetcher: ServerKeyFetcher;
  readonly trustedKeyServers?: readonly TrustedKeyServer[];
  readonly logger?: Logger;
  readonly now?: () => number;
  /** Quiet period after a fetch of a server, in ms; default 30 s. */
  readonly retryIntervalMs?: number;
}

/** Past this many servers, expired entries are swept before adding more. */
const SWEEP_THRESHOLD = 10_000;

/** The verify keys of remote servers, fetched on demand and cached. */
export class KeyRing {
  readonly #fetcher: ServerKeyFetcher;
  readonly #notaries: readonly { name: string; keys?: Map<string, KeyObject> }[];
  readonly #logger: Logger | undefined;
  readonly #now: () => number;
  readonly #retryIntervalMs: number;
  readonly #keys = new Map<string, Map<string, TrustedKey>>();
  readonly #lastFetch = new Map<string, number>();
  readonly #flights = new SingleFlight<string, void>();

  constructor(options: KeyRingOptions) {
    this.#fetcher = options.fetcher;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
    this.#retryIntervalMs = options.retryIntervalMs ?? 30_000;
    this.#notaries = (options.trustedKeyServers ?? []).map((notary) => ({
      name: notary.server_name,
      keys: notary.verify_keys && configuredKeys(notary.server_name, notary.verify_keys),
    }));
  }

  /**
   * The public key `keyId` of `serverName` valid now for request signatures,
   * fetching the server's keys when it is not cached; undefined when it
   * cannot be had (unknown id, unreachable server, invalid documents).
   * Never throws for a remote failure.
   */
  async getVerifyKey(serverName: string, keyId: string): Promise<KeyObject | undefined> {
    const cached = this.#cached(serverName, keyId);
    if (cached || !this.#mayFetch(serverName)) return cached;
    await this.#flights.run(`any ${serverName}`, () => this.#refresh(serverName, true));
    return this.#cached(serverName, keyId);
  }

  #cached(serverName: string, keyId: string): KeyObject | undefined {
    const entry = this.#keys.get(serverName)?.get(keyId);
    return entry && entry.expiresAt > this.#now() ? entry.publicKey : undefined;
  }

  #mayFetch(serverName: string): boolean {
    const last = this.#lastFetch.get(serverName);
    return last === undefined || this.#now() - last >= this.#retryIntervalMs;
  }

  /** Fetches the keys of a server (directly, then through notaries if allowed) into the cache. */
  async #refresh(serverName: string, allowNotaries: boolean): Promise<void> {
    let keys: Map<string, TrustedKey> | undefined;
    try {
      const body = await this.#fetcher.fetchServerKeys(serverName);
      keys = validateServerKeyDocument(body, serverName, this.#now());
    } catch (error) {
      this.#logger?.warn({ err: error, server_name: serverName }, "fetching server keys failed");
      if (allowNotaries) keys = await this.#fromNotaries(serverName);
    }
    this.#sweep();
    this.#lastFetch.set(serverName, this.#now());
    if (keys) this.#keys.set(serverName, new Map([...(this.#keys.get(serverName) ?? []), ...keys]));
  }

  /** The server's keys from the first notary that gives a valid, doubly signed answer. */
  async #fromNotaries(serverName: string): Promise<Map<string, TrustedKey> | undefined> {
    for (const notary of this.#notaries) {
      if (notary.name === serverName) continue;
      try {
        const body = await this.#fetcher.queryNotary(notary.name, serverName);
        const notaryKeys = notary.keys ?? (await this.#currentKeys(notary.name));
        const keys = this.#validateNotaryAnswer(body, serverName, notary.name, notaryKeys);
        if (keys.size > 0) return keys;
        this.#logger?.warn({ notary: notary.name, server_name: serverName }, "no valid keys");
      } catch (error) {
        this.#logger?.warn({ err: error, notary: notary.name }, "querying a notary failed");
      }
    }
    return undefined;
  }

  /** The valid keys of every `server_keys` entry signed by both the server and the notary. */
  #validateNotaryAnswer(
    body: unknown,
    serverName: string,
    notary: string,
    notaryKeys: ReadonlyMap<string, KeyObject>,
  ): Map<string, TrustedKey> {
    const keys = new Map<string, TrustedKey>();
    const documents = (body as { server_keys?: unknown } | null)?.server_keys;
    if (!Array.isArray(documents)) return keys;
    for (const document of documents) {
      try {
        const found = validateServerKeyDocument(document, serverName, this.#now());
        if (!isSignedBy(document, notary, notaryKeys)) continue;
        for (const [keyId, key] of found) keys.set(keyId, key);
      } catch {
        // An entry for another server, expired or badly signed: skip it.
      }
    }
    return keys;
  }

  /** A notary's own current keys, fetched straight from it (never through notaries). */
  async #currentKeys(serverName: string): Promise<Map<string, KeyObject>> {
    const valid = () => {
      const now = this.#now();
      const entries = [...(this.#keys.get(serverName) ?? [])].filter(([, k]) => k.expiresAt > now);
      return new Map(entries.map(([keyId, k]) => [keyId, k.publicKey]));
    };
    const cached = valid();
    if (cached.size > 0 || !this.#mayFetch(serverName)) return cached;
    await this.#flights.run(`direct ${serverName}`, () => this.#refresh(serverName, false));
    return valid();
  }

  /** Bounds memory when many servers are seen: drops expired keys and old quiet periods. */
  #sweep(): void {
    if (this.#keys.size < SWEEP_THRESHOLD && this.#lastFetch.size < SWEEP_THRESHOLD) return;
    const now = this.#now();
    for (const [server, keys] of this.#keys) {
      for (const [keyId, key] of keys) if (key.expiresAt <= now) keys.delete(keyId);
      if (keys.size === 0) this.#keys.delete(server);
    }
    for (const [server, at] of this.#lastFetch) {
      if (now - at >= this.#retryIntervalMs) this.#lastFetch.delete(server);
    }
  }
}

/** The configured keys of a notary; a malformed one is a config error, thrown at start. */
function configuredKeys(notary: string, keys: Readonly<Record<string, string>>) {
  const parsed = new Map<string, KeyObject>();
  for (const [keyId, text] of Object.entries(keys)) {
    const publicKey = ed25519PublicKeyFromBase64(text);
    if (!publicKey) throw new Error(`trusted_key_servers: key ${keyId} of ${notary} is not valid`);
    parsed.set(keyId, publicKey);
  }
  return parsed;
}

/** The slice of FederationClient that fetching keys needs. */
export interface JsonGetter {
  getJson(
    destination: string,
    pathAndQuery: string,
    options: { signed?: boolean; maxBytes?: number },
  ): Promise<{ readonly json: unknown }>;
}

/** `ServerKeyFetcher` over the outbound federation client (discovery, address policy, caps). */
export class FederationKeyFetcher implements ServerKeyFetcher {
  constructor(private readonly client: JsonGetter) {}

  async fetchServerKeys(serverName: string): Promise<unknown> {
    // Key endpoints need no authentication (spec "Publishing Keys").
    const response = await this.client.getJson(serverName, "/_matrix/key/v2/server", {
      signed: false,
      maxBytes: 256 * 1024,
    });
    return response.json;
  }

  async queryNotary(notary: string, serverName: string): Promise<unknown> {
    const path = `/_matrix/key/v2/query/${encodeURIComponent(serverName)}`;
    const response = await this.client.getJson(notary, path, { signed: false });
    return response.json;
  }
}
