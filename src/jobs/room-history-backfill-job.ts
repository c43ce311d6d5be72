/**
 * `room-history-backfill`: fills the media-reference index with the rooms'
 * history from before the application service (docs/attached.md
 * "Backfilling rooms from before the application service";
 * attached-mode.md §3.2 option 2, §8.3 item 6).
 *
 * Design note.
 * - Two phases. `rooms`: page the homeserver's admin room list (offset
 *   paging) and add every room to `room_history_backfill` as pending.
 *   `messages`: take the first pending room (by room id) and read ONE page of
 *   its history forward from its watermark; repeat until no room is pending.
 * - One homeserver request per batch, made in the job's `prepare` step,
 *   outside the database transaction (a slow homeserver must not hold
 *   SQLite's write lock). The batch then re-reads, under the job's lock, the
 *   room and watermark the request was made for; if another process moved
 *   on meanwhile the page is dropped unused and the next batch asks again.
 * - The page's events go through the same indexer as pushed events
 *   (room-event-indexer.ts), idempotent by event id, and the room's new
 *   watermark (`end`) is saved in the same transaction. A stop at any point
 *   loses at most the page in flight, and a restart fetches the next page.
 * - A room ends `complete` on an empty page (the end of its history; later
 *   events come from the application service), or `failed` with a recorded
 *   reason when its answers are unusable or its `end` does not advance
 *   (which would otherwise loop forever). Either way it counts as done in the
 *   job's progress: rooms done / rooms listed.
 * - Redactions found in the history drop the references of events the index
 *   recorded, as pushed ones do, but media_redaction_policy is not applied
 *   retroactively (docs/attached.md).
 * - A homeserver that is down (transport errors, 5xx) fails the batch, which
 *   the runner retries with back-off: no progress is lost. A refused admin
 *   token fails every batch with an error naming
 *   `homeserver.admin_access_token`.
 */
import type { Db, Tx } from "../db/database.js";
import type { HomeserverRoomHistory } from "../homeserver/homeserver-room-history.js";
import type { RoomEventIndexer } from "../homeserver/room-event-indexer.js";
import type { Logger } from "../logging/logger.js";
import type { RoomHistoryBackfillRepository } from "../repositories/room-history-backfill-repository.js";
import type { BackgroundJob, BatchContext, BatchResult, PrepareContext } from "./background-job.js";

/** The job's name (its row in `background_jobs` and its lock key). */
export const ROOM_HISTORY_BACKFILL = "room-history-backfill";

/** Rooms asked for per room-list page (Synapse's default). */
const ROOMS_PER_PAGE = 100;
/** Events asked for per messages page (bounded bytes: see homeserver-room-history.ts). */
const EVENTS_PER_PAGE = 50;

/** Where the job is (stored as JSON); the per-room watermarks are in `room_history_backfill`. */
export interface RoomHistoryProgress {
  readonly phase: "rooms" | "messages";
  /** Offset of the next room-list page. */
  readonly roomsFrom: number;
  /** The homeserver's room count from its first room-list page (the progress bar's total). */
  readonly totalRooms: number | null;
  /** Room-list entries skipped for a malformed room id. */
  readonly skippedRooms: number;
}

/** What `prepare` fetched for the batch. */
export type RoomHistoryPrepared =
  | {
      readonly kind: "rooms";
      readonly from: number;
      readonly page: Awaited<ReturnType<HomeserverRoomHistory["listRooms"]>>;
    }
  | {
      readonly kind: "messages";
      readonly roomId: string;
      readonly from: string | null;
      readonly page: Awaited<ReturnType<HomeserverRoomHistory["messages"]>>;
    }
  | { readonly kind: "finished" };

/** What the job needs; all required. */
export interface RoomHistoryBackfillDeps {
  readonly history: Pick<HomeserverRoomHistory, "listRooms" | "messages">;
  readonly rooms: RoomHistoryBackfillRepository;
  readonly indexer: RoomEventIndexer;
  readonly logger: Logger;
  readonly now: () => number;
}

type Result = BatchResult<RoomHistoryProgress>;

