/**
 * Builds the federation side of a server from its config: our signing key
 * (loaded or created by `loadSigningKey`, called from start-up because it may
 * write the key file), the request signer, the key document, the one
 * outbound HTTP client with server discovery, the federation client, other
 * servers' keys and inbound X-Matrix authentication.
 */
import type { Config } from "../config/config-schema.js";
import type { Logger } from "../logging/logger.js";
import { systemDns } from "../net/dns.js";
import { addressPolicy } from "../net/ip-ranges.js";
import { OutboundHttp } from "../net/outbound-http.js";
import { FederationAuth } from "./federation-auth.js";
import { FederationClient } from "./federation-client.js";
import { FederationKeyFetcher, KeyRing } from "./key-ring.js";
import { ServerKeys } from "./server-keys.js";
import { HttpWellKnownFetcher, ServerResolver } from "./server-resolver.js";
import { type SigningKey, SigningKeyFile } from "./signing-key.js";
import { RequestSigner } from "./x-matrix.js";

export interface Federation {
  /** Signs outbound requests; usable once `loadSigningKey` resolved. */
  readonly signer: RequestSigner;
  /** Our self-signed key document (`/_matrix/key/v2/server`). */
  readonly serverKeys: ServerKeys;
  /** The one outbound HTTP client (address policy, size caps, timeouts). */
  readonly outbound: OutboundHttp;
  /** Signed requests to other servers, with server discovery. */
  readonly client: FederationClient;
  /** Other servers' verify keys. */
  readonly keyRing: KeyRing;
  /** Checks the X-Matrix signature of inbound requests. */
  readonly auth: FederationAuth;
  /** Reads our key file, or creates it (writes to disk). */
  loadSigningKey(): Promise<SigningKey>;
}

export function createFederation(config: Config, logger: Logger): Federation {
  const serverName = config.server_name;
  // Attached: the key must be one the homeserver publishes, so a missing file
  // is an error rather than a fresh key nobody knows (docs/attached.md).
  const signingKeyFile = new SigningKeyFile(config.signing_key_path, config.mode !== "attached");
  const signer = new RequestSigner(serverName, signingKeyFile.current);
  const serverKeys = new ServerKeys({
    serverName,
    signingKey: signingKeyFile.current,
    oldKeys: config.old_signing_keys,
    validityMs: config.key_refresh_interval,
  });
  // docs/configuration.md, "Federation: outbound requests".
  const outbound = new OutboundHttp({
    policy: addressPolicy(config.ip_range_blacklist, config.ip_range_whitelist),
    verifyCertificates: config.federation_verify_certificates,
    defaultTimeoutMs: config.federation_request_timeout,
  });
  const client = new FederationClient({
    resolver: new ServerResolver({
      dns: systemDns,
      wellKnown: new HttpWellKnownFetcher(outbound),
      customResolvers: config.federation_custom_resolvers,
    }),
    http: outbound,
    signer,
    timeoutMs: config.federation_request_timeout,
  });
  // Other servers' keys are fetched through the outbound client too.
  const keyRing = new KeyRing({
    fetcher: new FederationKeyFetcher(client),
    trustedKeyServers: config.trusted_key_servers,
    logger,
  });
  return {
    signer,
    serverKeys,
    outbound,
    client,
    keyRing,
    auth: new FederationAuth(serverName, keyRing),
    loadSigningKey: () => signingKeyFile.load(),
  };
}
