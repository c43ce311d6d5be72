/**
 * Builds the application-service receiver from the config (`app_service.
 * registration`, docs/configuration.md): reads the registration file that
 * `mxcd appservice generate-registration` wrote (the same file the
 * homeserver reads, so the tokens cannot drift) and wires the receiver to the
 * media-reference index and media_redaction_policy. Called once by the
 * composition root.
 */
import { readFileSync } from "node:fs";
import type { Config } from "../config/config-schema.js";
import type { Database } from "../db/database.js";
import type { Logger } from "../logging/logger.js";
import { AppServiceEventRepository } from "../repositories/app-service-event-repository.js";
import type { MediaReferenceRepository } from "../repositories/media-reference-repository.js";
import { RoomHistoryBackfillRepository } from "../repositories/room-history-backfill-repository.js";
import type { LocalMediaModeration } from "../rooms/local-media-moderation.js";
import { MediaRedactionPolicy } from "../rooms/media-redaction-policy.js";
import { AppServiceReceiver } from "./app-service-receiver.js";
import { parseRegistration } from "./app-service-registration.js";

/** Inputs of `createAppServiceReceiver`. */
export interface AppServiceIntakeOptions {
  readonly config: Pick<Config, "server_name" | "media_redaction_policy" | "admins">;
  /** `app_service.registration`: the registration file's path. */
  readonly registrationPath: string;
  readonly database: Database;
  readonly references: MediaReferenceRepository;
  readonly moderation: LocalMediaModeration;
  readonly logger: Logger;
}

/** The receiver; throws an Error naming the file when the registration is unreadable or invalid. */
export function createAppServiceReceiver(options: AppServiceIntakeOptions): AppServiceReceiver {
  const { config, database, references, logger } = options;
  let registration: ReturnType<typeof parseRegistration>;
  try {
    registration = parseRegistration(readFileSync(options.registrationPath, "utf8"));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`app_service.registration (${options.registrationPath}): ${reason}`);
  }
  const redactionPolicy = new MediaRedactionPolicy(
    config.media_redaction_policy,
    config.server_name,
    references,
    options.moderation,
    logger,
  );
  return new AppServiceReceiver({
    asId: registration.id,
    hsToken: registration.hs_token,
    database,
    events: new AppServiceEventRepository(),
    references,
    redactionPolicy,
    logger,
    now: Date.now,
    admins: new Set(config.admins ?? []),
    roomHistory: new RoomHistoryBackfillRepository(database),
  });
}