/** The backfill described above; one instance per process. */
export class RoomHistoryBackfillJob
  implements BackgroundJob<RoomHistoryProgress, RoomHistoryPrepared>
{
  readonly name = ROOM_HISTORY_BACKFILL;
  readonly initialProgress: RoomHistoryProgress = {
    phase: "rooms",
    roomsFrom: 0,
    totalRooms: null,
    skippedRooms: 0,
  };

  constructor(private readonly deps: RoomHistoryBackfillDeps) {}

  /** The homeserver's room count, else the rooms listed so far. */
  async estimateTotal(db: Db, progress: RoomHistoryProgress): Promise<number> {
    if (progress.totalRooms !== null) return progress.totalRooms;
    const row = await db
      .selectFrom("room_history_backfill")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** The batch's one homeserver request: a room-list page, or the next page of a pending room. */
  async prepare(progress: RoomHistoryProgress, ctx: PrepareContext): Promise<RoomHistoryPrepared> {
    const { history, rooms } = this.deps;
    if (progress.phase === "rooms") {
      const from = progress.roomsFrom;
      const limit = Math.min(ctx.batchSize, ROOMS_PER_PAGE);
      return { kind: "rooms", from, page: await history.listRooms(from, limit, ctx.signal) };
    }
    const room = await rooms.nextPending();
    if (!room) return { kind: "finished" };
    const limit = Math.min(ctx.batchSize, EVENTS_PER_PAGE);
    const page = await history.messages(room.roomId, room.token, limit, ctx.signal);
    return { kind: "messages", roomId: room.roomId, from: room.token, page };
  }

  /** Records what `prepare` fetched, if it still applies under the lock. */
  async runBatch(
    tx: Tx,
    progress: RoomHistoryProgress,
    { prepared }: BatchContext<RoomHistoryPrepared>,
  ): Promise<Result> {
    const unchanged: Result = { progress, processed: 0, done: false };
    if (prepared === undefined) throw new Error(`${this.name} runs only with its prepare step`);
    if (progress.phase === "rooms") {
      if (prepared.kind !== "rooms" || prepared.from !== progress.roomsFrom) return unchanged;
      return this.#recordRooms(tx, progress, prepared);
    }
    if (prepared.kind === "finished") {
      // Only when no room is pending under the lock too.
      const pending = await this.deps.rooms.nextPending(tx);
      return pending ? unchanged : { progress, processed: 0, done: true };
    }
    if (prepared.kind !== "messages") return unchanged;
    const room = await this.deps.rooms.get(prepared.roomId, tx);
    if (room?.status !== "pending" || room.token !== prepared.from) return unchanged;
    return this.#recordMessages(tx, progress, prepared);
  }

  /** Adds a room-list page's rooms; moves to the messages phase after the last page. */
  async #recordRooms(
    tx: Tx,
    progress: RoomHistoryProgress,
    { from, page }: Extract<RoomHistoryPrepared, { kind: "rooms" }>,
  ): Promise<Result> {
    await this.deps.rooms.addRooms(tx, page.roomIds, this.deps.now());
    const skippedRooms = progress.skippedRooms + page.skipped;
    if (page.skipped > 0) {
      this.deps.logger.warn({ job: this.name, skipped: page.skipped }, "skipped malformed rooms");
    }
    let next = page.next;
    // An offset that does not advance would list the same page forever, and
    // empty pages that claim more could list nothing for ever.
    const listed = page.roomIds.length + page.skipped;
    if (next !== undefined && (next <= from || listed === 0)) {
      this.deps.logger.warn(
        { job: this.name, from, next_batch: next, listed },
        "the homeserver's room list does not advance; backfilling the rooms listed so far",
      );
      next = undefined;
    }
    const totalRooms = progress.totalRooms ?? page.totalRooms ?? null;
    const base = { ...progress, totalRooms, skippedRooms };
    const advanced: RoomHistoryProgress =
      next === undefined ? { ...base, phase: "messages" } : { ...base, roomsFrom: next };
    return { progress: advanced, processed: 0, done: false };
  }

  /** Indexes one page of a room's history and moves its watermark, or ends the room. */
  async #recordMessages(
    tx: Tx,
    progress: RoomHistoryProgress,
    { roomId, from, page }: Extract<RoomHistoryPrepared, { kind: "messages" }>,
  ): Promise<Result> {
    const { rooms, indexer, logger } = this.deps;
    const now = this.deps.now();
    const fail = async (reason: string, skipped: number): Promise<Result> => {
      await rooms.fail(tx, roomId, reason, skipped, now);
      logger.warn({ job: this.name, room_id: roomId, reason }, "gave up backfilling a room");
      return { progress, processed: 1, done: false };
    };
    if (page.kind === "unusable") return fail(page.reason, 0);
    if (page.size > 0 && page.end !== undefined && page.end === from) {
      return fail(`the homeserver's end token does not advance (${page.end})`, page.skipped);
    }
    for (const event of page.events) await indexer.index(tx, event);
    // An empty page is the end of the history; so is a page without `end`
    // (nothing to page on from).
    const complete = page.size === 0 || page.end === undefined;
    await rooms.recordPage(
      tx,
      roomId,
      { token: page.end ?? from, events: page.events.length, skipped: page.skipped, complete },
      now,
    );
    if (page.skipped > 0) {
      logger.warn({ job: this.name, room_id: roomId, skipped: page.skipped }, "skipped events");
    }
    return { progress, processed: complete ? 1 : 0, done: false };
  }
}
