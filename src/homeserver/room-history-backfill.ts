/**
 * Whether the room-history backfill runs, and the homeserver reader it
 * uses (docs/attached.md "Backfilling rooms from before the application
 * service"). Shared by the server (src/app.ts) and `mxcd jobs`, so both see
 * the same job.
 *
 * The backfill runs in attached mode with an application service
 * (`app_service`) when `app_service.backfill` is `admin_api` — its default
 * when `homeserver.admin_access_token` is set. Without the application
 * service a backfilled index would go stale at once, so there is no
 * backfill without it.
 */
import type { Config } from "../config/config-schema.js";
import { addressPolicy } from "../net/ip-ranges.js";
import { OutboundHttp } from "../net/outbound-http.js";
import { HomeserverClient } from "./homeserver-client.js";
import { HomeserverRoomHistory } from "./homeserver-room-history.js";

type BackfillConfig = Pick<Config, "mode" | "homeserver" | "app_service">;

/** `app_service.backfill` as it applies: `none` outside attached mode or without an application service. */
export function roomHistoryBackfillSetting(config: BackfillConfig): "admin_api" | "none" {
  if (config.mode !== "attached" || !config.app_service || !config.homeserver) return "none";
  const token = config.homeserver.admin_access_token;
  return config.app_service.backfill ?? (token === null ? "none" : "admin_api");
}

/** The homeserver reader of the backfill, and what closes its connections. */
export interface RoomHistorySource {
  readonly history: HomeserverRoomHistory;
  close(): void;
}

/**
 * The reader when the backfill runs, else undefined. It has its own client
 * and failure breaker, so a homeserver answering the admin API badly never
 * makes token checks fail fast. Like the tenant's, its connections go only to
 * `homeserver.base_url`, an address from the admin's config.
 */
export function createRoomHistorySource(config: BackfillConfig): RoomHistorySource | undefined {
  const settings = config.homeserver;
  const token = settings?.admin_access_token;
  if (roomHistoryBackfillSetting(config) !== "admin_api" || !settings || !token) return undefined;
  const transport = new OutboundHttp({
    policy: addressPolicy([], ["0.0.0.0/0", "::/0"]),
    defaultTimeoutMs: settings.request_timeout,
  });
  const client = new HomeserverClient({
    baseUrl: settings.base_url,
    timeoutMs: settings.request_timeout,
    failureThreshold: settings.failure_threshold,
    transport,
  });
  return { history: new HomeserverRoomHistory(client, token), close: () => transport.close() };
}
