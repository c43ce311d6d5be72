/**
 * A tenant of the attached shape: one server name mxcd serves, with the
 * homeserver behind it (attached-mode.md §8.1). Built once at start-up from
 * the config; requests are matched to their tenant by the composition root.
 * One tenant today; several server names (a `homeservers:` list chosen by
 * Host) can come later without changing what a tenant holds.
 */
import type { OutboundHttp } from "../net/outbound-http.js";
import { HomeserverClient } from "./homeserver-client.js";
import { type AdminApi, RemoteAuthenticator } from "./remote-authenticator.js";

export interface Tenant {
  /** The homeserver's `server_name` (the domain of its users and `mxc://` URIs). */
  readonly serverName: string;
  /** JSON requests to the homeserver's internal address. */
  readonly homeserver: HomeserverClient;
  /** Access tokens and admins, as the homeserver vouches (cached). */
  readonly identity: RemoteAuthenticator;
}

export interface TenantSettings {
  readonly serverName: string;
  readonly baseUrl: string;
  readonly adminApi: AdminApi;
  readonly requestTimeoutMs: number;
  readonly failureThreshold: number;
  readonly admins: readonly string[];
  readonly cache: {
    readonly ttlMs: number;
    readonly negativeTtlMs: number;
    readonly adminTtlMs: number;
    readonly maxEntries: number;
  };
}

/** Builds a tenant; `transport` is an outbound client allowed to reach `baseUrl`. */
export function createTenant(settings: TenantSettings, transport: OutboundHttp): Tenant {
  const homeserver = new HomeserverClient({
    baseUrl: settings.baseUrl,
    timeoutMs: settings.requestTimeoutMs,
    failureThreshold: settings.failureThreshold,
    transport,
  });
  const identity = new RemoteAuthenticator({
    serverName: settings.serverName,
    homeserver,
    adminApi: settings.adminApi,
    admins: settings.admins,
    ...settings.cache,
  });
  return { serverName: settings.serverName, homeserver, identity };
}
