/**
 * Builds the room services over a database: called once by the composition
 * root (src/app.ts) and by tests. `moderation` is the media service's side of
 * the redaction policy; without it a `quarantine`/`delete` policy only logs.
 */
import type { AccountService } from "../accounts/account-service.js";
import type { Config } from "../config/config-schema.js";
import type { Database } from "../db/database.js";
import type { Logger } from "../logging/logger.js";
import { EventRepository } from "../repositories/event-repository.js";
import { MediaReferenceRepository } from "../repositories/media-reference-repository.js";
import { RoomRepository } from "../repositories/room-repository.js";
import { RoomStateRepository } from "../repositories/room-state-repository.js";
import { EventWriter } from "./event-writer.js";
import type { LocalMediaModeration } from "./local-media-moderation.js";
import { MediaRedactionPolicy } from "./media-redaction-policy.js";
import type { ProfileLookup } from "./member-content.js";
import { MembershipService } from "./membership-service.js";
import { ProfileService } from "./profile-service.js";
import { RoomAccess } from "./room-access.js";
import { RoomAdminService } from "./room-admin-service.js";
import { RoomReadService } from "./room-read-service.js";
import { RoomService } from "./room-service.js";

/** Inputs of `createRoomServices`; `now` is for tests. */
export interface RoomServicesOptions {
  readonly config: Pick<Config, "server_name" | "media_redaction_policy">;
  readonly database: Database;
  readonly accounts: AccountService;
  readonly logger: Logger;
  readonly moderation?: LocalMediaModeration;
  readonly now?: () => number;
}

/** The room services the HTTP layer (and the media admin code) use. */
export interface RoomServices {
  readonly rooms: RoomService;
  readonly memberships: MembershipService;
  readonly reads: RoomReadService;
  readonly profiles: ProfileService;
  readonly admin: RoomAdminService;
  /** The media-reference index, for media admin code (room quarantine, keep_profiles). */
  readonly references: MediaReferenceRepository;
}

/** Wires repositories, the event writer, the redaction policy and the services. */
export function createRoomServices(options: RoomServicesOptions): RoomServices {
  const { database, accounts } = options;
  const serverName = options.config.server_name;
  const now = options.now ?? Date.now;
  const roomRepo = new RoomRepository(database);
  const events = new EventRepository(database);
  const state = new RoomStateRepository(database);
  const references = new MediaReferenceRepository(database);
  const access = new RoomAccess(roomRepo, state);
  const writer = new EventWriter({
    serverName,
    database,
    rooms: roomRepo,
    events,
    state,
    references,
    now,
  });
  const profiles: ProfileLookup = async (userId) => accounts.getUser(userId);
  const redactionPolicy = new MediaRedactionPolicy(
    options.config.media_redaction_policy,
    serverName,
    references,
    options.moderation,
    options.logger,
  );
  const rooms = new RoomService({
    serverName,
    access,
    writer,
    events,
    profiles,
    redactionPolicy,
    now,
  });
  const memberships = new MembershipService({ serverName, access, state, writer, profiles });
  return {
    rooms,
    memberships,
    reads: new RoomReadService(access, events, state, now),
    profiles: new ProfileService(accounts, memberships),
    admin: new RoomAdminService(serverName, roomRepo, references),
    references,
  };
}
