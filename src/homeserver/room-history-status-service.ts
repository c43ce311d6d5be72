/**
 * Whether mxcd's media-reference index holds a room's whole history, for the
 * room media merge (attached-mode.md §8.3 item 5): a room whose history is
 * complete is answered from the index alone; any other room also needs the
 * homeserver's own room media list.
 *
 * Complete means both: the room-history backfill read the room's history to
 * its end (`room_history_backfill.status = complete`), and the application
 * service is configured, so every later event arrives by push. Matches
 * `interface RoomHistoryStatus { hasFullHistory(roomId): Promise<boolean> }`.
 */
import type { RoomHistoryBackfillRepository } from "../repositories/room-history-backfill-repository.js";

export class RoomHistoryStatusService {
  constructor(
    private readonly rooms: Pick<RoomHistoryBackfillRepository, "get">,
    /** True when `app_service` is configured (the homeserver pushes new events). */
    private readonly appServiceConfigured: boolean,
  ) {}

  /** True once the backfill reached the end of the room's history and events are pushed. */
  async hasFullHistory(roomId: string): Promise<boolean> {
    if (!this.appServiceConfigured) return false;
    return (await this.rooms.get(roomId))?.status === "complete";
  }
}
