/**
 * A room's media in the attached shape (attached-mode.md §3.1, §8.3 item 5):
 * mxcd's media-reference index knows only the events the application
 * service pushed (or the backfill job read), so the homeserver's own
 * `GET /_synapse/admin/v1/room/<room_id>/media` fills in the rest, for rooms
 * whose history the index does not hold in full.
 *
 * Design notes:
 * - The homeserver is asked at `homeserver.base_url` (the HomeserverClient),
 *   never the public URL: the proxy sends `/_synapse/admin/v1/room/.*\/media`
 *   to mxcd, so the public URL would loop back here.
 * - Token: `homeserver.admin_access_token`, or when that is null the calling
 *   admin's own token (MMR's way); the caller must then be a homeserver
 *   admin, and the homeserver's 403 reaches them as 403 `M_FORBIDDEN` saying
 *   to set `admin_access_token`.
 * - The answer is hostile input: a body that is not `{local: [...], remote:
 *   [...]}` is 502; each entry must parse as `mxc://<server>/<media id>`
 *   (identifiers/mxc-uri.ts), others are skipped and counted in one log line.
 *   The body is capped (`maxAnswerBytes`); a larger one is 502.
 * - Room quarantine asks the homeserver first and quarantines only once it
 *   has the whole list: a homeserver that is down, slow or answering garbage
 *   (502/504 `M_UNKNOWN`) leaves everything as it was.
 * - A room the homeserver does not know (404) has the index's media only.
 */
import { MatrixError } from "../domain/matrix-error.js";
import { formatMxcUri, type MxcUri, parseMxcUri } from "../identifiers/mxc-uri.js";
import { isValidRoomId } from "../identifiers/room-id.js";
import type { Logger } from "../logging/logger.js";
import { type HomeserverClient, HomeserverUnavailableError } from "./homeserver-client.js";

/**
 * Whether the reference index holds a room's whole history (the backfill
 * job's watermark). When it does, the homeserver is not asked.
 */
export interface RoomHistoryStatus {
  hasFullHistory(roomId: string): Promise<boolean>;
}

/** Until the backfill job says otherwise, no room's history is complete. */
const NO_FULL_HISTORY: RoomHistoryStatus = { hasFullHistory: async () => false };

/** Who asks: the calling admin's token (sent when there is no admin_access_token). */
export interface RoomMediaCaller {
  readonly accessToken: string;
  /** Sent as X-Forwarded-For. */
  readonly clientAddress?: string;
}

/** A room's media as Synapse lists it: full `mxc://` URIs split by origin. */
export interface RoomMediaUris {
  readonly local: string[];
  readonly remote: string[];
}

/** The slice of RoomAdminService read: the index's media, newest reference first. */
export interface RoomMediaIndex {
  roomMediaUris(roomId: string): Promise<RoomMediaUris>;
}

/** The slice of QuarantineService used (both count real transitions). */
export interface RoomQuarantine {
  quarantineRoom(roomId: string, by: string): Promise<number>;
  quarantine(
    targets: { local: readonly string[]; remote: readonly MxcUri[] },
    by: string,
  ): Promise<number>;
}

export interface RoomMediaSourceOptions {
  /** `server_name`: the homeserver's; an mxc of this origin is local. */
  readonly serverName: string;
  readonly homeserver: Pick<HomeserverClient, "get">;
  /** `homeserver.admin_access_token`; null: the caller's token. */
  readonly adminAccessToken: string | null;
  readonly index: RoomMediaIndex;
  readonly quarantine: RoomQuarantine;
  readonly logger: Logger;
  /** Largest homeserver answer read; default 8 MiB (about 130,000 mxc URIs). */
  readonly maxAnswerBytes?: number;
}

/** 8 MiB: Synapse's list is not paginated and keeps duplicates, so big rooms need room. */
const DEFAULT_MAX_ANSWER_BYTES = 8 * 1024 * 1024;
/** Media per quarantine transaction, as QuarantineService's own batches. */
const BATCH = 500;

export class RoomMediaSource {
  constructor(
    private readonly options: RoomMediaSourceOptions,
    private readonly history: RoomHistoryStatus = NO_FULL_HISTORY,
  ) {}

  /**
   * `GET /_synapse/admin/v1/room/<room_id>/media`: the index's media in its
   * order (newest reference first), then the homeserver's others in the
   * homeserver's order (Synapse: newest event first), each URI once.
   * 400 `M_INVALID_PARAM` for a malformed room id, before any request.
   */
  async roomMediaUris(roomId: string, caller: RoomMediaCaller): Promise<RoomMediaUris> {
    checkRoomId(roomId);
    const fromHomeserver = await this.#homeserverMedia(roomId, caller);
    const indexed = await this.options.index.roomMediaUris(roomId);
    const local = new Set(indexed.local);
    const remote = new Set(indexed.remote);
    for (const mxc of fromHomeserver) {
      const uri = formatMxcUri(mxc.origin, mxc.mediaId);
      (mxc.origin === this.options.serverName ? local : remote).add(uri);
    }
    return { local: [...local], remote: [...remote] };
  }

