/**
 * What the Synapse room admin API reads: a room's media (A2, from the
 * media-reference index), the room list and one room's details.
 */

import type { Room, RoomListQuery } from "../domain/room.js";
import { formatMxcUri, type MxcUri } from "../identifiers/mxc-uri.js";
import type { MediaReferenceRepository } from "../repositories/media-reference-repository.js";
import type { RoomRepository } from "../repositories/room-repository.js";

/** A room's media split by origin: local media ids, remote (origin, id) pairs. */
export interface RoomMedia {
  readonly local: string[];
  readonly remote: MxcUri[];
}

/** Admin reads over rooms and the media-reference index; no permission checks (routes do them). */
export class RoomAdminService {
  constructor(
    private readonly serverName: string,
    private readonly rooms: RoomRepository,
    private readonly references: MediaReferenceRepository,
  ) {}

  /**
   * Every media the room references, newest first, each once; local means the
   * origin equals our server name exactly. An unknown room has none. This is
   * the set room quarantine (A7) acts on.
   */
  async roomMedia(roomId: string): Promise<RoomMedia> {
    const local: string[] = [];
    const remote: MxcUri[] = [];
    for (const mxc of await this.references.roomMedia(roomId)) {
      if (mxc.origin === this.serverName) local.push(mxc.mediaId);
      else remote.push(mxc);
    }
    return { local, remote };
  }

  /** `roomMedia` as `mxc://` URIs, the shape of `GET /_synapse/admin/v1/room/<room_id>/media`. */
  async roomMediaUris(roomId: string): Promise<{ local: string[]; remote: string[] }> {
    const { local, remote } = await this.roomMedia(roomId);
    return {
      local: local.map((id) => formatMxcUri(this.serverName, id)),
      remote: remote.map((m) => formatMxcUri(m.origin, m.mediaId)),
    };
  }

  listRooms(query: RoomListQuery): Promise<{ rooms: Room[]; total: number }> {
    return this.rooms.list(query);
  }

  /** One room and its joined members' device count, or undefined when unknown. */
  async room(roomId: string): Promise<{ room: Room; joinedLocalDevices: number } | undefined> {
    const room = await this.rooms.get(roomId);
    if (!room) return undefined;
    return { room, joinedLocalDevices: await this.rooms.countJoinedDevices(roomId) };
  }
}