  /**
   * Room quarantine (both paths): the homeserver's list is fetched first, so
   * a failure there changes nothing; then the index's media and the
   * homeserver's, batch by batch. Returns the number of transitions (media
   * already quarantined, local media mxcd does not hold and uncached remote
   * media are not counted; the latter is blocked and quarantined when fetched).
   */
  async quarantineRoom(roomId: string, by: string, caller: RoomMediaCaller): Promise<number> {
    checkRoomId(roomId);
    const fromHomeserver = await this.#homeserverMedia(roomId, caller);
    const { quarantine, serverName } = this.options;
    let total = await quarantine.quarantineRoom(roomId, by);
    for (let i = 0; i < fromHomeserver.length; i += BATCH) {
      const batch = fromHomeserver.slice(i, i + BATCH);
      total += await quarantine.quarantine(
        {
          local: batch.filter((m) => m.origin === serverName).map((m) => m.mediaId),
          remote: batch.filter((m) => m.origin !== serverName),
        },
        by,
      );
    }
    return total;
  }

  /** The homeserver's media of the room, valid and each once ([] when not asked or unknown there). */
  async #homeserverMedia(roomId: string, caller: RoomMediaCaller): Promise<MxcUri[]> {
    if (await this.history.hasFullHistory(roomId)) return [];
    const { adminAccessToken, homeserver } = this.options;
    let answer: Awaited<ReturnType<typeof homeserver.get>>;
    try {
      answer = await homeserver.get(`/_synapse/admin/v1/room/${encodeURIComponent(roomId)}/media`, {
        accessToken: adminAccessToken ?? caller.accessToken,
        maxBytes: this.options.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES,
        ...(caller.clientAddress !== undefined && { forwardedFor: caller.clientAddress }),
      });
    } catch (error) {
      if (!(error instanceof HomeserverUnavailableError)) throw error;
      throw new MatrixError(
        "M_UNKNOWN",
        `Could not list the room's media at the homeserver: ${error.message}`,
        error.timedOut ? 504 : 502,
      );
    }
    if (answer.status === 200) return this.#parse(roomId, answer.json);
    if (answer.status === 404) return [];
    throw this.#refusal(answer.status, answer.json);
  }

  /** The valid, distinct entries of a 200 answer, in its order; 502 when it is not the shape. */
  #parse(roomId: string, json: unknown): MxcUri[] {
    const body = json as { local?: unknown; remote?: unknown } | null;
    if (
      typeof body !== "object" ||
      body === null ||
      !Array.isArray(body.local) ||
      !Array.isArray(body.remote)
    ) {
      throw badAnswer("the room media answer is not {local: [...], remote: [...]}");
    }
    const seen = new Set<string>();
    const media: MxcUri[] = [];
    let skipped = 0;
    for (const entry of [...body.local, ...body.remote]) {
      const mxc = parseMxcUri(entry);
      if (!mxc) skipped += 1;
      else if (!seen.has(entry as string)) {
        seen.add(entry as string);
        media.push(mxc);
      }
    }
    if (skipped > 0) {
      // The entries themselves are not logged: they are the homeserver's, of any size.
      this.options.logger.warn(
        { room_id: roomId, skipped, kept: media.length },
        "skipped invalid entries of the homeserver's room media list",
      );
    }
    return media;
  }

  /** The error for a non-200, non-404 answer. */
  #refusal(status: number, json: unknown): MatrixError {
    const body = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>;
    const errcode = typeof body.errcode === "string" ? body.errcode.slice(0, 100) : "";
    if (this.options.adminAccessToken === null) {
      if (status === 403) {
        return new MatrixError(
          "M_FORBIDDEN",
          "The homeserver refused to list this room's media with your access token (only " +
            "homeserver admins may). Set homeserver.admin_access_token in mxcd's config to " +
            "a homeserver admin's token to allow mxcd admins who are not homeserver admins.",
          403,
        );
      }
      if (status === 401 && (errcode === "M_UNKNOWN_TOKEN" || errcode === "M_MISSING_TOKEN")) {
        const error = typeof body.error === "string" ? body.error.slice(0, 500) : "Unknown token";
        return new MatrixError(errcode, error, 401, { soft_logout: body.soft_logout === true });
      }
      return badAnswer(`the room media request was answered ${status} ${errcode}`.trim());
    }
    // The configured token was refused: the caller cannot fix that, the admin's config can.
    return badAnswer(
      `the room media request was answered ${status} ${errcode} (check homeserver.admin_access_token)`,
    );
  }
}

/** 400 `M_INVALID_PARAM` for a malformed room id (the homeserver is never asked about it). */
function checkRoomId(roomId: string): void {
  if (!isValidRoomId(roomId)) throw new MatrixError("M_INVALID_PARAM", "Invalid room id");
}

function badAnswer(detail: string): MatrixError {
  return new MatrixError("M_UNKNOWN", `Unexpected answer from the homeserver: ${detail}`, 502);
}
